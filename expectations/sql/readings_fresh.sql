-- Machines whose latest reading is older than the freshness limit.
SELECT machine_id, max(event_time) AS last_reading_at
FROM {batch}
GROUP BY machine_id
HAVING last_reading_at < now64(3) - INTERVAL ${freshness_seconds} SECOND
