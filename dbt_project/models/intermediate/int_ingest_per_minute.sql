{{ config(
    materialized='materialized_view',
    engine='AggregatingMergeTree()',
    order_by='minute',
    partition_by='toYYYYMM(minute)',
) }}
-- Ingest per minute of ingest time, as aggregate states written by a materialized view on every insert into the raw
-- table (and backfilled from it when created): raw rows (redeliveries included: the MV sees inserts), machines, the
-- largest delay from a reading's event time to its arrival, the latest arrival. pipeline_stats merges them.
with

raw_readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

per_minute as (
    select
        toDateTime(toStartOfMinute(ingested_at), 'UTC') as minute,
        countState() as readings_state,
        uniqExactState(toString(machine_id)) as machines_state,
        maxState(dateDiff('millisecond', event_time, ingested_at)) as max_ingest_delay_ms_state,
        maxState(ingested_at) as last_ingested_at_state
    from raw_readings
    group by minute
)

select * from per_minute
