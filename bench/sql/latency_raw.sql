-- Readings in the raw table, and the quantiles of their delay from production (event time) to the insert.
SELECT count(), quantileExact(0.5)(delay_ms), quantileExact(0.99)(delay_ms)
FROM (
    SELECT dateDiff('millisecond', event_time, ingested_at) AS delay_ms
    FROM ${database}.${raw_readings_table}
)
