{{ config(
    materialized='incremental',
    incremental_strategy='append',
    engine='ReplacingMergeTree(max_ingested_at)',
    order_by='(machine_id, sensor_id, window_start)',
    partition_by='toYYYYMM(window_start)',
    indexes=[
        {'name': 'max_ingested_at_minmax', 'definition': 'max_ingested_at TYPE minmax GRANULARITY 1'},
        {'name': 'fault_kind_minmax', 'definition': 'fault_kind TYPE minmax GRANULARITY 1'},
    ],
) }}
-- One row per machine, sensor and window in which the machine reported (including windows the sensor missed), with
-- the sensor fault seen there, if any: 'impossible_value' (a reading outside the sensor's physical range),
-- 'dropout' (fewer readings than var dropout_fraction of the machine's best-served sensor, once the machine has
-- reported past the window) or 'stuck' (at least var stuck_min_readings readings, all equal, while most of the
-- machine's other sensors move); '' when none. Sensor faults go to maintenance, never to machine alerts.
-- The machine's sensors are those it reported in the var baseline_window_minutes before the recomputed windows.
with

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

machines as (
    select * from {{ ref('machines') }}
),

sensor_ranges as (
    select * from {{ ref('sensor_ranges') }}
),

spec_limits as (
    select * from {{ ref('spec_limits') }}
),

changed as (
    {{ changed_since(ref('int_sensor_windows'), 'window_start') }}
),

context as (
    select windows.*, changed.since as since
    from windows
    inner join changed on windows.machine_id = changed.machine_id
    where windows.window_start >= changed.since
      and windows.window_start >= (select min(since) from changed)
),

machine_sensors as (
    select windows_seen.machine_id as machine_id, sensor_id, any(sensor_kind) as sensor_kind
    from {{ ref('int_sensor_windows') }} as windows_seen
    inner join changed on windows_seen.machine_id = changed.machine_id
    where windows_seen.window_start >= changed.since - toIntervalMinute({{ var('baseline_window_minutes') }})
      and windows_seen.window_start
          >= (select min(since) from changed) - toIntervalMinute({{ var('baseline_window_minutes') }})
    group by machine_id, sensor_id
),

machine_windows as (
    select
        machine_id,
        window_start,
        max(reading_count) as expected_readings,
        countIf(reading_count >= {{ var('stuck_min_readings') }} and max_value = min_value) / count() as flat_fraction,
        max(max_ingested_at) as max_ingested_at
    from context
    group by machine_id, window_start
),

machine_latest as (
    select machine_id, max(last_at) as latest_at
    from context
    group by machine_id
),

grid as (
    select
        machine_windows.machine_id as machine_id,
        machine_sensors.sensor_id as sensor_id,
        machine_sensors.sensor_kind as sensor_kind,
        machine_windows.window_start as window_start,
        machine_windows.expected_readings as expected_readings,
        machine_windows.flat_fraction as flat_fraction,
        machine_windows.max_ingested_at as max_ingested_at,
        machine_latest.latest_at as latest_at
    from machine_windows
    inner join machine_sensors on machine_windows.machine_id = machine_sensors.machine_id
    inner join machine_latest on machine_windows.machine_id = machine_latest.machine_id
),

observed as (
    select
        grid.machine_id as machine_id,
        grid.sensor_id as sensor_id,
        grid.sensor_kind as sensor_kind,
        grid.window_start as window_start,
        grid.expected_readings as expected_readings,
        grid.flat_fraction as flat_fraction,
        grid.max_ingested_at as max_ingested_at,
        grid.latest_at as latest_at,
        windows.sensor_id != '' as reported,
        windows.reading_count as reading_count,
        windows.min_value as min_value,
        windows.max_value as max_value
    from grid
    left join context as windows
        on grid.machine_id = windows.machine_id
        and grid.sensor_id = windows.sensor_id
        and grid.window_start = windows.window_start
),

with_ranges as (
    select
        observed.machine_id as machine_id,
        observed.sensor_id as sensor_id,
        observed.sensor_kind as sensor_kind,
        observed.window_start as window_start,
        observed.expected_readings as expected_readings,
        observed.flat_fraction as flat_fraction,
        observed.max_ingested_at as max_ingested_at,
        observed.latest_at as latest_at,
        observed.reported as reported,
        observed.reading_count as reading_count,
        observed.min_value as min_value,
        observed.max_value as max_value,
        multiIf(
            sensor_ranges.sensor_id != '', sensor_ranges.physical_min,
            spec_limits.model != '', spec_limits.physical_min,
            -inf
        ) as physical_min,
        multiIf(
            sensor_ranges.sensor_id != '', sensor_ranges.physical_max,
            spec_limits.model != '', spec_limits.physical_max,
            inf
        ) as physical_max
    from observed
    left join machines on observed.machine_id = machines.machine_id
    left join sensor_ranges
        on machines.model = sensor_ranges.model and observed.sensor_id = sensor_ranges.sensor_id
    left join spec_limits
        on machines.model = spec_limits.model and observed.sensor_kind = spec_limits.sensor_kind
),

scored as (
    select
        *,
        reported and (min_value < physical_min or max_value > physical_max) as impossible,
        latest_at >= {{ window_end('window_start') }}
            and reading_count < {{ var('dropout_fraction') }} * expected_readings as dropped,
        reported
            and reading_count >= {{ var('stuck_min_readings') }}
            and max_value = min_value
            and flat_fraction < {{ var('stopped_fraction') }} as stuck
    from with_ranges
),

sensor_faults as (
    select
        machine_id,
        sensor_id,
        sensor_kind,
        window_start,
        {{ window_end('window_start') }} as window_end,
        reading_count,
        expected_readings,
        multiIf(impossible, 'impossible_value', dropped, 'dropout', stuck, 'stuck', '') as fault_kind,
        multiIf(
            impossible, greatest(physical_min - min_value, max_value - physical_max) / (physical_max - physical_min),
            dropped, 1 - reading_count / expected_readings,
            stuck, toFloat64(reading_count),
            0.
        ) as score,
        max_ingested_at
    from scored
)

select * from sensor_faults
