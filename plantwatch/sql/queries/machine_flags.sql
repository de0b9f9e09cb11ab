-- Machine anomalies and sensor faults flagged on one machine, for the report plot.
SELECT 'machine' AS category, sensor_id, flag_kind AS kind, window_start, window_end
FROM anomaly_flags
WHERE machine_id = {machine:String}
UNION ALL
SELECT 'sensor' AS category, sensor_id, fault_kind AS kind, window_start, window_end
FROM sensor_fault_flags
WHERE machine_id = {machine:String}
