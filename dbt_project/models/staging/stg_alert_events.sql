-- The alert history as `plantwatch alerts --every` records it (plantwatch/sql/070_alert_events.sql): one row a state
-- change of one rule's label set, with the episode it belongs to (an episode starts when a normal or resolved
-- label set becomes pending or firing again).
with

events as (
    select * from {{ source('plantwatch_alerting', 'alert_events') }}
),

renamed as (
    select
        at,
        toString(rule_uid) as rule_uid,
        toString(rule_title) as rule_title,
        fingerprint,
        labels,
        toString(machine_id) as machine_id,
        labels['sensor_id'] as sensor_id,
        labels['category'] as category,
        labels['severity'] as severity,
        toString(from_state) as from_state,
        toString(to_state) as to_state,
        `values`,
        summary
    from events
)

select
    *,
    sum(toUInt64(from_state in ('normal', 'resolved') and to_state in ('pending', 'firing'))) over (
        partition by rule_uid, fingerprint
        order by at
        rows between unbounded preceding and current row
    ) as episode
from renamed
