-- Every commissioning baseline fit of each machine (`plantwatch baseline fit`), every fold, with the inverse of its
-- ridge-regularised correlation matrix for the detectors.
with

baselines as (
    select * from {{ ref('stg_machine_baselines') }}
),

inverted as (
    select
        machine_id,
        fitted_at,
        fitted_from,
        fitted_to,
        fold,
        fold_from,
        fold_to,
        windows,
        sensor_ids,
        means,
        stds,
        noise_mads,
        reading_counts,
        quanta,
        flat_runs,
        drift_rates,
        {{ baseline_inverse('correlation', 'windows') }} as inverse
    from baselines
)

select * from inverted
