-- Raw readings as the ingest apps land them: one row a reading.
-- Partitioned by day, ordered for per-machine/sensor time scans. A redelivered reading has the same sort key
-- (machine, sensor, event time, seq), so ReplacingMergeTree folds it away; non_replicated_deduplication_window
-- makes ClickHouse drop a whole retried batch that carries the same insert_deduplication_token.
-- The minmax index on ingested_at lets each incremental dbt run find the rows landed since its last run without
-- reading the whole column (dbt_project/macros/incremental.sql, changed_since); the ALTER adds it to a table
-- created before it existed (parts written since get it).
-- Retention (raw_ttl_days) counts from when a reading landed, not from its event time: a replayed export of
-- 2013 stays as long as one streamed today (a TTL on event_time dropped such replays on insert, silently).
-- The second ALTER moves a table created with the old event-time TTL onto this one (without rewriting its parts).
CREATE TABLE IF NOT EXISTS ${database}.${raw_readings_table}
(
${reading_columns},
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(DoubleDelta, ZSTD(1)),
    INDEX ingested_at_minmax ingested_at TYPE minmax GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(event_time)
ORDER BY (machine_id, sensor_id, event_time, seq)
TTL toDateTime(ingested_at) + INTERVAL ${raw_ttl_days} DAY
SETTINGS non_replicated_deduplication_window = 1000;

ALTER TABLE ${database}.${raw_readings_table}
    ADD INDEX IF NOT EXISTS ingested_at_minmax ingested_at TYPE minmax GRANULARITY 1;

ALTER TABLE ${database}.${raw_readings_table}
    MODIFY TTL toDateTime(ingested_at) + INTERVAL ${raw_ttl_days} DAY
    SETTINGS materialize_ttl_after_modify = 0
