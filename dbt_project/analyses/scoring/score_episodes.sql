-- Detection scored per labelled fault episode: detected when a flag of the fault's category (machine: any anomaly
-- flag of the machine; sensor: a sensor fault flag of a labelled sensor) overlaps [start, end + the grace period ({grace_seconds} s));
-- the delay runs from the fault's start to the end of the first such flag's window (when it could be known).
-- cross_flags: machine anomaly flags during a sensor fault (of a machine with no machine fault then).
with

labels as (
    {{ scored_labels('run_id, machine_id, category, fault_kind, sensor_ids, start_time, end_time') }}
),

flags as (
    select machine_id, sensor_id, 'machine' as category, window_start, window_end from {{ ref('anomaly_flags') }}
    union all
    select machine_id, sensor_id, 'sensor' as category, window_start, window_end from {{ ref('sensor_fault_flags') }}
),

machine_label_periods as (
    select machine_id, groupArray((start_time, end_time)) as periods
    from labels
    where category = 'machine'
    group by machine_id
),

matched as (
    select
        labels.run_id as run_id,
        labels.machine_id as machine_id,
        labels.category as category,
        labels.fault_kind as fault_kind,
        labels.start_time as start_time,
        labels.end_time as end_time,
        countIf(
            {{ overlaps_label('flags', 'labels') }}
        ) as flag_count,
        minIf(
            flags.window_end,
            {{ overlaps_label('flags', 'labels') }}
        ) as first_flag_end,
        countIf(
            labels.category = 'sensor'
            and flags.category = 'machine'
            and flags.window_end > labels.start_time
            and flags.window_start < labels.end_time
            and not arrayExists(p -> flags.window_end > p.1 and flags.window_start < p.2, mlp.periods)
        ) as cross_flags
    from labels
    left join flags on labels.machine_id = flags.machine_id
    left join machine_label_periods as mlp on labels.machine_id = mlp.machine_id
    group by run_id, machine_id, category, fault_kind, start_time, end_time
)

select
    run_id,
    machine_id,
    category,
    fault_kind,
    start_time,
    end_time,
    flag_count > 0 as detected,
    if(detected, greatest(dateDiff('millisecond', start_time, first_flag_end) / 1000, 0.), nan) as delay_s,
    cross_flags
from matched
order by start_time
