-- Commissioning baselines: a machine's healthy reference, fitted by `plantwatch baseline fit` on a period an engineer
-- names (or the first rows of a replay). Append-only: the newest fit of a machine is the one the detectors use;
-- older fits stay as the record of when and on what each baseline was fitted. Arrays are in sensor_ids order.
-- A fit is several rows: fold 0 is the baseline; fold k > 0 leaves out the k-th stretch [fold_from, fold_to) of the
-- period, to score that stretch out of sample (what the detectors' thresholds are calibrated on).
CREATE TABLE IF NOT EXISTS ${database}.${baselines_table}
(
    machine_id LowCardinality(String),
    fitted_at DateTime64(3, 'UTC') DEFAULT now64(3),
    fitted_from DateTime64(3, 'UTC'),
    fitted_to DateTime64(3, 'UTC'),
    fitted_by String,
    fold UInt8 DEFAULT 0,
    fold_from DateTime64(3, 'UTC'),
    fold_to DateTime64(3, 'UTC'),
    windows UInt64,
    sensor_ids Array(String),
    means Array(Float64),
    stds Array(Float64),
    noise_mads Array(Float64),
    reading_counts Array(Float64),
    quanta Array(Float64),
    flat_runs Array(UInt32),
    drift_rates Array(Float64),
    correlation Array(Array(Float64))
)
ENGINE = MergeTree
ORDER BY (machine_id, fitted_at, fold);

-- Tables created before folds, quantization and drift were fitted get the columns (their old fits stay usable:
-- one fold, no quantum, no drift).
ALTER TABLE ${database}.${baselines_table}
    ADD COLUMN IF NOT EXISTS fold UInt8 DEFAULT 0 AFTER fitted_by,
    ADD COLUMN IF NOT EXISTS fold_from DateTime64(3, 'UTC') DEFAULT fitted_from AFTER fold,
    ADD COLUMN IF NOT EXISTS fold_to DateTime64(3, 'UTC') DEFAULT fitted_to AFTER fold_from,
    ADD COLUMN IF NOT EXISTS reading_counts Array(Float64) AFTER noise_mads,
    ADD COLUMN IF NOT EXISTS quanta Array(Float64) AFTER reading_counts,
    ADD COLUMN IF NOT EXISTS flat_runs Array(UInt32) AFTER quanta,
    ADD COLUMN IF NOT EXISTS drift_rates Array(Float64) AFTER flat_runs
