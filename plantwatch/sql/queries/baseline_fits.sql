-- Stored commissioning baseline fits (fold 0: the baseline itself), newest first; all machines when machine is ''.
SELECT machine_id, fitted_at, fitted_from, fitted_to, fitted_by, windows, length(sensor_ids) AS sensors,
       arrayFilter((sensor, rate) -> rate != 0, sensor_ids, drift_rates) AS drifting
FROM {baselines:Identifier}
WHERE fold = 0 AND ({machine:String} = '' OR machine_id = {machine:String})
ORDER BY fitted_at DESC
