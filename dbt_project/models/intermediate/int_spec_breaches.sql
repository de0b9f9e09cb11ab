{{ config(
    materialized='materialized_view',
    engine='MergeTree()',
    order_by='(machine_id, sensor_id, event_time)',
    partition_by='toYYYYMM(event_time)',
) }}
-- Every reading outside its machine model's spec limits, written by a materialized view on each insert into the raw
-- table: the machine's model from machines_dict, the limits from spec_limits_dict. A machine or sensor kind without
-- limits (not in the seeds) has no spec check: never a breach.
with

readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

with_limits as (
    select
        {{ reading_keys() }},
        event_time,
        value,
        ingested_at,
        dictGetOrDefault(
            '{{ ref("machines_dict").schema }}.{{ ref("machines_dict").identifier }}', 'model', tuple(machine_id), ''
        ) as model,
        dictHas(
            '{{ ref("spec_limits_dict").schema }}.{{ ref("spec_limits_dict").identifier }}', tuple(model, sensor_kind)
        ) as has_limits,
        dictGetOrDefault(
            '{{ ref("spec_limits_dict").schema }}.{{ ref("spec_limits_dict").identifier }}', 'lower',
            tuple(model, sensor_kind), 0.
        ) as lower_limit,
        dictGetOrDefault(
            '{{ ref("spec_limits_dict").schema }}.{{ ref("spec_limits_dict").identifier }}', 'upper',
            tuple(model, sensor_kind), 0.
        ) as upper_limit
    from readings
),

breaches as (
    select
        machine_id,
        sensor_id,
        sensor_kind,
        event_time,
        value,
        lower_limit as lower,
        upper_limit as upper,
        ingested_at
    from with_limits
    where has_limits and (value < lower_limit or value > upper_limit)
)

select * from breaches
