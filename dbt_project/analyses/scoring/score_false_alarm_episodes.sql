-- Machine alert episodes (the alerts mart) of the scored machines that began after the machine's scored_from and
-- overlap no labelled machine fault: false alarms an engineer would have been called out for.
with

scope as (
    {{ scored_machines() }}
),

labels as (
    {{ machine_fault_periods() }}
),

episodes as (
    select alerts.machine_id as machine_id, alerts.kind as kind, alerts.started_at as started_at,
           alerts.last_flag_at as last_flag_at
    from {{ ref('alerts') }}
    inner join scope on alerts.machine_id = scope.machine_id
    where alerts.category = 'machine' and alerts.started_at >= scope.scored_from
),

-- one episode per machine however many kinds and sensors flagged it at once: overlapping alerts merge
merged as (
    select machine_id, min(started_at) as started_at, max(last_flag_at) as last_flag_at, groupUniqArray(kind) as kinds
    from (
        select *, sum(toUInt64(started_at > previous_last)) over (
            partition by machine_id order by started_at rows between unbounded preceding and current row
        ) as episode
        from (
            select *, max(last_flag_at) over (
                partition by machine_id order by started_at rows between unbounded preceding and 1 preceding
            ) as previous_last
            from episodes
        )
    )
    group by machine_id, episode
)

select merged.machine_id as machine_id, merged.started_at as started_at, merged.last_flag_at as last_flag_at,
       merged.kinds as kinds
from merged
left join labels on merged.machine_id = labels.machine_id
where not arrayExists(p -> merged.last_flag_at > p.1 and merged.started_at < p.2, labels.periods)
order by machine_id, started_at
