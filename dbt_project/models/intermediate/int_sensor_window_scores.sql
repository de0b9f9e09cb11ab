{{ config(**incremental_config(
    '(machine_id, sensor_id, window_start)', partition_by='window_start', fine_index=true,
    minmax=['computed_at', 'calibrating', 'level_score', 'spike_score', 'drift_score'],
)) }}
{%- set context = var('drift_context_windows') -%}
-- One row per sensor of a scored machine window (a baseline in force):
--   level_score  |z| of the sensor's window mean against the baseline (int_machine_window_scores)
--   spike_score  the reading furthest from the window's own trend, in noise units of the baseline (1.4826 x its
--                residual MAD, at least half the sensor's quantum)
--   drift_score  an EWMA (half-life var drift_half_life_windows windows) of the sensor's residual against its
--                machine's other sensors, clipped to +-var drift_clip so that one spike is no drift
--   stuck        the sensor has sat still (one value) for more windows in a row than var stuck_factor x the longest
--                it did when healthy (+ var stuck_margin_windows if it ever sat still), over at least
--                var stuck_min_readings readings, while most of the machine's
--                other sensors moved (all of them still is a machine stopped, not a stuck sensor)
with

machine_scores as (
    select * from {{ ref('int_machine_window_scores') }} final
),

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

checks as (
    select * from {{ ref('int_sensor_window_checks') }} final
),

changed as materialized (
    {{ changed_since(ref('int_machine_window_scores')) }}
),

with_context as materialized (
    select
        changed.machine_id as machine_id,
        changed.since as since,
        changed.since - toIntervalMillisecond({{ context }} * cadence.window_ms) as context_since
    from changed
    inner join {{ ref('int_machine_cadence') }} as cadence final on changed.machine_id = cadence.machine_id
),

in_scope as (
    select scoped.*, with_context.since as since
    from (
        {{ in_scope('machine_scores', 'with_context', time_column='window_start', since_column='context_since') }}
    ) as scoped
    inner join with_context on scoped.machine_id = with_context.machine_id
    where scoped.baseline_kind != ''
),

per_sensor as (
    select
        machine_id,
        window_start,
        window_end,
        window_ms,
        since,
        baseline_kind,
        baseline_version,
        calibrating,
        max_ingested_at,
        sensor.1 as sensor_id,
        sensor.2 as sensor_z,
        sensor.3 as residual,
        sensor.4 as noise_scale,
        sensor.5 as healthy_flat_run
    from in_scope
    array join arrayZip(sensor_ids, z, residuals, noise_scales, healthy_flat_runs) as sensor
),

scoped_windows as (
    select machine_id, sensor_id, window_start, residual_peak
    from windows
    where machine_id in (select machine_id from with_context)
      and window_start >= (select min(context_since) from with_context)
),

scoped_checks as (
    select machine_id, sensor_id, window_start, flat_run, flat_readings, flat_fraction
    from checks
    where machine_id in (select machine_id from with_context)
      and window_start >= (select min(context_since) from with_context)
),

with_windows as (
    select
        per_sensor.machine_id as machine_id,
        per_sensor.sensor_id as sensor_id,
        per_sensor.window_start as window_start,
        per_sensor.window_end as window_end,
        per_sensor.window_ms as window_ms,
        per_sensor.since as since,
        per_sensor.baseline_kind as baseline_kind,
        per_sensor.baseline_version as baseline_version,
        per_sensor.calibrating as calibrating,
        per_sensor.max_ingested_at as max_ingested_at,
        per_sensor.sensor_z as sensor_z,
        per_sensor.residual as residual,
        per_sensor.noise_scale as noise_scale,
        per_sensor.healthy_flat_run as healthy_flat_run,
        windows.residual_peak as residual_peak,
        checks.flat_run as flat_run,
        checks.flat_readings as flat_readings,
        checks.flat_fraction as flat_fraction
    from per_sensor
    inner join scoped_windows as windows on {{ same_window('per_sensor', 'windows') }}
    inner join scoped_checks as checks on {{ same_window('per_sensor', 'checks') }}
),

smoothed as (
    select
        *,
        abs(sensor_z) as level_score,
        residual_peak / noise_scale as spike_score,
        exponentialTimeDecayedAvg({{ var('drift_half_life_windows') / 0.6931471805599453 }})(
            greatest(-{{ var('drift_clip') }}, least({{ var('drift_clip') }}, residual)),
            toFloat64({{ window_index('window_start', 'window_ms') }})
        ) over by_time as drift_score,
        flat_run > {{ var('stuck_factor') }} * healthy_flat_run
            + if(healthy_flat_run > 0, {{ var('stuck_margin_windows') }}, 0)
            and flat_readings >= {{ var('stuck_min_readings') }}
            and flat_fraction < {{ var('stopped_fraction') }} as stuck
    from with_windows
    window by_time as (
        partition by machine_id, sensor_id order by window_start rows between {{ context }} preceding and current row
    )
),

scored as (
    select
        machine_id,
        sensor_id,
        window_start,
        window_end,
        baseline_kind,
        baseline_version,
        calibrating,
        residual,
        level_score,
        spike_score,
        drift_score,
        stuck,
        flat_run,
        max_ingested_at,
        now64(3) as computed_at
    from smoothed
    where window_start >= since
)

select * from scored
