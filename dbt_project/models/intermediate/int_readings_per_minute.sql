{{ config(
    materialized='materialized_view',
    engine='AggregatingMergeTree()',
    order_by='(machine_id, sensor_id, minute)',
    partition_by='toYYYYMM(minute)',
) }}
-- Per-minute aggregate states per machine and sensor, kept fresh by a materialized view on every insert into the raw
-- table (and backfilled from it when created). Merge the states (avgMerge, ...) over any coarser window.
-- The MV sees inserts, not the deduplicated view: a reading delivered twice (a replay after a crash, cut into other
-- batches than the first time) reaches it twice. The reading count is therefore kept as the number of distinct
-- sequence numbers, which is exact; min/max are unaffected; mean and stddev may weigh such a reading twice
-- (rolling_aggregates, computed from the deduplicated readings, is exact).
with

readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

per_minute as (
    select
        toString(machine_id) as machine_id,
        toString(sensor_id) as sensor_id,
        toStartOfMinute(event_time) as minute,
        anyState(toString(sensor_kind)) as sensor_kind_state,
        uniqExactState(seq) as readings_state,
        {{ reading_states() }},
        maxState(ingested_at) as max_ingested_at_state
    from readings
    group by machine_id, sensor_id, minute
)

select * from per_minute
