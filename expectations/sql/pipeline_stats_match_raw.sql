-- Ingest minutes whose reading count in pipeline_stats is below the raw rows that arrived in that minute (rows
-- missing from the stats), or raw minutes missing from the stats altogether. Minutes are of ingest time and count
-- raw rows, redeliveries included, as the materialized view saw them inserted; ClickHouse may since have folded
-- redelivered copies away, so the stats may exceed the raw rows but never fall short. The newest minute is left
-- out: it was still filling.
SELECT minute, max(mart_readings) AS mart_readings, max(raw_readings) AS raw_readings
FROM
(
    SELECT minute, readings AS mart_readings, toUInt64(0) AS raw_readings
    FROM {batch}
    UNION ALL
    SELECT toStartOfMinute(ingested_at) AS minute, toUInt64(0) AS mart_readings, count() AS raw_readings
    FROM ${raw_readings_table}
    GROUP BY minute
)
WHERE minute < (SELECT max(minute) FROM {batch})
GROUP BY minute
HAVING mart_readings < raw_readings
