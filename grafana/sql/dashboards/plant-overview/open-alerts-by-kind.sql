SELECT countIf(category = 'machine') AS machine_anomalies, countIf(category = 'sensor') AS sensor_faults,
       countIf(severity = 'critical') AS critical
FROM alerts WHERE status = 'open'
