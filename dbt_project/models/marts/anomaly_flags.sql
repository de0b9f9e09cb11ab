-- Machine anomalies, one row per flagged (machine, sensor or '' for the whole machine, window):
--   spec_breach  readings outside the spec limits of the machine's model (int_spec_breaches, the materialized view),
--                where limits are set; score: the largest excess as a fraction of the spec band; critical beyond
--                var spec_critical_margin
--   level        the sensor's window mean against the baseline (|z|)
--   spike        the reading furthest from its window's trend, in noise units
--   drift        EWMA of the sensor's residual against its machine's other sensors (while the window's own
--                residual is at least half the threshold on the same side)
--   multivariate Hotelling T-squared per sensor of the machine's window means
-- The four statistical detectors flag a window when their score reaches the machine's learned threshold
-- (int_detector_thresholds) in at least var persistence_flags of var persistence_windows consecutive windows, or
-- on its own at var critical_factor x the threshold (critical); not inside a commissioning period (the engineer named
-- it healthy: its windows are scored out of sample to calibrate the thresholds, not alerted on). A window near a
-- sensor fault (within var fault_suppress_windows windows; for a stuck sensor, of any window of its still run) is not
-- flagged: on that sensor for spec_breach, level and spike, on the whole machine for drift and multivariate (they
-- read all its sensors). A run of windows over the threshold that falls to under var settle_ratio of its level and
-- stays there has settled at a new operating point: not flagged (docs/warehouse.md). Sensor faults are in
-- sensor_fault_flags.
-- Scores are first cut at the lowest threshold of any machine (plain comparisons, so that the score tables' minmax
-- indexes skip the granules without a flag): this mart reads little of a long history.
{%- set k = var('persistence_flags') -%}
{%- set n = var('persistence_windows') -%}
{%- set reach = var('fault_suppress_windows') -%}
{%- set settle = var('settle_windows') -%}
{%- set thresholds_table = ref('int_detector_thresholds') -%}
{%- set lowest = {} -%}
{%- for detector in ['level', 'spike', 'drift', 'multivariate'] -%}
{%- do lowest.update({detector: '(select min(' ~ detector ~ '_threshold) from ' ~ thresholds_table ~ ')'}) -%}
{%- endfor %}
with

spec_breaches as (
    select * from {{ ref('int_spec_breaches') }}
),

thresholds as (
    select * from {{ thresholds_table }} final
),

cadence as (
    select * from {{ ref('int_machine_cadence') }} final
),

sensor_scores as (
    {{ latest_rows_where(
        ref('int_sensor_window_scores'), ['machine_id', 'sensor_id', 'window_start'],
        'level_score >= ' ~ lowest['level'] ~ ' or spike_score >= ' ~ lowest['spike']
        ~ ' or drift_score >= ' ~ lowest['drift'] ~ ' or drift_score <= -' ~ lowest['drift']
    ) }}
),

machine_scores as (
    {{ latest_rows_where(
        ref('int_machine_window_scores'), ['machine_id', 'window_start'],
        "baseline_kind != '' and multivariate_score >= " ~ lowest['multivariate']
    ) }}
),

sensor_faults as (
    select machine_id, sensor_id, window_start, window_ms, 0 as still_before from ({{ latest_rows_where(
        ref('int_sensor_window_checks'), ['machine_id', 'sensor_id', 'window_start'], "fault_kind != ''"
    ) }})
    union all
    -- a stuck sensor was still since its run began, windows before it was judged stuck
    select scores.machine_id, scores.sensor_id, scores.window_start, cadence.window_ms, scores.flat_run - 1
    from ({{ latest_rows_where(ref('int_sensor_window_scores'), ['machine_id', 'sensor_id', 'window_start'], 'stuck') }})
        as scores
    inner join cadence on scores.machine_id = cadence.machine_id
),

-- what a sensor fault suppresses: the sensor's windows near it (sensor_id) and the machine's ('', for the detectors
-- that read all its sensors)
suppressed_windows as (
    select distinct
        machine_id,
        arrayJoin([sensor_id, '']) as sensor_id,
        arrayJoin(arrayMap(
            k -> window_start + toIntervalMillisecond(k * window_ms),
            range(-{{ reach }} - toInt64(still_before), {{ reach + 1 }})
        )) as window_start
    from sensor_faults
),

-- each score table read once: the sensor detectors unpivoted, one row per detector
candidates as (
    select
        machine_id, sensor_id, detector.1 as flag_kind, window_start, window_end, baseline_kind, baseline_version,
        calibrating, detector.2 as score, detector.3 as now
    from sensor_scores
    -- a drift needs the window's own residual on the drift's side too (half the threshold): the smoothed score
    -- lags, and would go on flagging for windows after the sensor came back
    array join [
        ('level', level_score, level_score),
        ('spike', spike_score, spike_score),
        ('drift', abs(drift_score), 2 * residual * sign(drift_score))
    ] as detector
    union all
    select
        machine_id, '' as sensor_id, 'multivariate' as flag_kind, window_start, window_end, baseline_kind,
        baseline_version, calibrating, multivariate_score as score, score as now
    from machine_scores
),

