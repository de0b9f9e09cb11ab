{#-
  A machine's healthy baseline, fitted on complete windows (every sensor present, no impossible value or dropout)
  of int_sensor_windows: per sensor the mean and standard deviation of the window means, the mean within-window
  residual MAD (the spike detector's noise scale), the mean readings per window, the smallest step between two
  readings (a quantized sensor's resolution) and the longest run of windows it sat still; and the correlation
  matrix of the window means (the multivariate and drift detectors). The same SQL fits the trailing baselines
  (int_trailing_baselines) and the commissioning baselines (`plantwatch baseline fit`, macro fit_baseline), so the
  two cannot disagree.
-#}

{#- One row per complete (machine, window): the sensors' window means (and, to fit a baseline, the other statistics
    it keeps: `windows` then needs each sensor's flat_run, see healthy_windows) as arrays, sensors in id order. -#}
{% macro machine_window_vectors(windows, for_baseline=true) %}
select
    machine_id,
    window_start,
    any(window_ms) as window_ms,
    arraySort(groupArray(sensor_id)) as sensor_ids,
    arraySort((x, s) -> s, groupArray(sensor_kind), groupArray(sensor_id)) as sensor_kinds,
    arraySort((x, s) -> s, groupArray(mean), groupArray(sensor_id)) as means,
    {%- if for_baseline %}
    arraySort((x, s) -> s, groupArray(residual_mad), groupArray(sensor_id)) as noise_mads,
    arraySort((x, s) -> s, groupArray(toFloat64(reading_count)), groupArray(sensor_id)) as reading_counts,
    arraySort((x, s) -> s, groupArray(if(min_step > 0, min_step, inf)), groupArray(sensor_id)) as min_steps,
    arraySort((x, s) -> s, groupArray(flat_run), groupArray(sensor_id)) as flat_runs,
    {%- endif %}
    max(max_ingested_at) as max_ingested_at
from {{ windows }}
group by machine_id, window_start
{% endmacro %}

{#- The windows of `windows` (int_sensor_windows rows) without an impossible value or a dropout on any sensor, with
    each sensor's flat run from `checks` (int_sensor_window_checks) where that run ended: on the run's last window
    when the next window has readings enough to judge (2), 0 elsewhere. A run still going at the end of the data is
    no evidence of how long the sensor sits still when healthy (a sensor freezing now would raise its own stuck
    threshold), so it counts only once it has ended. -#}
{% macro healthy_windows(windows, checks) %}
select
    windows.machine_id as machine_id,
    windows.sensor_id as sensor_id,
    windows.sensor_kind as sensor_kind,
    windows.window_start as window_start,
    windows.window_ms as window_ms,
    windows.reading_count as reading_count,
    windows.mean as mean,
    windows.residual_mad as residual_mad,
    windows.min_step as min_step,
    windows.max_ingested_at as max_ingested_at,
    checks.ended_flat_run as flat_run
from {{ windows }} as windows
inner join (
    select
        machine_id,
        sensor_id,
        window_start,
        if(
            leadInFrame(flat_run, 1, toUInt32(0)) over next_window != flat_run + 1
                and leadInFrame(reading_count, 1, toUInt64(0)) over next_window >= 2,
            flat_run,
            toUInt32(0)
        ) as ended_flat_run
    from {{ checks }}
    window next_window as (partition by machine_id, sensor_id order by window_start rows between current row and 1 following)
) as checks
    on {{ same_window('windows', 'checks') }}
left anti join (
    select machine_id, window_start from {{ checks }} where fault_kind != '' group by machine_id, window_start
) as faulty on {{ same_window('windows', 'faulty', per_machine=true) }}
{% endmacro %}

{#- Mergeable moments of a group of window vectors (sum them over groups, then baseline_from_moments). -#}
{% macro baseline_moments() -%}
    count() as windows,
    sumForEach(means) as sum_x,
    sumForEach(arrayFlatten(arrayMap(a -> arrayMap(b -> a * b, means), means))) as sum_xx,
    sumForEach(noise_mads) as sum_noise,
    sumForEach(reading_counts) as sum_counts,
    minForEach(min_steps) as min_steps,
    maxForEach(flat_runs) as max_flat_runs
{%- endmacro %}

{#- Moments of several groups summed (the columns baseline_moments makes). -#}
{% macro merged_moments() -%}
    sum(windows) as windows,
    sumForEach(sum_x) as sum_x,
    sumForEach(sum_xx) as sum_xx,
    sumForEach(sum_noise) as sum_noise,
    sumForEach(sum_counts) as sum_counts,
    minForEach(min_steps) as min_steps,
    maxForEach(max_flat_runs) as max_flat_runs
{%- endmacro %}

{#- means, stds, noise_mads, reading_counts, quanta, max_flat_runs and correlation from the moments' columns. -#}
{% macro baseline_from_moments() -%}
    arrayMap(s -> s / windows, sum_x) as means,
    arrayMap(
        (i, m) -> sqrt(greatest(sum_xx[(i - 1) * length(sum_x) + i] / windows - m * m, 0.)) + 1e-9 + 1e-6 * abs(m),
        arrayEnumerate(means), means
    ) as stds,
    arrayMap(s -> s / windows, sum_noise) as noise_mads,
    arrayMap(s -> s / windows, sum_counts) as reading_counts,
    arrayMap(s -> if(isFinite(s), s, 0.), min_steps) as quanta,
    arrayMap(r -> toUInt32(r), max_flat_runs) as flat_runs,
    arrayMap(
        i -> arrayMap(
            j -> if(
                i = j, 1.,
                (sum_xx[(i - 1) * length(sum_x) + j] / windows - means[i] * means[j]) / (stds[i] * stds[j])
            ),
            arrayEnumerate(means)
        ),
        arrayEnumerate(means)
    ) as correlation
{%- endmacro %}

{#- The detectors' view of a baseline: the inverse of the ridge-regularised correlation matrix. The ridge grows
    when few windows estimate many correlations (at least dimensions / windows). -#}
{% macro baseline_inverse(correlation, windows) -%}
{{ matrix_inverse(add_ridge(correlation, 'greatest(' ~ var('ridge') ~ ', length(' ~ correlation ~ ') / ' ~ windows ~ ')')) }}
{%- endmacro %}

{#-
  `plantwatch baseline fit`: fit a commissioning baseline for one machine on its healthy windows in
  [date_from, date_to) and append it to the baselines table (the newest fit of a machine wins), as var cv_folds + 1
  rows: fold 0 is the baseline; fold k (1..cv_folds) leaves out the k-th contiguous stretch of the period, so that
  the windows of that stretch are scored out of sample: the scores the detectors' thresholds are calibrated on
  (int_detector_thresholds). Fold 0 also keeps each sensor's healthy drift: the slope of its window means over the
  period when a straight line explains at least var drift_trend_r2 of their variance (a sensor that mostly drifted,
  e.g. a rig warming up), 0 otherwise. The sensor set is the one most windows have.
-#}
{% macro fit_baseline(machine_id, date_from, date_to, fitted_by='plantwatch baseline fit') %}
{%- set baselines = source('plantwatch', 'machine_baselines') -%}
{%- set folds = var('cv_folds') -%}
{%- set fitted_at = modules.datetime.datetime.now(modules.pytz.utc).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3] -%}
{%- set period_from = "parseDateTime64BestEffort('" ~ date_from ~ "', 3, 'UTC')" -%}
{%- set period_to = "parseDateTime64BestEffort('" ~ date_to ~ "', 3, 'UTC')" -%}
{%- set ctes -%}
with

windows as (
    select * from {{ ref('int_sensor_windows') }} final
    where machine_id = '{{ machine_id }}' and window_start >= {{ period_from }} and window_end <= {{ period_to }}
),

checks as (
    select * from {{ ref('int_sensor_window_checks') }} final
    where machine_id = '{{ machine_id }}' and window_start >= {{ period_from }} and window_end <= {{ period_to }}
),

healthy as (
    {{ healthy_windows('windows', 'checks') }}
),

vectors as (
    {{ machine_window_vectors('healthy') }}
),

sensor_set as (
    select sensor_ids from vectors group by sensor_ids order by count() desc limit 1
),

chosen as (
    select
        *,
        dateDiff('millisecond', {{ period_from }}, window_start) / 1000 as t,
        1 + least(
            {{ folds - 1 }},
            toUInt8(intDiv({{ folds }} * dateDiff('millisecond', {{ period_from }}, window_start),
                           dateDiff('millisecond', {{ period_from }}, {{ period_to }})))
        ) as fold
    from vectors
    where sensor_ids = (select sensor_ids from sensor_set)
),

fold_moments as (
    select fold, {{ baseline_moments() }}
    from chosen
    group by fold
),

total as (
    select toUInt8(0) as fold, {{ merged_moments() }}
    from fold_moments
),

left_out as (
    select
        fold_moments.fold as fold,
        total.windows - fold_moments.windows as windows,
        arrayMap((a, b) -> a - b, total.sum_x, fold_moments.sum_x) as sum_x,
        arrayMap((a, b) -> a - b, total.sum_xx, fold_moments.sum_xx) as sum_xx,
        arrayMap((a, b) -> a - b, total.sum_noise, fold_moments.sum_noise) as sum_noise,
        arrayMap((a, b) -> a - b, total.sum_counts, fold_moments.sum_counts) as sum_counts,
        total.min_steps as min_steps,
        total.max_flat_runs as max_flat_runs
    from fold_moments
    cross join total
),

trend_sums as (
    select
        count() as n,
        avg(t) as mean_t,
        varPop(t) as var_t,
        sumForEach(arrayMap(x -> x * t, means)) as sum_tx,
        sumForEach(means) as sum_x,
        sumForEach(arrayMap(x -> x * x, means)) as sum_xx
    from chosen
),

trend as (
    select
        arrayMap((stx, sx) -> (stx / n - mean_t * sx / n) / greatest(var_t, 1e-9), sum_tx, sum_x) as slopes,
        arrayMap(
            (slope, sx, sxx) -> if(sxx / n - pow(sx / n, 2) > 1e-18, pow(slope, 2) * var_t / (sxx / n - pow(sx / n, 2)), 0.),
            slopes, sum_x, sum_xx
        ) as r_squared
    from trend_sums
),

all_folds as (
    select * from total
    union all
    select * from left_out
),

fitted as (
    select
        '{{ machine_id }}' as machine_id,
        toDateTime64('{{ fitted_at }}', 3, 'UTC') as fitted_at,
        {{ period_from }} as fitted_from,
        {{ period_to }} as fitted_to,
        '{{ fitted_by }}' as fitted_by,
        fold,
        if(fold = 0, fitted_from,
           fitted_from + toIntervalMillisecond(intDiv((fold - 1) * dateDiff('millisecond', fitted_from, fitted_to),
                                                      {{ folds }}))) as fold_from,
        if(fold = 0, fitted_to,
           fitted_from + toIntervalMillisecond(intDiv(fold * dateDiff('millisecond', fitted_from, fitted_to),
                                                      {{ folds }}))) as fold_to,
        windows,
        (select sensor_ids from sensor_set) as sensor_ids,
        {{ baseline_from_moments() }},
        if(
            fold = 0,
            arrayMap((s, r2) -> if(r2 >= {{ var('drift_trend_r2') }}, s, 0.), (select slopes from trend),
                     (select r_squared from trend)),
            arrayMap(x -> 0., sum_x)
        ) as drift_rates
    from all_folds
    where windows > 0
)
{%- endset -%}
{% set found = run_query(ctes ~ " select count(), any(length(sensor_ids)) from chosen") %}
{% if found.rows[0][0] < var('commissioning_min_windows') %}
    {{ exceptions.raise_compiler_error(
        'not enough healthy windows for ' ~ machine_id ~ ' in that period: ' ~ found.rows[0][0]
        ~ ' complete windows without a sensor fault, ' ~ var('commissioning_min_windows')
        ~ ' needed (has `plantwatch transform` run since its readings landed?)'
    ) }}
{% endif %}
{% do run_query(
    "insert into " ~ baselines ~ " (machine_id, fitted_at, fitted_from, fitted_to, fitted_by, fold, fold_from, fold_to,"
    ~ " windows, sensor_ids, means, stds, noise_mads, reading_counts, quanta, flat_runs, drift_rates, correlation) "
    ~ ctes ~ " select machine_id, fitted_at, fitted_from, fitted_to, fitted_by, fold, fold_from, fold_to, windows,"
    ~ " sensor_ids, means, stds, noise_mads, reading_counts, quanta, flat_runs, drift_rates, correlation from fitted"
) %}
{{ log('fitted ' ~ machine_id ~ ': ' ~ found.rows[0][0] ~ ' windows, ' ~ found.rows[0][1] ~ ' sensors', info=True) }}
{% endmacro %}

{#- For each machine with new rows (`changed`, a changed_since CTE, joined to the `cadence` CTE): the trailing block
    its earliest change falls in (since_block) and where the reference windows of that block's baseline begin
    (context_since): what a model that recomputes trailing blocks must read again. -#}
{% macro trailing_block_context(changed, cadence) %}
{%- set block = var('baseline_block_windows') -%}
{%- set blocks_back = (var('baseline_reference_windows') / block) | round(0, 'ceil') | int -%}
select
    {{ changed }}.machine_id as machine_id,
    intDiv({{ window_index(changed ~ '.since', cadence ~ '.window_ms') }}, {{ block }}) as since_block,
    {{ ms_time('(since_block - ' ~ blocks_back ~ ') * ' ~ block ~ ' * ' ~ cadence ~ '.window_ms') }} as context_since
from {{ changed }}
inner join {{ cadence }} on {{ changed }}.machine_id = {{ cadence }}.machine_id
{% endmacro %}
