-- Each machine's latest reading (event time) and its measured cadence, from the per-minute states the materialized
-- view keeps fresh on every insert: what alert resolution and machine health compare against.
with

per_minute as (
    select * from {{ ref('int_readings_per_minute') }}
),

cadence as (
    select * from {{ ref('int_machine_cadence') }} final
),

latest as (
    select machine_id, maxMerge(last_at_state) as last_reading_at
    from per_minute
    group by machine_id
),

with_cadence as (
    select
        latest.machine_id as machine_id,
        latest.last_reading_at as last_reading_at,
        cadence.machine_id != '' as measured,
        cadence.period_ms as period_ms,
        if(measured, cadence.window_ms, {{ var('window_seconds') * 1000 }}) as window_ms
    from latest
    left join cadence on latest.machine_id = cadence.machine_id
)

select * from with_cadence
