{{ config(
    materialized='materialized_view',
    engine='AggregatingMergeTree()',
    order_by='(machine_id, sensor_id, minute)',
    partition_by='toYYYYMM(minute)',
) }}
-- Per-minute aggregate states per machine and sensor, kept fresh by a materialized view on every insert into the raw
-- table (and backfilled from it when created): only what its readers merge (int_machine_last_readings: the latest
-- reading; machine_health: each sensor's reading count and time span). Merge them with the -Merge combinators over
-- any coarser window. The MV sees inserts, not the deduplicated view: a reading delivered twice (a replay after a
-- crash, cut into other batches than the first time) reaches it twice, so the reading count is kept as the number
-- of distinct sequence numbers, which is exact; first and last event time are unaffected. Window statistics
-- (mean, stddev, ...) come from the deduplicated readings instead (int_sensor_windows, rolling_aggregates).
with

readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

per_minute as (
    select
        {{ reading_keys(['machine_id', 'sensor_id']) }},
        toStartOfMinute(event_time) as minute,
        uniqExactState(seq) as readings_state,
        minState(event_time) as first_at_state,
        maxState(event_time) as last_at_state
    from readings
    group by machine_id, sensor_id, minute
)

select * from per_minute
