-- Labelled machine faults of the scored machines (those that end after the machine's scored_from), each with the
-- first flag that overlaps it (a flag window reaching into [start, end)): detected, and the delay from the start to
-- the end of that flag's window (when it could be known).
with

scope as (
    {{ scored_machines() }}
),

labels as (
    select labels.machine_id as machine_id, labels.fault_kind as fault_kind, labels.start_time as start_time,
           labels.end_time as end_time
    from {{ ref('stg_fault_labels') }} as labels
    inner join scope on labels.machine_id = scope.machine_id
    where labels.category = 'machine' and labels.end_time > scope.scored_from
),

flags as (
    select machine_id, window_start, window_end from {{ ref('anomaly_flags') }}
    where machine_id in (select machine_id from scope)
)

select
    labels.machine_id as machine_id,
    labels.fault_kind as fault_kind,
    labels.start_time as start_time,
    labels.end_time as end_time,
    countIf(flags.window_end > labels.start_time and flags.window_start < labels.end_time) > 0 as detected,
    if(
        detected,
        greatest(0., dateDiff('millisecond', labels.start_time,
                              minIf(flags.window_end, flags.window_end > labels.start_time
                                    and flags.window_start < labels.end_time)) / 1000),
        nan
    ) as delay_s
from labels
left join flags on labels.machine_id = flags.machine_id
group by machine_id, fault_kind, start_time, end_time
order by machine_id, start_time
