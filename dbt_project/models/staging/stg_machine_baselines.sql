-- The commissioning baseline in force for each machine: its newest fit.
with

fits as (
    select * from {{ source('plantwatch', 'machine_baselines') }}
),

versioned as (
    select *, fitted_at as fit_version from fits
),

newest as (
    select
        toString(machine_id) as machine_id,
        max(fit_version) as fitted_at,
        argMax(fitted_from, fit_version) as fitted_from,
        argMax(fitted_to, fit_version) as fitted_to,
        argMax(fitted_by, fit_version) as fitted_by,
        argMax(windows, fit_version) as windows,
        argMax(sensor_ids, fit_version) as sensor_ids,
        argMax(means, fit_version) as means,
        argMax(stds, fit_version) as stds,
        argMax(noise_mads, fit_version) as noise_mads,
        argMax(correlation, fit_version) as correlation
    from versioned
    group by machine_id
)

select * from newest
