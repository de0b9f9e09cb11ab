-- Ground truth: every fault the simulator injected (or a replayed CSV labelled), to score detection against.
CREATE TABLE IF NOT EXISTS ${database}.${fault_labels_table}
(
    run_id LowCardinality(String),
    machine_id LowCardinality(String),
    sensor_ids Array(String),
    fault_kind LowCardinality(String),
    severity Float64,
    start_time DateTime64(3, 'UTC'),
    end_time DateTime64(3, 'UTC'),
    source LowCardinality(String),
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(recorded_at)
ORDER BY (run_id, machine_id, fault_kind, start_time)
