-- The commissioning baseline in force for each machine: every fold of its newest fit (fold 0 the baseline itself).
-- Fits stored before folds, quanta, flat runs and drift rates were recorded read as one fold without them.
with

fits as (
    select * from {{ source('plantwatch', 'machine_baselines') }}
),

newest as (
    select machine_id, max(fitted_at) as fitted_at
    from fits
    group by machine_id
),

in_force as (
    select
        toString(fits.machine_id) as machine_id,
        fits.fitted_at as fitted_at,
        fits.fitted_from as fitted_from,
        fits.fitted_to as fitted_to,
        fits.fitted_by as fitted_by,
        fits.fold as fold,
        fits.fold_from as fold_from,
        fits.fold_to as fold_to,
        fits.windows as windows,
        fits.sensor_ids as sensor_ids,
        fits.means as means,
        fits.stds as stds,
        fits.noise_mads as noise_mads,
        arrayResize(fits.reading_counts, length(fits.sensor_ids), 1.) as reading_counts,
        arrayResize(fits.quanta, length(fits.sensor_ids), 0.) as quanta,
        arrayResize(fits.flat_runs, length(fits.sensor_ids), toUInt32(0)) as flat_runs,
        arrayResize(fits.drift_rates, length(fits.sensor_ids), 0.) as drift_rates,
        fits.correlation as correlation
    from fits
    inner join newest on fits.machine_id = newest.machine_id and fits.fitted_at = newest.fitted_at
)

select * from in_force
