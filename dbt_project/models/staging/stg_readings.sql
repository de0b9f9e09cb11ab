-- Deduplicated readings, one row a reading.
with

readings as (
    select * from {{ source('plantwatch', 'readings') }}
),

renamed as (
    select
        {{ reading_keys() }},
        value,
        toString(unit) as unit,
        event_time,
        seq,
        ingested_at
    from readings
)

select * from renamed
