-- Minutes whose reading count in pipeline_stats differs from the raw readings (deduplicated view) in that minute.
-- The newest minute is left out: it was still filling when dbt built the table.
SELECT minute, sumIf(n, source = 'mart') AS mart_readings, sumIf(n, source = 'raw') AS raw_readings
FROM
(
    SELECT minute, readings AS n, 'mart' AS source FROM {batch}
    UNION ALL
    SELECT toStartOfMinute(event_time) AS minute, count() AS n, 'raw' AS source
    FROM ${readings_view}
    GROUP BY minute
)
WHERE minute < (SELECT max(minute) FROM {batch})
GROUP BY minute
HAVING mart_readings != raw_readings
