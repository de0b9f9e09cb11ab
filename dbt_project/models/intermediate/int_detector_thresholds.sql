{{ config(**incremental_config('(machine_id, baseline_kind, baseline_version)')) }}
{%- set block = var('baseline_block_windows') -%}
{%- set blocks_back = (var('baseline_reference_windows') / block) | round(0, 'ceil') | int -%}
{%- set detectors = ['multivariate', 'level', 'spike', 'drift'] -%}
-- Each detector's threshold, learned from the machine's own scores over a healthy period so that about
-- var false_alarm_rate of healthy windows would exceed it (before persistence): for a commissioning baseline, the
-- out-of-sample scores of the fitted period (every window scored by the fold that left it out); for a trailing
-- baseline, the scores of the reference windows before each block. The rate is far in the tail of few windows, so
-- the threshold extrapolates the tail from the median and the 90th percentile (macro tail_threshold), which a few
-- faulty windows in the period do not move; it is never below the detector's var min_threshold.
-- Detector scores per window: multivariate (T-squared per sensor), level (largest |z|), spike (largest spike score),
-- drift (largest |drift score|) over the machine's sensors. Fewer than var threshold_min_windows scored windows: no
-- threshold (the machine is still learning).
with

machine_scores as (
    select * from {{ ref('int_machine_window_scores') }} final
),

sensor_scores as (
    select * from {{ ref('int_sensor_window_scores') }} final
),

cadence as materialized (
    select * from {{ ref('int_machine_cadence') }} final
),

changed as materialized (
    {{ changed_since(ref('int_sensor_window_scores')) }}
),

with_context as materialized (
    {{ trailing_block_context('changed', 'cadence') }}
),

{#- a commissioning baseline's calibrating windows, wherever they lie; the reference windows of trailing blocks -#}
{%- for name, relation in [('scoped_machine_scores', 'machine_scores'), ('scoped_sensor_scores', 'sensor_scores')] %}
{{ name }} as (
    -- two disjoint reads rather than one with an `or`, so that each prunes by its own index (the window_start of
    -- the primary key, the calibrating minmax)
    select {{ relation }}.*
    from {{ relation }}
    where {{ relation }}.machine_id in (select machine_id from with_context) and {{ relation }}.calibrating
    union all
    select {{ relation }}.*
    from {{ relation }}
    inner join with_context on {{ relation }}.machine_id = with_context.machine_id
    where {{ relation }}.machine_id in (select machine_id from with_context)
      and not {{ relation }}.calibrating
      and {{ relation }}.window_start >= with_context.context_since
      and {{ relation }}.window_start >= (select min(context_since) from with_context)
),
{% endfor %}
sensor_maxima as (
    select machine_id, window_start, max(spike_score) as spike_score, max(abs(drift_score)) as drift_score
    from scoped_sensor_scores
    group by machine_id, window_start
),

window_scores as (
    select
        scores.machine_id as machine_id,
        scores.window_start as window_start,
        scores.window_ms as window_ms,
        scores.baseline_kind as baseline_kind,
        scores.baseline_version as baseline_version,
        scores.calibrating as calibrating,
        scores.dims as dims,
        scores.multivariate_score as multivariate_score,
        scores.level_score as level_score,
        sensor_maxima.spike_score as spike_score,
        sensor_maxima.drift_score as drift_score
    from scoped_machine_scores as scores
    inner join sensor_maxima on {{ same_window('scores', 'sensor_maxima', per_machine=true) }}
    where scores.baseline_kind != ''
),

commissioning as (
    select
        machine_id,
        'commissioning' as baseline_kind,
        baseline_version,
        count() as calibration_windows,
        max(dims) as dims,
        {%- for detector in detectors %}
        quantilesExact(0.5, 0.9)({{ detector }}_score) as {{ detector }}_quantiles{{ ',' if not loop.last }}
        {%- endfor %}
    from window_scores
    where baseline_kind = 'commissioning' and calibrating
    group by machine_id, baseline_version
),

trailing_blocks as (
    select
        machine_id,
        window_ms,
        intDiv({{ window_index('window_start', 'window_ms') }}, {{ block }}) as source_block,
        {%- for detector in detectors %}
        groupArray({{ detector }}_score) as {{ detector }}_scores,
        {%- endfor %}
        max(dims) as dims
    from window_scores
    where baseline_kind = 'trailing'
    group by machine_id, window_ms, source_block
),

trailing as (
    select
        trailing_blocks.machine_id as machine_id,
        'trailing' as baseline_kind,
        arrayJoin(arrayMap(k -> source_block + k, range(1, {{ blocks_back + 1 }}))) as block,
        {{ ms_time('block * ' ~ block ~ ' * trailing_blocks.window_ms') }} as baseline_version,
        sum(length(multivariate_scores)) as calibration_windows,
        max(dims) as dims,
        {%- for detector in detectors %}
        arrayReduce('quantilesExact(0.5, 0.9)', arrayFlatten(groupArray({{ detector }}_scores)))
            as {{ detector }}_quantiles{{ ',' if not loop.last }}
        {%- endfor %}
    from trailing_blocks
    inner join with_context on trailing_blocks.machine_id = with_context.machine_id
    where block > with_context.since_block
    group by machine_id, trailing_blocks.window_ms, block
),

calibrated as (
    select machine_id, baseline_kind, baseline_version, calibration_windows, dims,
           {%- for detector in detectors %}
           {{ detector }}_quantiles{{ ',' if not loop.last }}
           {%- endfor %}
    from commissioning
    union all
    select machine_id, baseline_kind, baseline_version, calibration_windows, dims,
           {%- for detector in detectors %}
           {{ detector }}_quantiles{{ ',' if not loop.last }}
           {%- endfor %}
    from trailing
),

fitted as (
    select
        machine_id,
        baseline_kind,
        baseline_version,
        toUInt64(calibration_windows) as calibration_windows,
        {%- for detector in detectors %}
        {{ tail_threshold(detector ~ '_quantiles', var('min_threshold')[detector]) }} as {{ detector }}_fitted,
        {%- endfor %}
        greatest(multivariate_fitted, {{ chi_square_per_dim('dims') }}) as multivariate_threshold,
        level_fitted as level_threshold,
        spike_fitted as spike_threshold,
        drift_fitted as drift_threshold,
        now64(3) as computed_at
    from calibrated
    where calibration_windows >= {{ var('threshold_min_windows') }}
),

thresholds as (
    select
        machine_id, baseline_kind, baseline_version, calibration_windows, multivariate_threshold, level_threshold,
        spike_threshold, drift_threshold, computed_at
    from fitted
)

select * from thresholds
