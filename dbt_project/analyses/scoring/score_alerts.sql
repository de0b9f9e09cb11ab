-- Alerts scored as predicted episodes: an alert is a true positive when a labelled fault of its category on its
-- machine (sensor faults: on its sensor) overlaps it, from one window before the fault to the grace period ({grace_seconds} s) after.
with

labels as (
    select machine_id, category, fault_kind, sensor_ids, start_time, end_time
    from {{ ref('stg_fault_labels') }}
    where (empty({run_ids:Array(String)}) or run_id in {run_ids:Array(String)})
),

alerts as (
    select * from {{ ref('alerts') }}
    where machine_id in (select machine_id from labels) or {include_unlabelled_machines:Bool}
),

matched as (
    select
        alerts.alert_id as alert_id,
        alerts.machine_id as machine_id,
        alerts.category as category,
        alerts.kind as kind,
        alerts.started_at as started_at,
        countIf(
            labels.category = alerts.category
            and (alerts.category = 'machine' or has(labels.sensor_ids, alerts.sensor_id))
            and alerts.last_flag_at > labels.start_time - toIntervalSecond({window_seconds:UInt32})
            and alerts.started_at < labels.end_time + toIntervalSecond({grace_seconds:UInt32})
        ) > 0 as true_positive
    from alerts
    left join labels on alerts.machine_id = labels.machine_id
    group by alert_id, machine_id, category, kind, started_at
)

select alert_id, machine_id, category, kind, started_at, true_positive
from matched
order by started_at
