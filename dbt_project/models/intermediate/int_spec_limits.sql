-- Spec limits and physical ranges per model and sensor kind: the spec_limits seed, overridden and extended by
-- `plantwatch limits set` (spec_limit_config).
with

seeded as (
    select * from {{ ref('spec_limits') }}
),

configured as (
    select * from {{ source('plantwatch', 'spec_limit_config') }} final
),

spec_limits as (
    select model, sensor_kind, lower, upper, unit, physical_min, physical_max from configured
    union all
    select model, sensor_kind, lower, upper, unit, physical_min, physical_max from seeded
    where (model, sensor_kind) not in (select model, sensor_kind from configured)
)

select * from spec_limits
