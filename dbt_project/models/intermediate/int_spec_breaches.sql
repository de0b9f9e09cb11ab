{{ config(
    materialized='materialized_view',
    engine='MergeTree()',
    order_by='(machine_id, sensor_id, event_time)',
    partition_by='toYYYYMM(event_time)',
) }}
-- Every reading outside its machine model's spec limits, written by a materialized view on each insert into the raw
-- table: the machine's model from machines_dict, the limits from spec_limits_dict.
with

readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

with_limits as (
    select
        toString(machine_id) as machine_id,
        toString(sensor_id) as sensor_id,
        toString(sensor_kind) as sensor_kind,
        event_time,
        value,
        ingested_at,
        dictGetOrDefault(
            '{{ ref("machines_dict").schema }}.{{ ref("machines_dict").identifier }}', 'model', tuple(machine_id), ''
        ) as model,
        dictGetOrNull(
            '{{ ref("spec_limits_dict").schema }}.{{ ref("spec_limits_dict").identifier }}', 'lower',
            tuple(model, sensor_kind)
        ) as lower,
        dictGetOrNull(
            '{{ ref("spec_limits_dict").schema }}.{{ ref("spec_limits_dict").identifier }}', 'upper',
            tuple(model, sensor_kind)
        ) as upper
    from readings
),

breaches as (
    select
        machine_id,
        sensor_id,
        sensor_kind,
        event_time,
        value,
        assumeNotNull(lower) as lower,
        assumeNotNull(upper) as upper,
        ingested_at
    from with_limits
    where lower is not null and (value < lower or value > upper)
)

select * from breaches
