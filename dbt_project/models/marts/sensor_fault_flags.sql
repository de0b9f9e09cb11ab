-- Sensor faults, one row per flagged (machine, sensor, window): they go to the sensor's maintenance, never to a
-- machine alert. impossible_value (score: the largest excess beyond the physical range, as a fraction of it;
-- critical), dropout (score: the fraction of readings missing), stuck (score: the windows the sensor has sat still;
-- judged against how long it sits still when healthy, so a quantized sensor is not stuck for being quantized).
with

checks as (
    {{ latest_rows_where(ref('int_sensor_window_checks'), ['machine_id', 'sensor_id', 'window_start'], "fault_kind != ''") }}
),

stuck as (
    {{ latest_rows_where(ref('int_sensor_window_scores'), ['machine_id', 'sensor_id', 'window_start'], 'stuck') }}
),

faults as (
    select machine_id, sensor_id, fault_kind, window_start, window_end, score
    from checks
    union all
    select machine_id, sensor_id, 'stuck' as fault_kind, window_start, window_end, toFloat64(flat_run) as score
    from stuck
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
    from faults
)

select * from flags
