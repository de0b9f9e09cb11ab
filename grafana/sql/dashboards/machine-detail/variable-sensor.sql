SELECT DISTINCT sensor_id FROM rolling_aggregates WHERE machine_id = '${machine}' ORDER BY sensor_id
