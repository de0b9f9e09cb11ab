SELECT window_start AS time, window_end AS timeEnd, concat(flag_kind, ' (', severity, ')', if(sensor_id = '', '', concat(' on ', sensor_id)), ', score ', toString(round(score, 2))) AS text, [flag_kind, severity, sensor_id] AS tags
FROM anomaly_flags
WHERE machine_id = '${machine}' AND $__timeFilter(window_start)
ORDER BY time
