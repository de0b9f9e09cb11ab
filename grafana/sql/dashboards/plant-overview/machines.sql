SELECT machine_id, line_id, model, status, last_reading_at, open_alerts, open_sensor_faults
FROM machine_health WHERE line_id IN (${line:singlequote})
ORDER BY multiIf(status = 'critical', 0, status = 'warning', 1, status = 'stale', 2, 3), machine_id
