-- The alerts mart as it stood at ${at} (the replay's simulated clock): the episodes begun by then, open until
-- ${resolve_seconds} s past their last flag. A view (its body cannot take query parameters): rendered by
-- plantwatch.warehouse.render into the replay's database, once per step of the replay.
CREATE OR REPLACE VIEW ${replay}.alerts AS
SELECT alert_id, machine_id, sensor_id, category, kind, severity,
       if(last_flag_at + INTERVAL ${resolve_seconds} SECOND > at, 'open', 'resolved') AS status,
       started_at, if(status = 'resolved', toNullable(last_flag_at), NULL) AS ended_at, last_flag_at, flag_count,
       max_score
FROM ${database}.alerts, (SELECT toDateTime64('${at}', 3, 'UTC') AS at) AS clock
WHERE started_at <= at
