SELECT $__timeInterval(window_start) AS time, flag_kind, count() AS flags
FROM anomaly_flags WHERE $__timeFilter(window_start)
GROUP BY time, flag_kind ORDER BY time
