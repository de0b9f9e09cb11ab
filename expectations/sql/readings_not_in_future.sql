-- Readings whose event time lies in the future by more than the allowed clock skew.
SELECT machine_id, sensor_id, event_time, seq
FROM {batch}
WHERE event_time > now64(3) + INTERVAL ${clock_skew_seconds} SECOND
