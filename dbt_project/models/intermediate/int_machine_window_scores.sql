{{ config(
    materialized='incremental',
    incremental_strategy='append',
    engine='ReplacingMergeTree(max_ingested_at)',
    order_by='(machine_id, window_start)',
    partition_by='toYYYYMM(window_start)',
    indexes=[{'name': 'max_ingested_at_minmax', 'definition': 'max_ingested_at TYPE minmax GRANULARITY 1'}],
) }}
-- One row per complete machine window (every sensor reported): the window means standardised against the machine's
-- baseline (its commissioning baseline if it has one, the trailing baseline of the block otherwise), Hotelling's
-- T-squared of that vector under the baseline's correlation, and each sensor's residual given all the others
-- (in baseline standard deviations: how far the sensor is from what its machine's other sensors say it should be).
-- baseline_kind is '' (and the scores 0) while a machine has no usable baseline. A sensor's standard deviation
-- counts as at least var min_std_fraction_of_spec of its spec band: a sensor that hardly moved in the reference
-- period (a slow temperature in a calm hour) cannot raise alerts over changes too small to matter.
{%- set spec_dict = ref('spec_limits_dict').schema ~ '.' ~ ref('spec_limits_dict').identifier %}
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
    select * from {{ ref('machines') }}
),

changed as (
    {{ changed_since(ref('int_sensor_windows'), 'window_start') }}
),

in_scope as (
    select windows.*
    from windows
    inner join changed on windows.machine_id = changed.machine_id
    where windows.window_start >= changed.since
      and windows.window_start >= (select min(since) from changed)
),

vectors as (
    {{ machine_window_vectors('in_scope') }}
),

with_baseline as (
    select
        vectors.machine_id as machine_id,
        vectors.window_start as window_start,
        vectors.sensor_ids as sensor_ids,
        arrayMap(
            kind -> {{ var('min_std_fraction_of_spec') }} * (
                dictGetOrDefault('{{ spec_dict }}', 'upper', tuple(machines.model, kind), 0.)
                - dictGetOrDefault('{{ spec_dict }}', 'lower', tuple(machines.model, kind), 0.)
            ),
            vectors.sensor_kinds
        ) as std_floors,
        vectors.means as window_means,
        vectors.max_ingested_at as max_ingested_at,
        multiIf(
            commissioning_baselines.machine_id != '' and commissioning_baselines.sensor_ids = vectors.sensor_ids,
            'commissioning',
            trailing_baselines.machine_id != ''
                and trailing_baselines.sensor_ids = vectors.sensor_ids
                and trailing_baselines.windows >= {{ var('baseline_min_windows') }},
            'trailing',
            ''
        ) as baseline_kind,
        multiIf(
            baseline_kind = 'commissioning', commissioning_baselines.means,
            baseline_kind = 'trailing', trailing_baselines.means,
            arrayMap(x -> 0., vectors.means)
        ) as means,
        multiIf(
            baseline_kind = 'commissioning', commissioning_baselines.stds,
            baseline_kind = 'trailing', trailing_baselines.stds,
            arrayMap(x -> 1., vectors.means)
        ) as stds,
        multiIf(
            baseline_kind = 'commissioning', commissioning_baselines.noise_mads,
            baseline_kind = 'trailing', trailing_baselines.noise_mads,
            arrayMap(x -> 0., vectors.means)
        ) as noise_mads,
        multiIf(
            baseline_kind = 'commissioning', commissioning_baselines.inverse,
            baseline_kind = 'trailing', trailing_baselines.inverse,
            arrayMap(i -> arrayMap(j -> toFloat64(i = j), arrayEnumerate(vectors.means)), arrayEnumerate(vectors.means))
        ) as inverse
    from vectors
    left join machines on vectors.machine_id = machines.machine_id
    left join commissioning_baselines on vectors.machine_id = commissioning_baselines.machine_id
    left join trailing_baselines
        on vectors.machine_id = trailing_baselines.machine_id
        and toStartOfInterval(vectors.window_start, toIntervalMinute({{ var('baseline_block_minutes') }}))
            = trailing_baselines.block_start
),

standardised as (
    select
        *,
        arrayMap(
            (x, m, s, f) -> if(baseline_kind = '', 0., (x - m) / greatest(s, f)), window_means, means, stds, std_floors
        ) as z,
        {{ mat_vec('inverse', 'z') }} as u
    from with_baseline
),

scored as (
    select
        machine_id,
        window_start,
        {{ window_end('window_start') }} as window_end,
        baseline_kind,
        sensor_ids,
        length(sensor_ids) as dims,
        {{ dot('z', 'u') }} as t_squared,
        arrayMap((ui, i) -> ui / sqrt(inverse[i][i]), u, arrayEnumerate(u)) as residuals,
        noise_mads,
        max_ingested_at
    from standardised
)

select * from scored
