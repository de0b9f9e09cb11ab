-- Every commissioning baseline fit of every machine (`plantwatch baseline fit`), every fold (fold 0 the baseline
-- itself). A fit applies to a machine's windows from the start of its period on (the machine's first fit to its
-- earlier history too); of fits of the same period the newest wins. Fits stored before folds, quanta, flat runs
-- and drift rates were recorded read as one fold without them.
with

fits as (
    select * from {{ source('plantwatch', 'machine_baselines') }}
),

newest_per_period as (
    select machine_id, fitted_from, max(fitted_at) as fitted_at
    from fits
    group by machine_id, fitted_from
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
    inner join newest_per_period
        on fits.machine_id = newest_per_period.machine_id
        and fits.fitted_from = newest_per_period.fitted_from
        and fits.fitted_at = newest_per_period.fitted_at
)

select * from in_force
