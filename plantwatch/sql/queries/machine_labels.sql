-- Injected faults (ground truth) on one machine, for the report plot.
SELECT start_time, end_time, sensor_ids
FROM fault_labels FINAL
WHERE machine_id = {machine:String}
