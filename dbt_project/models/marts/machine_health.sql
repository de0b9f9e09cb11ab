-- The latest state of every machine (the machines seed, plus any machine that reports without being in it):
-- 'stale' when it has not reported for var stale_after_seconds (wall clock), else 'critical' / 'warning' by its
-- worst open machine alert, else 'ok'. Open sensor faults are counted but never make a machine unhealthy.
with

machines as (
    select * from {{ ref('machines') }}
),

per_minute as (
    select * from {{ ref('int_readings_per_minute') }}
),

alerts as (
    select * from {{ ref('alerts') }}
),

latest_readings as (
    select machine_id, maxMerge(last_at_state) as last_reading_at
    from per_minute
    group by machine_id
),

all_machines as (
    select
        if(machines.machine_id != '', machines.machine_id, latest_readings.machine_id) as machine_id,
        machines.line_id as line_id,
        machines.model as model,
        latest_readings.last_reading_at as last_reading_at
    from machines
    full outer join latest_readings on machines.machine_id = latest_readings.machine_id
),

open_alerts as (
    select
        machine_id,
        countIf(category = 'machine') as open_alerts,
        countIf(category = 'machine' and severity = 'critical') as open_critical,
        countIf(category = 'sensor') as open_sensor_faults
    from alerts
    where status = 'open'
    group by machine_id
),

health as (
    select
        all_machines.machine_id as machine_id,
        all_machines.line_id as line_id,
        all_machines.model as model,
        multiIf(
            all_machines.last_reading_at = {{ epoch() }}
                or dateDiff('second', all_machines.last_reading_at, now64(3)) > {{ var('stale_after_seconds') }},
            'stale',
            open_alerts.open_critical > 0, 'critical',
            open_alerts.open_alerts > 0, 'warning',
            'ok'
        ) as status,
        all_machines.last_reading_at as last_reading_at,
        toUInt64(open_alerts.open_alerts) as open_alerts,
        toUInt64(open_alerts.open_sensor_faults) as open_sensor_faults
    from all_machines
    left join open_alerts on all_machines.machine_id = open_alerts.machine_id
)

select * from health
