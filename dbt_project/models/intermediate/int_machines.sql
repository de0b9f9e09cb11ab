-- The plant's machines: the machines seed, overridden and extended by `plantwatch machine set` (machine_config).
with

seeded as (
    select * from {{ ref('machines') }}
),

configured as (
    select * from {{ source('plantwatch', 'machine_config') }} final
),

machines as (
    select machine_id, line_id, model from configured
    union all
    select machine_id, line_id, model from seeded
    where machine_id not in (select machine_id from configured)
)

select * from machines
