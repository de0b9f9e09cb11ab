{{ config(**incremental_config('minute', version='last_ingested_at')) }}
-- Ingest per minute of ingest time (raw rows, redeliveries included): readings, machines, and the largest delay
-- from a reading's event time to its arrival in ClickHouse. Incremental: each run recomputes its last minute on.
with

raw_readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

in_scope as (
    select *
    from raw_readings
    {%- if is_incremental() %}
    where ingested_at >= (select max(minute) from {{ this }})
      and (select max(ingested_at) from raw_readings) > (select max(last_ingested_at) from {{ this }})
    {%- endif %}
),

per_minute as (
    select
        toDateTime(toStartOfMinute(ingested_at), 'UTC') as minute,
        count() as readings,
        uniqExact(machine_id) as machines,
        max(dateDiff('millisecond', event_time, ingested_at)) / 1000 as max_ingest_delay_s,
        max(ingested_at) as last_ingested_at
    from in_scope
    group by minute
),

pipeline_stats as (
    select
        minute,
        toUInt64(readings) as readings,
        toUInt64(machines) as machines,
        toFloat64(max_ingest_delay_s) as max_ingest_delay_s,
        last_ingested_at
    from per_minute
)

select * from pipeline_stats
