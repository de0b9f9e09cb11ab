{{ config(
    materialized='incremental',
    incremental_strategy='append',
    engine='ReplacingMergeTree(max_ingested_at)',
    order_by='(machine_id, sensor_id, window_seconds, window_start)',
    partition_by='toYYYYMM(window_start)',
) }}
-- Rolling aggregates per machine and sensor over 1-minute, 5-minute and 1-hour windows (window_seconds 60, 300,
-- 3600), merged from the per-minute states of int_readings_per_minute: readings, mean, stddev, min, max, and the
-- rate of change (last minus first reading over the time between them, per second). Incremental: each run
-- recomputes, for every machine with newly ingested readings, the windows from its earliest new reading (bounded
-- by var lateness_seconds) on, each window size from the start of the window holding it.
with

per_minute as (
    select * from {{ ref('int_readings_per_minute') }}
),

raw_readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

changed as (
    {{ changed_since('raw_readings', 'event_time', watermark='ingested_at') }}
),

in_scope as (
    select per_minute.*, changed.since as since
    from per_minute
    inner join changed on per_minute.machine_id = changed.machine_id
    where per_minute.minute >= toStartOfHour(changed.since)
      and per_minute.minute >= toStartOfHour((select min(since) from changed))
),

expanded as (
    select
        *,
        arrayJoin([60, 300, 3600]) as window_seconds,
        multiIf(
            window_seconds = 60, toStartOfMinute(minute),
            window_seconds = 300, toStartOfFiveMinutes(minute),
            toStartOfHour(minute)
        ) as window_start
    from in_scope
),

merged as (
    select
        machine_id,
        sensor_id,
        window_seconds,
        window_start,
        anyMerge(sensor_kind_state) as sensor_kind,
        countMerge(readings_state) as reading_count,
        avgMerge(mean_state) as mean,
        stddevPopMerge(stddev_state) as stddev,
        minMerge(min_state) as min_value,
        maxMerge(max_state) as max_value,
        argMinMerge(first_value_state) as first_value,
        argMaxMerge(last_value_state) as last_value,
        minMerge(first_at_state) as first_at,
        maxMerge(last_at_state) as last_at,
        maxMerge(max_ingested_at_state) as max_ingested_at
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
