{{ config(**incremental_config(
    '(machine_id, sensor_id, window_start)', partition_by='window_start', fine_index=true, minmax=['computed_at'],
)) }}
-- One row per machine, sensor and detector window (the machine's window length, int_machine_cadence): the window's
-- statistics, including the spread of the readings around the window's own linear trend (what the spike detector
-- scores) and the smallest step between two successive readings (a quantized sensor's resolution).
with

readings as (
    select * from {{ ref('stg_readings') }}
),

cadence as materialized (
    select * from {{ ref('int_machine_cadence') }} final
),

changed as materialized (
    {{ readings_changed_since(cadence='cadence') }}
),

in_scope as (
    {{ in_scope('readings', 'changed') }}
),

with_cadence as (
    select in_scope.*, cadence.window_ms as machine_window_ms
    from in_scope
    inner join cadence on in_scope.machine_id = cadence.machine_id
),

windowed as (
    select
        machine_id,
        sensor_id,
        {{ window_start('event_time', 'machine_window_ms') }} as window_start,
        any(machine_window_ms) as window_ms,
        any(sensor_kind) as sensor_kind,
        {{ reading_statistics() }},
        arraySort((v, t) -> t, groupArray(value), groupArray(event_time)) as window_values,
        arraySort(groupArray(dateDiff('millisecond', window_start, event_time) / 1000)) as offsets,
        max(ingested_at) as max_ingested_at
    from with_cadence
    group by machine_id, sensor_id, window_start
),

detrended as (
    select
        *,
        arrayReduce('simpleLinearRegression', offsets, window_values) as fit,
        if(
            reading_count >= 3 and isFinite(fit.1) and isFinite(fit.2),
            arrayMap((v, t) -> v - (fit.1 * t + fit.2), window_values, offsets),
            arrayMap(v -> v - mean, window_values)
        ) as residuals,
        arrayReduce('median', residuals) as residual_median,
        arrayMap(r -> abs(r - residual_median), residuals) as deviations,
        arrayFilter(step -> step > 0, arrayMap(d -> abs(d), arrayDifference(window_values))) as steps
    from windowed
),

window_stats as (
    select
        {{ sensor_window_columns() }},
        reading_count,
        mean,
        stddev,
        min_value,
        max_value,
        first_value,
        last_value,
        first_at,
        last_at,
        if(reading_count >= 3, fit.1, 0.) as trend_per_second,
        arrayReduce('median', deviations) as residual_mad,
        arrayReduce('max', deviations) as residual_peak,
        if(empty(steps), 0., arrayMin(steps)) as min_step,
        max_ingested_at,
        now64(3) as computed_at
    from detrended
)

select * from window_stats
