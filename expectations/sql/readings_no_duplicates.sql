-- Sensors with more than one reading at the same event time in the deduplicated view.
SELECT machine_id, sensor_id, event_time, count() AS copies
FROM {batch}
GROUP BY machine_id, sensor_id, event_time
HAVING copies > 1
