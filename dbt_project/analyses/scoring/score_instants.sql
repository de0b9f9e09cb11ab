-- Detection scored per row of a replayed export: one row is one instant of one machine (all its sensors' readings
-- at that time), counted from the machine's scored_from time on (the end of its healthy period). truth: the instant
-- lies in a labelled machine fault of that machine; predicted: a machine anomaly flag's window covers it.
-- One result row per machine: tp, fp, fn, tn.
with

scope as (
    {{ scored_machines() }}
),

instants as (
    select distinct toString(readings.machine_id) as machine_id, readings.event_time as event_time
    from {{ source('plantwatch', 'readings') }} as readings
    inner join scope on toString(readings.machine_id) = scope.machine_id
    where readings.event_time >= scope.scored_from
),

labels as (
    {{ machine_fault_periods() }}
),

flags as (
    select machine_id, groupArray((window_start, window_end)) as windows
    from (select distinct machine_id, window_start, window_end from {{ ref('anomaly_flags') }})
    where machine_id in (select machine_id from scope)
    group by machine_id
),

classified as (
    select
        instants.machine_id as machine_id,
        arrayExists(p -> instants.event_time >= p.1 and instants.event_time < p.2, labels.periods) as truth,
        arrayExists(w -> instants.event_time >= w.1 and instants.event_time < w.2, flags.windows) as predicted
    from instants
    left join labels on instants.machine_id = labels.machine_id
    left join flags on instants.machine_id = flags.machine_id
)

select
    machine_id,
    countIf(truth and predicted) as tp,
    countIf(not truth and predicted) as fp,
    countIf(truth and not predicted) as fn,
    countIf(not truth and not predicted) as tn
from classified
group by machine_id
order by machine_id
