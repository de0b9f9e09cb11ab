-- Deduplicated readings, one row a reading.
with

readings as (
    select * from {{ source('plantwatch', 'readings') }}
),

renamed as (
    select
        toString(machine_id) as machine_id,
        toString(sensor_id) as sensor_id,
        toString(sensor_kind) as sensor_kind,
        value,
        toString(unit) as unit,
        event_time,
        seq,
        ingested_at
    from readings
)

select * from renamed