exceeding as (
    select
        candidates.machine_id as machine_id,
        candidates.sensor_id as sensor_id,
        candidates.flag_kind as flag_kind,
        candidates.window_start as window_start,
        candidates.window_end as window_end,
        candidates.score as score,
        candidates.now as now,
        multiIf(
            flag_kind = 'level', thresholds.level_threshold,
            flag_kind = 'spike', thresholds.spike_threshold,
            flag_kind = 'drift', thresholds.drift_threshold,
            thresholds.multivariate_threshold
        ) as threshold,
        {{ window_index('candidates.window_start', 'cadence.window_ms') }} as position
    from candidates
    inner join thresholds
        on candidates.machine_id = thresholds.machine_id
        and candidates.baseline_kind = thresholds.baseline_kind
        and candidates.baseline_version = thresholds.baseline_version
    inner join cadence on candidates.machine_id = cadence.machine_id
    where candidates.score >= threshold and candidates.now >= threshold and not candidates.calibrating
),

-- runs of windows over the threshold (gaps of at most var settle_memory_windows), each window's level in z units
runs as (
    select
        *,
        multiIf(flag_kind = 'multivariate', sqrt(score), flag_kind = 'drift', now, score) as level,
        sum(gap > {{ var('settle_memory_windows') }}) over (
            partition by machine_id, sensor_id, flag_kind order by position rows unbounded preceding
        ) as run
    from (
        select
            *,
            position - lagInFrame(position, 1, toInt64(-1e9)) over (
                partition by machine_id, sensor_id, flag_kind order by position
                rows between 1 preceding and current row
            ) as gap
        from exceeding
    )
),

-- a run's level at each window: the median of its last settle_windows windows (a transient does not move it)
levelled as (
    select
        *,
        quantileExact(0.5)(level) over (
            partition by machine_id, sensor_id, flag_kind, run order by position
            range between {{ settle - 1 }} preceding and current row
        ) as rolling_level
    from runs
),

-- settled: the run had lasted var settle_min_windows windows before the last settle_windows, and the level of
-- these (their median) is under var settle_ratio of the highest level before them: the machine has come to rest at
-- a new operating point (a fault that partly remains, or a new set point), which re-baselining makes its normal
settling as (
    select
        *,
        count() over earlier >= {{ var('settle_min_windows') }}
            and rolling_level < {{ var('settle_ratio') }} * max(rolling_level) over earlier as settled
    from levelled
    window earlier as (
        partition by machine_id, sensor_id, flag_kind, run order by position
        range between unbounded preceding and {{ settle }} preceding
    )
),

counted as (
    select
        *,
        count() over (
            partition by machine_id, sensor_id, flag_kind order by position
            range between {{ n - 1 }} preceding and current row
        ) as in_span_ending_here
    from settling
    where not settled
),

persisted as (
    select
        *,
        max(in_span_ending_here) over (
            partition by machine_id, sensor_id, flag_kind order by position
            range between current row and {{ n - 1 }} following
        ) >= {{ k }} or score >= {{ var('critical_factor') }} * threshold as flagged
    from counted
),

statistical_flags as (
    select
        machine_id,
        sensor_id,
        flag_kind,
        window_start,
        window_end,
        score,
        {{ severity('score', 'threshold') }} as severity
    from persisted
    where flagged
),

spec_flags as (
    select
        spec_breaches.machine_id as machine_id,
        spec_breaches.sensor_id as sensor_id,
        'spec_breach' as flag_kind,
        {{ window_start('spec_breaches.event_time', 'cadence.window_ms') }} as window_start,
        {{ window_end('window_start', 'any(cadence.window_ms)') }} as window_end,
        max(greatest(value - upper, lower - value) / (upper - lower)) as score,
        if(score >= {{ var('spec_critical_margin') }}, 'critical', 'warning') as severity
    from spec_breaches
    inner join cadence on spec_breaches.machine_id = cadence.machine_id
    group by machine_id, sensor_id, window_start
),

flags as (
    select *, sensor_id as suppressed_by from spec_flags
    union all
    -- drift and multivariate read all the machine's sensors: a fault on any of them suppresses them
    select *, if(flag_kind in ('drift', 'multivariate'), '', sensor_id) as suppressed_by from statistical_flags
),

anomaly_flags as (
    select
        flags.machine_id as machine_id,
        flags.sensor_id as sensor_id,
        flags.flag_kind as flag_kind,
        flags.window_start as window_start,
        flags.window_end as window_end,
        flags.score as score,
        flags.severity as severity
    from flags
    left anti join suppressed_windows as suppressed
        on flags.machine_id = suppressed.machine_id
        and flags.suppressed_by = suppressed.sensor_id
        and flags.window_start = suppressed.window_start
)

select * from anomaly_flags
