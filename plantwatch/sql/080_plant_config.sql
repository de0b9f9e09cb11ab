-- The plant as an engineer configures it, over the shipped seeds (dbt_project/seeds): a machine's line and model
-- (`plantwatch machine set`), and the spec limits and physical range of a model's sensor kind
-- (`plantwatch limits set`). Newest row per key wins; the dbt models int_machines and int_spec_limits merge them
-- with the seeds. A machine in neither is still scored by the statistical detectors (model 'unassigned').
CREATE TABLE IF NOT EXISTS ${database}.${machine_config_table}
(
    machine_id String,
    line_id String,
    model String,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY machine_id;

CREATE TABLE IF NOT EXISTS ${database}.${spec_limit_config_table}
(
    model String,
    sensor_kind String,
    lower Float64,
    upper Float64,
    unit String,
    physical_min Float64,
    physical_max Float64,
    updated_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (model, sensor_kind)
