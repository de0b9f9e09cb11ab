SELECT started_at, ended_at, status, category, kind, sensor_id, severity, flag_count, round(max_score, 2) AS max_score
FROM alerts WHERE machine_id = '${machine}'
ORDER BY status = 'open' DESC, started_at DESC
