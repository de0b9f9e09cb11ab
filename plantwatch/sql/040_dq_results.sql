-- Data-quality results: one row per expectation per `plantwatch check` run (see expectations/).
-- Grafana's pipeline-health dashboard and the data-quality alert rule read the latest run from here.
CREATE TABLE IF NOT EXISTS ${database}.${dq_results_table}
(
    run_id String,
    run_at DateTime64(3, 'UTC'),
    suite LowCardinality(String),
    expectation String,
    `column` String,
    success Bool,
    observed String,
    details String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(run_at)
ORDER BY (suite, expectation, run_at)
TTL toDateTime(run_at) + INTERVAL ${raw_ttl_days} DAY
