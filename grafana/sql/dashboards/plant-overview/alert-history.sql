SELECT started_at, rule_title AS rule, machine_id, sensor_id, severity, status, fired_at, resolved_at,
       pending_seconds, firing_seconds, summary
FROM alert_history WHERE $__timeFilter(started_at)
ORDER BY started_at DESC
LIMIT 500
