-- Spec limits and physical ranges per model and sensor kind: the spec_limits seed, overridden and extended by
-- `plantwatch limits set` (spec_limit_config).
with

spec_limits as (
    {{ seed_with_overrides(
        ref('spec_limits'), source('plantwatch', 'spec_limit_config'),
        keys=['model', 'sensor_kind'],
        columns=['model', 'sensor_kind', 'lower', 'upper', 'unit', 'physical_min', 'physical_max'],
    ) }}
)

select * from spec_limits
