-- Commissioning baselines: a machine's healthy reference, fitted by `plantwatch baseline fit` on a period an engineer
-- names (or the first rows of a replay). Append-only: the newest fit of a machine is the one the detectors use;
-- older fits stay as the record of when and on what each baseline was fitted. Arrays are in sensor_ids order.
CREATE TABLE IF NOT EXISTS ${database}.${baselines_table}
(
    machine_id LowCardinality(String),
    fitted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    fitted_from DateTime64(3, 'UTC'),
    fitted_to DateTime64(3, 'UTC'),
    fitted_by String,
    windows UInt64,
    sensor_ids Array(String),
    means Array(Float64),
    stds Array(Float64),
    noise_mads Array(Float64),
    correlation Array(Array(Float64))
)
ENGINE = MergeTree
ORDER BY (machine_id, fitted_at)
