SELECT machine_id, kind, severity, toFloat64(max(max_score)) AS score
FROM alerts
WHERE category = 'machine' AND status = 'open'
GROUP BY machine_id, kind, severity
