{{ config(**incremental_config(
    '(machine_id, sensor_id, window_start)', partition_by='window_start', fine_index=true,
    minmax=['computed_at', 'fault_kind'],
)) }}
-- One row per machine, sensor and window in which the machine reported (including windows the sensor missed), with
-- what needs no baseline to judge: 'impossible_value' (a reading outside the sensor's physical range, where the
-- seeds give one), 'dropout' (fewer readings than var dropout_fraction of the machine's best-served sensor, once
-- the machine has reported past the window), '' when neither; and how long the sensor has sat still: flat_run, the
-- windows in a row (this one included) whose readings all had one value, the same value. Whether a flat run is a
-- stuck sensor depends on how long this sensor sits still when healthy (learned with its baseline: a quantized
-- sensor may sit still for many windows), so it is decided in int_sensor_window_scores.
-- The machine's sensors are those it reported in the var baseline_reference_windows windows before.
with

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

machines as (
    select * from {{ ref('int_machines') }}
),

sensor_ranges as (
    select * from {{ ref('sensor_ranges') }}
),

spec_limits as (
    select * from {{ ref('int_spec_limits') }}
),

changed as materialized (
    {{ changed_since(ref('int_sensor_windows')) }}
),

with_context as materialized (
    select
        changed.machine_id as machine_id,
        changed.since as since,
        changed.since - toIntervalMillisecond({{ var('baseline_reference_windows') }} * cadence.window_ms)
            as context_since
    from changed
    inner join {{ ref('int_machine_cadence') }} as cadence final on changed.machine_id = cadence.machine_id
),

context as (
    {{ in_scope('windows', 'with_context', time_column='window_start', since_column='context_since') }}
),

machine_sensors as (
    select machine_id, sensor_id, any(sensor_kind) as sensor_kind
    from context
    group by machine_id, sensor_id
),

machine_windows as (
    select
        machine_id,
        window_start,
        any(window_ms) as window_ms,
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
        machine_windows.window_ms as window_ms,
        with_context.since as since,  -- the windows to write; those before it are only context
        machine_windows.expected_readings as expected_readings,
        machine_windows.flat_fraction as flat_fraction,
        machine_windows.max_ingested_at as max_ingested_at,
        machine_latest.latest_at as latest_at
    from machine_windows
    inner join machine_sensors on machine_windows.machine_id = machine_sensors.machine_id
    inner join machine_latest on machine_windows.machine_id = machine_latest.machine_id
    inner join with_context on machine_windows.machine_id = with_context.machine_id
),

observed as (
    select
        grid.machine_id as machine_id,
        grid.sensor_id as sensor_id,
        grid.sensor_kind as sensor_kind,
        grid.window_start as window_start,
        grid.window_ms as window_ms,
        grid.since as since,
        grid.expected_readings as expected_readings,
        grid.flat_fraction as flat_fraction,
        grid.max_ingested_at as max_ingested_at,
        grid.latest_at as latest_at,
        windows.sensor_id != '' as reported,
        windows.reading_count as reading_count,
        windows.min_value as min_value,
        windows.max_value as max_value
    from grid
    left join context as windows on {{ same_window('grid', 'windows') }}
),

with_ranges as (
    select
        observed.machine_id as machine_id,
        observed.sensor_id as sensor_id,
        observed.sensor_kind as sensor_kind,
        observed.window_start as window_start,
        observed.window_ms as window_ms,
        observed.since as since,
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

marked as (
    select
        *,
        reported and reading_count >= 2 and max_value = min_value as flat,
        {{ window_index('window_start', 'window_ms') }} as position
    from with_ranges
),

with_previous as (
    select
        *,
        lagInFrame(flat, 1, false) over by_time as previous_flat,
        lagInFrame(min_value, 1, nan) over by_time as previous_value,
        lagInFrame(position, 1, toInt64(-2)) over by_time as previous_position
    from marked
    window by_time as (
        partition by machine_id, sensor_id order by window_start rows between 1 preceding and current row
    )
),

numbered as (
    select
        *,
        sum(toUInt64(not (flat and previous_flat and previous_value = min_value and previous_position = position - 1)))
            over (partition by machine_id, sensor_id order by window_start rows between unbounded preceding and current row)
            as run_number
    from with_previous
),

checked as (
    select
        *,
        reported and (min_value < physical_min or max_value > physical_max) as impossible,
        latest_at >= {{ window_end('window_start', 'window_ms') }}
            and reading_count < {{ var('dropout_fraction') }} * expected_readings as dropped,
        if(flat, toUInt32(row_number() over by_run), 0) as flat_run,
        sum(if(flat, reading_count, 0)) over by_run as flat_readings
    from numbered
    window by_run as (
        partition by machine_id, sensor_id, run_number order by window_start
        rows between unbounded preceding and current row
    )
),

sensor_checks as (
    select
        {{ sensor_window_columns() }},
        reading_count,
        expected_readings,
        multiIf(impossible, 'impossible_value', dropped, 'dropout', '') as fault_kind,
        multiIf(
            impossible, greatest(physical_min - min_value, max_value - physical_max) / (physical_max - physical_min),
            dropped, 1 - reading_count / expected_readings,
            0.
        ) as score,
        flat_run,
        toUInt64(flat_readings) as flat_readings,
        flat_fraction,
        max_ingested_at,
        now64(3) as computed_at
    from checked
    where window_start >= since
)

select * from sensor_checks
