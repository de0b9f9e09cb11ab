-- The hours of readings scored: each machine's span from its first to its last reading, summed (false alarms per
-- machine-hour divide by it).
with

readings as (
    select * from {{ source('plantwatch', 'readings') }}
),

spans as (
    select machine_id, dateDiff('second', min(event_time), max(event_time)) / 3600 as hours
    from readings
    group by machine_id
)

select sum(hours) from spans
