-- `plantwatch alerts --every`: the state of every alert rule's label set (plantwatch/alert_state.py), so that pending
-- durations (`for`), firing alerts and resolutions survive a restart of the evaluator. One row per rule and label set
-- (fingerprint), rewritten on every evaluation while not normal; the highest version is the current state.
CREATE TABLE IF NOT EXISTS ${database}.${alert_state_table}
(
    rule_uid LowCardinality(String),
    fingerprint String,
    rule_title String,
    labels Map(String, String),
    annotations Map(String, String),
    `values` Map(String, Float64),
    state LowCardinality(String),  -- pending | firing | resolved | normal
    active_at DateTime64(3, 'UTC'),  -- the condition first held (pending since)
    fired_at Nullable(DateTime64(3, 'UTC')),  -- Alertmanager's startsAt
    resolved_at Nullable(DateTime64(3, 'UTC')),  -- Alertmanager's endsAt once resolved
    evaluated_at DateTime64(3, 'UTC'),
    sent_at Nullable(DateTime64(3, 'UTC')),  -- last time Alertmanager accepted it
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (rule_uid, fingerprint)
