-- Sensor faults, one row per flagged (machine, sensor, window): they go to the sensor's maintenance, never to a
-- machine alert. stuck (score: identical readings in the window), dropout (score: the fraction of readings
-- missing), impossible_value (score: the largest excess beyond the physical range, as a fraction of it; critical).
with

sensor_faults as (
    {{ latest_rows_where(ref('int_sensor_fault_windows'), ['machine_id', 'sensor_id', 'window_start'], "fault_kind != ''") }}
),

flags as (
    select
        machine_id,
        sensor_id,
        fault_kind,
        window_start,
        window_end,
        score,
        if(fault_kind = 'impossible_value', 'critical', 'warning') as severity
    from sensor_faults
    where fault_kind != ''
)

select * from flags
