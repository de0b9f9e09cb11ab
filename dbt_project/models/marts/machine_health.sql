-- The latest state of every machine (the machines seed, plus any machine that reports without being in it):
--   stale     no reading for var stale_after_seconds (or 3 sampling periods, if longer; wall clock)
--   learning  not scored yet, and why: its sampling period is still being measured (var cadence_min_readings
--             readings), or it has no baseline yet (var baseline_min_windows complete windows for a trailing one,
--             or `plantwatch baseline fit`), or its thresholds are still being calibrated (var threshold_min_windows
--             scored windows); learning_detail says how much more data it needs
--   critical / warning by its worst open machine alert, else ok. Open sensor faults are counted but never make a
--   machine unhealthy.
with

machines as (
    select * from {{ ref('int_machines') }}
),

per_minute as (
    select * from {{ ref('int_readings_per_minute') }}
),

last_readings as (
    select * from {{ ref('int_machine_last_readings') }}
),

machine_scores as (
    select * from {{ ref('int_machine_window_scores') }} final
),

thresholds as (
    select * from {{ ref('int_detector_thresholds') }} final
),

alerts as (
    select * from {{ ref('alerts') }}
),

best_served as (
    -- its best-served sensor's readings so far, and the period they suggest while the cadence is not measured
    select
        machine_id,
        max(sensor_readings) as readings,
        argMax(
            if(sensor_readings > 1, dateDiff('millisecond', first_at, last_at) / (sensor_readings - 1), 0.),
            sensor_readings
        ) as rough_period_ms
    from (
        select
            machine_id,
            sensor_id,
            uniqExactMerge(readings_state) as sensor_readings,
            minMerge(first_at_state) as first_at,
            maxMerge(last_at_state) as last_at
        from per_minute
        group by machine_id, sensor_id
    )
    group by machine_id
),

latest_scores as (
    select
        machine_id,
        count() as complete_windows,
        argMax(baseline_kind, window_start) as baseline_kind,
        argMax(baseline_version, window_start) as baseline_version
    from machine_scores
    group by machine_id
),

all_machines as (
    select
        if(machines.machine_id != '', machines.machine_id, last_readings.machine_id) as machine_id,
        machines.line_id as line_id,
        machines.model as model,
        last_readings.last_reading_at as last_reading_at,
        last_readings.measured as measured,
        last_readings.period_ms as period_ms,
        last_readings.window_ms as window_ms
    from machines
    full outer join last_readings on machines.machine_id = last_readings.machine_id
),

learning as (
    select
        all_machines.machine_id as machine_id,
        latest_scores.baseline_kind as baseline_kind,
        thresholds.machine_id != '' as calibrated,
        multiIf(
            all_machines.last_reading_at = {{ epoch() }}, '',
            not all_machines.measured,
            concat('measuring its sampling period: ', toString(best_served.readings), ' of ',
                   toString({{ var('cadence_min_readings') }}), ' readings'),
            latest_scores.baseline_kind = '',
            concat('learning its baseline: ', toString(least(latest_scores.complete_windows,
                   {{ var('baseline_min_windows') }})), ' of {{ var('baseline_min_windows') }} complete windows of ',
                   toString(all_machines.window_ms / 1000), ' s (or `plantwatch baseline fit`)'),
            not calibrated,
            concat('calibrating its thresholds: needs ', toString({{ var('threshold_min_windows') }}),
                   ' scored windows of ', toString(all_machines.window_ms / 1000), ' s'),
            ''
        ) as learning_detail
    from all_machines
    left join best_served on all_machines.machine_id = best_served.machine_id
    left join latest_scores on all_machines.machine_id = latest_scores.machine_id
    left join thresholds
        on latest_scores.machine_id = thresholds.machine_id
        and latest_scores.baseline_kind = thresholds.baseline_kind
        and latest_scores.baseline_version = thresholds.baseline_version
),

open_alerts as (
    select
        machine_id,
        countIf(category = 'machine') as open_alerts,
        countIf(category = 'machine' and severity = 'critical') as open_critical,
        countIf(category = 'sensor') as open_sensor_faults
    from alerts
    where status = 'open'
    group by machine_id
),

health as (
    select
        all_machines.machine_id as machine_id,
        all_machines.line_id as line_id,
        all_machines.model as model,
        multiIf(
            all_machines.last_reading_at = {{ epoch() }}
                or dateDiff('millisecond', all_machines.last_reading_at, now64(3)) > {{ at_least(
                    var('stale_after_seconds'), 3,
                    'if(all_machines.measured, toFloat64(all_machines.period_ms), best_served.rough_period_ms)'
                ) }},
            'stale',
            open_alerts.open_critical > 0, 'critical',
            open_alerts.open_alerts > 0, 'warning',
            learning.learning_detail != '', 'learning',
            'ok'
        ) as status,
        learning.learning_detail as learning_detail,
        learning.baseline_kind as baseline_kind,
        all_machines.period_ms / 1000 as sampling_period_s,
        all_machines.window_ms / 1000 as window_s,
        all_machines.last_reading_at as last_reading_at,
        toUInt64(open_alerts.open_alerts) as open_alerts,
        toUInt64(open_alerts.open_sensor_faults) as open_sensor_faults
    from all_machines
    left join learning on all_machines.machine_id = learning.machine_id
    left join best_served on all_machines.machine_id = best_served.machine_id
    left join open_alerts on all_machines.machine_id = open_alerts.machine_id
)

select * from health
