{{ config(materialized='table', engine='MergeTree()', order_by='(machine_id, started_at)') }}
-- Alert episodes: consecutive flags of one machine, sensor, category and kind, no more than
-- var alert_merge_gap_seconds (or var alert_merge_gap_windows of the machine's windows, if longer) apart, make one
-- alert. An alert is resolved once the machine has reported for var alert_resolve_after_seconds (or
-- var alert_resolve_after_windows windows) of event time past its last flag; ended_at is then its last flag's
-- window end. alert_id is stable across runs: a hash of the episode's machine, sensor, category, kind and start.
with

anomaly_flags as (
    select * from {{ ref('anomaly_flags') }}
),

sensor_fault_flags as (
    select * from {{ ref('sensor_fault_flags') }}
),

last_readings as (
    select * from {{ ref('int_machine_last_readings') }}
),

flags as (
    select machine_id, sensor_id, 'machine' as category, flag_kind as kind, window_start, window_end, score, severity
    from anomaly_flags
    union all
    select machine_id, sensor_id, 'sensor' as category, fault_kind as kind, window_start, window_end, score, severity
    from sensor_fault_flags
),

sequenced as (
    select
        flags.*,
        last_readings.window_ms as window_ms,
        lagInFrame(window_end, 1, {{ epoch() }}) over (
            partition by machine_id, sensor_id, category, kind
            order by window_start
            rows between 1 preceding and current row
        ) as previous_end
    from flags
    left join last_readings on flags.machine_id = last_readings.machine_id
),

numbered as (
    select
        *,
        sum(toUInt64(
            dateDiff('millisecond', previous_end, window_start)
                > {{ at_least(var('alert_merge_gap_seconds'), var('alert_merge_gap_windows'), 'window_ms') }}
        )) over (
            partition by machine_id, sensor_id, category, kind
            order by window_start
            rows between unbounded preceding and current row
        ) as episode
    from sequenced
),

episodes as (
    select
        machine_id,
        sensor_id,
        category,
        kind,
        min(window_start) as started_at,
        max(window_end) as last_flag_at,
        count() as flag_count,
        max(score) as max_score,
        if(countIf(severity = 'critical') > 0, 'critical', 'warning') as severity
    from numbered
    group by machine_id, sensor_id, category, kind, episode
),

alerts as (
    select
        lower(hex(cityHash64(episodes.machine_id, sensor_id, category, kind, started_at))) as alert_id,
        episodes.machine_id as machine_id,
        sensor_id,
        category,
        kind,
        severity,
        if(
            dateDiff('millisecond', last_flag_at, last_readings.last_reading_at)
                > {{ at_least(var('alert_resolve_after_seconds'), var('alert_resolve_after_windows'), 'last_readings.window_ms') }},
            'resolved', 'open'
        ) as status,
        started_at,
        if(status = 'resolved', toNullable(last_flag_at), null) as ended_at,
        last_flag_at,
        toUInt64(flag_count) as flag_count,
        toFloat64(max_score) as max_score
    from episodes
    left join last_readings on episodes.machine_id = last_readings.machine_id
)

select * from alerts
