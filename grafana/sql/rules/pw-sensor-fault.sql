SELECT machine_id, sensor_id, kind, severity, toFloat64(max(max_score)) AS score
FROM alerts
WHERE category = 'sensor' AND status = 'open'
GROUP BY machine_id, sensor_id, kind, severity
