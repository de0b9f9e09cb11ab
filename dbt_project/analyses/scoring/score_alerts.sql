-- Alerts scored as predicted episodes: an alert is a true positive when a labelled fault of its category on its
-- machine (sensor faults: on its sensor) overlaps it, from one window before the fault to the grace period ({grace_seconds} s) after.
with

labels as (
    {{ scored_labels('machine_id, category, fault_kind, sensor_ids, start_time, end_time') }}
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
            {{ overlaps_label(
                'alerts', 'labels', start='started_at', end='last_flag_at',
                before='toIntervalSecond({window_seconds:UInt32})',
            ) }}
        ) > 0 as true_positive
    from alerts
    left join labels on alerts.machine_id = labels.machine_id
    group by alert_id, machine_id, category, kind, started_at
)

select alert_id, machine_id, category, kind, started_at, true_positive
from matched
order by started_at
