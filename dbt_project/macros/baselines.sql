{#-
  A machine's healthy baseline, fitted on complete windows (every sensor present, no sensor fault) of
  int_sensor_windows: per sensor the mean and standard deviation of the window means and the mean within-window
  residual MAD (the noise scale of the spike detector), and the correlation matrix of the window means (the
  multivariate and drift detectors). The same SQL fits the trailing baselines (int_trailing_baselines) and the
  commissioning baselines (`plantwatch baseline fit`, macro fit_baseline), so the two cannot disagree.
-#}

{#- One row per complete (machine, window): the vector of the sensors' window means, sensors in id order. -#}
{% macro machine_window_vectors(windows) %}
select
    machine_id,
    window_start,
    arraySort(groupArray(sensor_id)) as sensor_ids,
    arraySort((x, s) -> s, groupArray(sensor_kind), groupArray(sensor_id)) as sensor_kinds,
    arraySort((x, s) -> s, groupArray(mean), groupArray(sensor_id)) as means,
    arraySort((x, s) -> s, groupArray(residual_mad), groupArray(sensor_id)) as noise_mads,
    max(max_ingested_at) as max_ingested_at
from {{ windows }}
group by machine_id, window_start
{% endmacro %}

{#- Mergeable moments of a group of window vectors (sum them over groups, then baseline_from_moments). -#}
{% macro baseline_moments() -%}
    count() as windows,
    sumForEach(means) as sum_x,
    sumForEach(arrayFlatten(arrayMap(a -> arrayMap(b -> a * b, means), means))) as sum_xx,
    sumForEach(noise_mads) as sum_noise
{%- endmacro %}

{#- means, stds, noise_mads, correlation from columns windows, sum_x, sum_xx, sum_noise. -#}
{% macro baseline_from_moments() -%}
    arrayMap(s -> s / windows, sum_x) as means,
    arrayMap(
        (i, m) -> sqrt(greatest(sum_xx[(i - 1) * length(sum_x) + i] / windows - m * m, 0.)) + 1e-9 + 1e-6 * abs(m),
        arrayEnumerate(means), means
    ) as stds,
    arrayMap(s -> s / windows, sum_noise) as noise_mads,
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

{#- The detectors' view of a baseline: the inverse of the ridge-regularised correlation matrix. -#}
{% macro baseline_inverse(correlation) -%}
{{ matrix_inverse(add_ridge(correlation, var('ridge'))) }}
{%- endmacro %}

{#-
  `plantwatch baseline fit`: fit a commissioning baseline for one machine on [date_from, date_to) and append it to
  the baselines table (the newest fit of a machine wins). Windows with a sensor fault are left out; the sensor set
  is the one most windows have.
-#}
{% macro fit_baseline(machine_id, date_from, date_to, fitted_by='plantwatch baseline fit') %}
{%- set baselines = source('plantwatch', 'machine_baselines') -%}
{%- set fitted_at = modules.datetime.datetime.now(modules.pytz.utc).strftime('%Y-%m-%d %H:%M:%S.%f')[:-3] -%}
{%- set query -%}
insert into {{ baselines }}
    (machine_id, fitted_at, fitted_from, fitted_to, fitted_by, windows, sensor_ids, means, stds, noise_mads,
     correlation)
with

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

faults as (
    select * from {{ ref('int_sensor_fault_windows') }} final
),

healthy_windows as (
    select windows.*
    from windows
    left anti join (
        select machine_id, window_start from faults where fault_kind != '' group by machine_id, window_start
    ) as faulty on windows.machine_id = faulty.machine_id and windows.window_start = faulty.window_start
    where windows.machine_id = {{ "'" ~ machine_id ~ "'" }}
      and windows.window_start >= parseDateTime64BestEffort({{ "'" ~ date_from ~ "'" }}, 3, 'UTC')
      and windows.window_start < parseDateTime64BestEffort({{ "'" ~ date_to ~ "'" }}, 3, 'UTC')
),

vectors as (
    {{ machine_window_vectors('healthy_windows') }}
),

moments as (
    select machine_id, sensor_ids, {{ baseline_moments() }}
    from vectors
    group by machine_id, sensor_ids
    order by windows desc
    limit 1
),

fitted as (
    select
        machine_id,
        toDateTime64({{ "'" ~ fitted_at ~ "'" }}, 3, 'UTC') as fitted_at,
        parseDateTime64BestEffort({{ "'" ~ date_from ~ "'" }}, 3, 'UTC') as fitted_from,
        parseDateTime64BestEffort({{ "'" ~ date_to ~ "'" }}, 3, 'UTC') as fitted_to,
        {{ "'" ~ fitted_by ~ "'" }} as fitted_by,
        windows,
        sensor_ids,
        {{ baseline_from_moments() }}
    from moments
)

select
    machine_id, fitted_at, fitted_from, fitted_to, fitted_by, windows, sensor_ids, means, stds, noise_mads,
    correlation
from fitted
{%- endset -%}
{% do run_query(query) %}
{% set fitted = run_query(
    "select windows, length(sensor_ids) from " ~ baselines ~ " where machine_id = '" ~ machine_id
    ~ "' and fitted_at = toDateTime64('" ~ fitted_at ~ "', 3, 'UTC')"
) %}
{% if fitted.rows | length == 0 %}
    {{ exceptions.raise_compiler_error('no complete healthy windows for ' ~ machine_id ~ ' in that period') }}
{% endif %}
{{ log('fitted ' ~ machine_id ~ ': ' ~ fitted.rows[0][0] ~ ' windows, ' ~ fitted.rows[0][1] ~ ' sensors', info=True) }}
{% endmacro %}
