{{ config(**incremental_config(
    '(machine_id, sensor_id, window_seconds, window_start)', version='max_ingested_at', partition_by='window_start',
)) }}
-- Rolling aggregates per machine and sensor over 1-minute, 5-minute and 1-hour windows (window_seconds 60, 300,
-- 3600): readings, mean, stddev, min, max, and the rate of change (last minus first reading over the time between
-- them, per second). Computed from the deduplicated readings, not from the per-minute states of the materialized
-- view, which count a redelivered reading twice until the raw table's parts merge; in one pass over them, into
-- per-minute mergeable states that the 5-minute and hour windows combine. Incremental: each run
-- recomputes, for every machine with newly ingested readings, the windows from its earliest new reading (bounded
-- by var lateness_seconds) on, each window size from the start of the window holding it.
with

readings as (
    select * from {{ ref('stg_readings') }}
),

changed as materialized (
    {{ readings_changed_since() }}
),

in_scope as (
    {{ in_scope('readings', 'changed', align='toStartOfHour') }}
),

minutes as (
    -- One pass over the readings: mergeable states per minute, which the 5-minute and hour windows combine.
    select
        machine_id,
        sensor_id,
        toStartOfMinute(event_time) as minute_start,
        any(sensor_kind) as sensor_kind,
        {{ reading_statistics('State') }},
        max(ingested_at) as max_ingested_at
    from in_scope
    group by machine_id, sensor_id, minute_start
),

expanded as (
    select
        *,
        arrayJoin([60, 300, 3600]) as window_seconds,
        multiIf(
            window_seconds = 60, minute_start,
            window_seconds = 300, toStartOfFiveMinutes(minute_start),
            toStartOfHour(minute_start)
        ) as window_start
    from minutes
),

merged as (
    select
        machine_id,
        sensor_id,
        window_seconds,
        window_start,
        any(sensor_kind) as sensor_kind,
        {{ reading_statistics('Merge') }},
        max(max_ingested_at) as max_ingested_at
    from expanded
    group by machine_id, sensor_id, window_seconds, window_start
),

rolling as (
    select
        machine_id,
        sensor_id,
        sensor_kind,
        toUInt32(window_seconds) as window_seconds,
        toDateTime64(window_start, 3, 'UTC') as window_start,
        toDateTime64(window_start, 3, 'UTC') + toIntervalSecond(window_seconds) as window_end,
        toUInt64(reading_count) as reading_count,
        mean,
        stddev,
        min_value,
        max_value,
        if(last_at > first_at, (last_value - first_value) / (dateDiff('millisecond', first_at, last_at) / 1000), 0.)
            as rate_of_change,
        max_ingested_at
    from merged
)

select * from rolling
