-- The alert history: every state change of an alert rule's label set, written by `plantwatch alerts --every`
-- (normal -> pending -> firing -> resolved, pending -> normal when the condition stopped before `for`).
-- The dbt mart alert_history and the Grafana panel "Alert history" read it.
CREATE TABLE IF NOT EXISTS ${database}.${alert_events_table}
(
    at DateTime64(3, 'UTC'),
    rule_uid LowCardinality(String),
    rule_title LowCardinality(String),
    fingerprint String,
    labels Map(String, String),
    machine_id LowCardinality(String) DEFAULT labels['machine_id'],
    from_state LowCardinality(String),
    to_state LowCardinality(String),
    `values` Map(String, Float64),
    summary String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (rule_uid, fingerprint, at)
TTL toDateTime(at) + INTERVAL ${raw_ttl_days} DAY
