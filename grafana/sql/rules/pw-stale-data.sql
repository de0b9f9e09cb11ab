SELECT machine_id, toFloat64(dateDiff('second', last_reading_at, now64(3))) AS seconds_since_last_reading
FROM machine_health
