-- Machine anomalies, one row per flagged (machine, sensor or '' for the whole machine, window):
--   spec_breach  readings outside the spec limits of the machine's model (int_spec_breaches, the materialized view);
--                score: the largest excess as a fraction of the spec band; critical beyond var spec_critical_margin
--   spike        robust z of the window's largest deviation from its own trend (var spike_threshold)
--   drift        EWMA of the sensor's residual against its machine's other sensors (var drift_threshold)
--   multivariate Hotelling T-squared per sensor of the machine's window means (var multivariate_threshold)
-- A window near a sensor fault (var fault_suppress_seconds) is not flagged: on that sensor for spec_breach and
-- spike, on the whole machine for drift and multivariate (they read all its sensors). Sensor faults themselves are
-- in sensor_fault_flags.
-- The flag conditions are plain comparisons on the score columns (drift_score >= t or <= -t, not abs()), so that
-- the score tables' minmax indexes skip the granules without a flag: this mart reads little of a long history.
{%- set window = var('window_seconds') -%}
{%- set reach = (var('fault_suppress_seconds') / window) | round(0, 'ceil') | int %}
with

spec_breaches as (
    select * from {{ ref('int_spec_breaches') }}
),

sensor_scores as (
    {{ latest_rows_where(
        ref('int_sensor_window_scores'), ['machine_id', 'sensor_id', 'window_start'],
        'spike_score >= ' ~ var('spike_threshold') ~ ' or drift_score >= ' ~ var('drift_threshold')
        ~ ' or drift_score <= -' ~ var('drift_threshold')
    ) }}
),

machine_scores as (
    {{ latest_rows_where(
        ref('int_machine_window_scores'), ['machine_id', 'window_start'],
        "baseline_kind != '' and t_squared / dims >= " ~ var('multivariate_threshold')
    ) }}
),

sensor_faults as (
    {{ latest_rows_where(ref('int_sensor_fault_windows'), ['machine_id', 'sensor_id', 'window_start'], "fault_kind != ''") }}
),

suppressed_sensor_windows as (
    select distinct
        machine_id,
        sensor_id,
        arrayJoin(arrayMap(k -> window_start + toIntervalSecond(k * {{ window }}), range(-{{ reach }}, {{ reach + 1 }})))
            as window_start
    from sensor_faults
    where fault_kind != ''
),

suppressed_machine_windows as (
    select distinct machine_id, window_start
    from suppressed_sensor_windows
),

spec_flags as (
    select
        machine_id,
        sensor_id,
        'spec_breach' as flag_kind,
        {{ window_start('event_time') }} as window_start,
        {{ window_end('window_start') }} as window_end,
        max(greatest(value - upper, lower - value) / (upper - lower)) as score,
        if(score >= {{ var('spec_critical_margin') }}, 'critical', 'warning') as severity
    from spec_breaches
    group by machine_id, sensor_id, window_start
),

spike_flags as (
    select
        machine_id,
        sensor_id,
        'spike' as flag_kind,
        window_start,
        window_end,
        spike_score as score,
        {{ severity('score', var('spike_threshold')) }} as severity
    from sensor_scores
    where spike_score >= {{ var('spike_threshold') }}
),

drift_flags as (
    select
        machine_id,
        sensor_id,
        'drift' as flag_kind,
        window_start,
        window_end,
        abs(drift_score) as score,
        {{ severity('score', var('drift_threshold')) }} as severity
    from sensor_scores
    where abs(drift_score) >= {{ var('drift_threshold') }}
),

multivariate_flags as (
    select
        machine_id,
        '' as sensor_id,
        'multivariate' as flag_kind,
        window_start,
        window_end,
        t_squared / dims as score,
        {{ severity('score', var('multivariate_threshold')) }} as severity
    from machine_scores
    where baseline_kind != '' and t_squared / dims >= {{ var('multivariate_threshold') }}
),

sensor_level_flags as (
    select * from spec_flags
    union all
    select * from spike_flags
),

machine_level_flags as (
    select * from drift_flags
    union all
    select * from multivariate_flags
),

unsuppressed_sensor_level as (
    select flags.*
    from sensor_level_flags as flags
    left anti join suppressed_sensor_windows as suppressed
        on flags.machine_id = suppressed.machine_id
        and flags.sensor_id = suppressed.sensor_id
        and flags.window_start = suppressed.window_start
),

unsuppressed_machine_level as (
    select flags.*
    from machine_level_flags as flags
    left anti join suppressed_machine_windows as suppressed
        on flags.machine_id = suppressed.machine_id and flags.window_start = suppressed.window_start
),

anomaly_flags as (
    select machine_id, sensor_id, flag_kind, window_start, window_end, score, severity from unsuppressed_sensor_level
    union all
    select machine_id, sensor_id, flag_kind, window_start, window_end, score, severity from unsuppressed_machine_level
)

select * from anomaly_flags
