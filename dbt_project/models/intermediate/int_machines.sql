-- The plant's machines: the machines seed, overridden and extended by `plantwatch machine set` (machine_config).
with

machines as (
    {{ seed_with_overrides(
        ref('machines'), source('plantwatch', 'machine_config'),
        keys=['machine_id'],
        columns=['machine_id', 'line_id', 'model'],
    ) }}
)

select * from machines
