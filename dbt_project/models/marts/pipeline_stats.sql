-- Ingest per minute (ingest time; raw rows, redeliveries included): readings, machines, and the largest delay from a
-- reading's event time to its arrival in ClickHouse. Fresh on every insert: the states int_ingest_per_minute's
-- materialized view writes, merged.
with

per_minute as (
    select * from {{ ref('int_ingest_per_minute') }}
),

pipeline_stats as (
    select
        minute,
        countMerge(readings_state) as readings,
        uniqExactMerge(machines_state) as machines,
        maxMerge(max_ingest_delay_ms_state) / 1000 as max_ingest_delay_s,
        maxMerge(last_ingested_at_state) as last_ingested_at
    from per_minute
    group by minute
)

select * from pipeline_stats
