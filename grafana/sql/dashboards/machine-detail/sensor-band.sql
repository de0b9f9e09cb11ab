SELECT m.window_start AS time, m.mean AS value, f.mean - 3 * f.stddev AS band_low, f.mean + 3 * f.stddev AS band_high
FROM
(
    SELECT window_start, mean
    FROM rolling_aggregates FINAL
    WHERE machine_id = '${machine}' AND sensor_id = '${sensor}' AND window_seconds = 60
      AND $__timeFilter(window_start)
) AS m
LEFT JOIN
(
    SELECT toDateTime(window_start + INTERVAL 5 MINUTE, 'UTC') AS follows, mean, stddev
    FROM rolling_aggregates FINAL
    WHERE machine_id = '${machine}' AND sensor_id = '${sensor}' AND window_seconds = 300
) AS f ON f.follows = toDateTime(toStartOfFiveMinutes(m.window_start), 'UTC')
ORDER BY time
SETTINGS join_use_nulls = 1
