-- The plant's machines: the machines seed, overridden and extended by `plantwatch machine set` (machine_config);
-- in a per-shard transform, the shard's machines only (var shard_filter: the others are another shard's).
with

machines as (
    {{ seed_with_overrides(
        ref('machines'), source('plantwatch', 'machine_config'),
        keys=['machine_id'],
        columns=['machine_id', 'line_id', 'model'],
    ) }}
),

on_this_shard as (
    select * from machines
    where {{ var('shard_filter') }}
)

select * from on_this_shard
