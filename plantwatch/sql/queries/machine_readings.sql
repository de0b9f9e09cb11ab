-- Every reading of one machine, for the report plot.
SELECT sensor_id, sensor_kind, unit, event_time, value
FROM readings
WHERE machine_id = {machine:String}
ORDER BY sensor_id, event_time
