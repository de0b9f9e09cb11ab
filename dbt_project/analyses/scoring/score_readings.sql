-- Detection scored per reading. One row per (category, fault_kind): counts of readings by truth and prediction.
--   truth: the reading lies in a labelled fault of that category (machine faults: any sensor of the machine; sensor
--          faults: the labelled sensors); fault_kind '' for readings in no label of the category.
--   predicted: the reading's window is flagged in that category (anomaly_flags on its machine, or
--          sensor_fault_flags on its sensor).
--   excluded: readings of no label but within one window before a label or the grace period ({grace_seconds} s) after it (the
--          detector's window straddles the start; lagged quantities such as temperatures take a while to settle).
--   cross: readings of a sensor fault (and of no machine fault) whose window raised a machine anomaly.
with

labels as (
    {{ scored_labels('machine_id, category, fault_kind, sensor_ids, start_time, end_time') }}
),

machine_labels as (
    select machine_id, groupArray((category, fault_kind, sensor_ids, start_time, end_time)) as labels
    from labels
    group by machine_id
),

scored_readings as (
    select
        toString(machine_id) as machine_id,
        toString(sensor_id) as sensor_id,
        event_time,
        toDateTime64(toStartOfInterval(event_time, toIntervalSecond({window_seconds:UInt32})), 3, 'UTC') as window_start
    from {{ source('plantwatch', 'readings') }}
    where machine_id in (select machine_id from labels)
       or {include_unlabelled_machines:Bool}
),

machine_flagged as (
    select distinct machine_id, window_start from {{ ref('anomaly_flags') }}
),

sensor_flagged as (
    select distinct machine_id, sensor_id, window_start from {{ ref('sensor_fault_flags') }}
),

classified as (
    select
        r.machine_id as machine_id,
        r.sensor_id as sensor_id,
        arrayFilter(
            l -> r.event_time >= l.4 and r.event_time < l.5 and (l.1 = 'machine' or has(l.3, r.sensor_id)),
            ml.labels
        ) as hits,
        arrayFilter(
            l -> r.event_time >= l.4 - toIntervalSecond({window_seconds:UInt32})
                and r.event_time < l.5 + toIntervalSecond({grace_seconds:UInt32})
                and (l.1 = 'machine' or has(l.3, r.sensor_id)),
            ml.labels
        ) as near,
        (r.machine_id, r.window_start) in machine_flagged as machine_flag,
        (r.machine_id, r.sensor_id, r.window_start) in sensor_flagged as sensor_flag
    from scored_readings as r
    left join machine_labels as ml on r.machine_id = ml.machine_id
),

per_category as (
    select
        category,
        arrayFirst(l -> l.1 = category, hits).2 as fault_kind,
        fault_kind != '' as truth,
        not truth and arrayExists(l -> l.1 = category, near) as excluded,
        if(category = 'machine', machine_flag, sensor_flag) as predicted,
        category = 'sensor' and truth and machine_flag and not arrayExists(l -> l.1 = 'machine', hits) as cross
    from classified
    array join ['machine', 'sensor'] as category
)

select
    category,
    fault_kind,
    countIf(truth and predicted) as tp,
    countIf(not truth and not excluded and predicted) as fp,
    countIf(truth and not predicted) as fn,
    countIf(not truth and not excluded and not predicted) as tn,
    countIf(excluded) as left_out,
    countIf(cross) as crossed
from per_category
group by category, fault_kind
order by category, fault_kind
