{{ config(materialized='view') }}
-- One row an alert episode of one rule and label set: when it became pending, fired (notified through
-- Alertmanager), resolved, or went back to normal before its `for` was over (cancelled). A view, so it is as
-- current as alert_events whatever the transform loop does; Grafana's "Alert history" panel reads it.
with

events as (
    select * from {{ ref('stg_alert_events') }}
),

episodes as (
    select
        rule_uid,
        fingerprint,
        episode,
        any(rule_title) as rule_title,
        any(machine_id) as machine_id,
        any(sensor_id) as sensor_id,
        any(category) as category,
        any(severity) as severity,
        any(labels) as labels,
        argMax(summary, at) as summary,
        min(at) as started_at,
        minIfOrNull(at, to_state = 'firing') as fired_at,
        minIfOrNull(at, to_state = 'resolved') as resolved_at,
        minIfOrNull(at, to_state = 'normal' and from_state = 'pending') as cancelled_at,
        argMax(`values`, at) as last_values,
        count() as changes
    from events
    group by rule_uid, fingerprint, episode
)

select
    rule_uid,
    rule_title,
    fingerprint,
    episode,
    machine_id,
    sensor_id,
    category,
    severity,
    multiIf(
        resolved_at is not null, 'resolved',
        fired_at is not null, 'firing',
        cancelled_at is not null, 'cancelled',
        'pending'
    ) as status,
    started_at,
    fired_at,
    resolved_at,
    coalesce(resolved_at, cancelled_at) as ended_at,
    dateDiff('millisecond', started_at, fired_at) / 1000 as pending_seconds,
    dateDiff('millisecond', fired_at, resolved_at) / 1000 as firing_seconds,
    summary,
    labels,
    last_values,
    changes
from episodes
