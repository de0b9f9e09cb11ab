SELECT started_at, machine_id, sensor_id, category, kind, severity, flag_count, round(max_score, 2) AS max_score,
       last_flag_at
FROM alerts WHERE status = 'open'
ORDER BY severity = 'critical' DESC, started_at DESC
