{{ config(**incremental_config(
    '(machine_id, window_start)', partition_by='window_start', fine_index=true,
    minmax=['computed_at', 'calibrating', 'multivariate_score', 'level_score'],
)) }}
{%- set folds = var('cv_folds') -%}
{%- set block = var('baseline_block_windows') -%}
{%- set spec_dict = ref('spec_limits_dict').schema ~ '.' ~ ref('spec_limits_dict').identifier %}
{#- each baseline column, and what stands in for it while a machine has no baseline (its scores are then 0) -#}
{%- set unscored = {
    'means': 'arrayMap(x -> 0., with_fit.means)',
    'stds': 'arrayMap(x -> 1., with_fit.means)',
    'noise_mads': 'arrayMap(x -> 0., with_fit.means)',
    'reading_counts': 'arrayMap(x -> 1., with_fit.means)',
    'quanta': 'arrayMap(x -> 0., with_fit.means)',
    'flat_runs': 'arrayMap(x -> toUInt32(0), with_fit.means)',
    'inverse': 'arrayMap(i -> arrayMap(j -> toFloat64(i = j), arrayEnumerate(with_fit.means)), arrayEnumerate(with_fit.means))',
} %}
-- One row per complete machine window (every sensor reported), scored against the machine's baseline: its
-- commissioning baseline if it has one (the newest fit whose period began by the window, the first fit before
-- that; a window inside the fitted period against the fold that left it out, so its scores are out of sample:
-- calibrating), the trailing baseline of its block otherwise; baseline_kind '' (scores 0) while it has neither.
--   z: each sensor's window mean in baseline standard deviations. A deviation counts as at least half the sensor's
--      quantum (a quantized sensor), its noise in a window mean, var min_std_fraction_of_spec of its spec band (if
--      it has one); a sensor that drifted in the commissioning period may drift on at var drift_allowance x its
--      healthy rate without alarm (the allowance grows with the time since the period).
--   level_score: the largest |z|; multivariate_score: Hotelling's T-squared of z under the baseline's correlation,
--      per sensor; residuals: each sensor given all the others (what the drift detector smooths).
with

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

trailing_baselines as (
    select * from {{ ref('int_trailing_baselines') }} final
),

commissioning_baselines as (
    select * from {{ ref('int_commissioning_baselines') }}
),

machines as (
    select * from {{ ref('int_machines') }}
),

changed as materialized (
    select machine_id, min(since) as since
    from (
        {{ changed_since(ref('int_sensor_windows')) }}
        union all
        {{ changed_since(ref('int_trailing_baselines'), 'block_start') }}
        {%- if is_incremental() %}
        union all
        -- a machine fitted (again) since it was last scored: its whole history, against the new fit
        select fits.machine_id as machine_id, {{ epoch() }} as since
        from (select machine_id, max(fitted_at) as fitted_at from commissioning_baselines group by machine_id) as fits
        left join (select machine_id, max(computed_at) as scored_at from {{ this }} group by machine_id) as scored
            on fits.machine_id = scored.machine_id
        where fits.fitted_at > scored.scored_at
        {%- endif %}
    )
    group by machine_id
),

in_scope as (
    {{ in_scope('windows', 'changed', time_column='window_start') }}
),

vectors as (
    {{ machine_window_vectors('in_scope', for_baseline=false) }}
),

fits as (
    select machine_id, fitted_at, fitted_from, fitted_to from commissioning_baselines where fold = 0
),

first_fits as (
    select
        machine_id,
        argMin(fitted_at, fitted_from) as first_fit,
        argMin(fitted_from, fitted_from) as first_from,
        argMin(fitted_to, fitted_from) as first_to
    from fits
    group by machine_id
),

-- the fit in force for each window: the newest one whose period began by the window (the first fit before that)
with_fit as (
    select
        vectors.machine_id as machine_id,
        vectors.window_start as window_start,
        vectors.window_ms as window_ms,
        vectors.sensor_ids as sensor_ids,
        vectors.sensor_kinds as sensor_kinds,
        vectors.means as means,
        vectors.max_ingested_at as max_ingested_at,
        first_fits.machine_id != '' as fitted,
        if(fits.machine_id != '', fits.fitted_at, first_fits.first_fit) as fit,
        if(fits.machine_id != '', fits.fitted_from, first_fits.first_from) as fit_from,
        if(fits.machine_id != '', fits.fitted_to, first_fits.first_to) as fit_to,
        if(
            fitted and vectors.window_start >= fit_from
                and {{ window_end('vectors.window_start', 'vectors.window_ms') }} <= fit_to,
            1 + least({{ folds - 1 }}, intDiv({{ folds }} * dateDiff('millisecond', fit_from, vectors.window_start),
                                              dateDiff('millisecond', fit_from, fit_to))),
            0
        ) as fold
    from vectors
    left join first_fits on vectors.machine_id = first_fits.machine_id
    asof left join fits on vectors.machine_id = fits.machine_id and vectors.window_start >= fits.fitted_from
),

with_baseline as (
    select
        with_fit.machine_id as machine_id,
        with_fit.window_start as window_start,
        with_fit.window_ms as window_ms,
        with_fit.sensor_ids as sensor_ids,
        with_fit.means as window_means,
        with_fit.max_ingested_at as max_ingested_at,
        multiIf(
            commissioning.machine_id != '' and commissioning.sensor_ids = with_fit.sensor_ids, 'commissioning',
            trailing.machine_id != '' and trailing.sensor_ids = with_fit.sensor_ids
                and trailing.windows >= {{ var('baseline_min_windows') }}, 'trailing',
            ''
        ) as baseline_kind,
        baseline_kind = 'commissioning' and with_fit.fold > 0 as calibrating,
        multiIf(
            baseline_kind = 'commissioning', commissioning.fitted_at,
            baseline_kind = 'trailing', trailing.block_start,
            {{ epoch() }}
        ) as baseline_version,
        if(baseline_kind = 'commissioning', commissioning.fitted_to, with_fit.window_start) as reference_end,
        arrayMap(
            kind -> {{ var('min_std_fraction_of_spec') }} * (
                dictGetOrDefault('{{ spec_dict }}', 'upper', tuple(machines.model, kind), 0.)
                - dictGetOrDefault('{{ spec_dict }}', 'lower', tuple(machines.model, kind), 0.)
            ),
            with_fit.sensor_kinds
        ) as spec_floors,
        {%- for column, without in unscored.items() %}
        multiIf(
            baseline_kind = 'commissioning', commissioning.{{ column }},
            baseline_kind = 'trailing', trailing.{{ column }},
            {{ without }}
        ) as {{ column }},
        {%- endfor %}
        if(baseline_kind = 'commissioning', commissioning.drift_rates, arrayMap(x -> 0., with_fit.means)) as drift_rates
    from with_fit
    left join machines on with_fit.machine_id = machines.machine_id
    left join commissioning_baselines as commissioning
        on with_fit.machine_id = commissioning.machine_id
        and with_fit.fit = commissioning.fitted_at
        and with_fit.fold = commissioning.fold
    left join trailing_baselines as trailing
        on with_fit.machine_id = trailing.machine_id
        and {{ ms_time('intDiv(' ~ window_index('with_fit.window_start', 'with_fit.window_ms') ~ ', ' ~ block ~ ') * '
                       ~ block ~ ' * with_fit.window_ms') }} = trailing.block_start
),

standardised as (
    select
        *,
        greatest(0., dateDiff('millisecond', reference_end, window_start) / 1000 + window_ms / 2000) as since_reference_s,
        arrayMap(
            (s, q, noise, n, floor, rate) -> sqrt(
                pow(greatest(s, q / 2, 1.4826 * noise / sqrt(greatest(n, 1.)), floor, 1e-9), 2)
                + pow({{ var('drift_allowance') }} * rate * since_reference_s, 2)
            ),
            stds, quanta, noise_mads, reading_counts, spec_floors, drift_rates
        ) as sigmas,
        arrayMap((x, m, s) -> if(baseline_kind = '', 0., (x - m) / s), window_means, means, sigmas) as z,
        {{ mat_vec('inverse', 'z') }} as u
    from with_baseline
),

scored as (
    select
        machine_id,
        window_start,
        {{ window_end('window_start', 'window_ms') }} as window_end,
        window_ms,
        baseline_kind,
        baseline_version,
        calibrating,
        sensor_ids,
        length(sensor_ids) as dims,
        z,
        {{ dot('z', 'u') }} as t_squared,
        t_squared / dims as multivariate_score,
        arrayMax(arrayMap(x -> abs(x), z)) as level_score,
        arrayMap((ui, i) -> ui / sqrt(inverse[i][i]), u, arrayEnumerate(u)) as residuals,
        arrayMap((noise, q) -> greatest(1.4826 * noise, q / 2, 1e-9), noise_mads, quanta) as noise_scales,
        flat_runs as healthy_flat_runs,
        max_ingested_at,
        now64(3) as computed_at
    from standardised
)

select * from scored
