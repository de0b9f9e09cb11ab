SELECT countIf(status = 'ok') AS ok, countIf(status = 'warning') AS warning,
       countIf(status = 'critical') AS critical, countIf(status = 'stale') AS stale
FROM machine_health WHERE line_id IN (${line:singlequote})
