{{ config(
    materialized='incremental',
    incremental_strategy='append',
    engine='ReplacingMergeTree(max_ingested_at)',
    order_by='(machine_id, sensor_id, window_start)',
    partition_by='toYYYYMM(window_start)',
    indexes=[{'name': 'max_ingested_at_minmax', 'definition': 'max_ingested_at TYPE minmax GRANULARITY 1'}],
) }}
-- One row per machine, sensor and detector window (var window_seconds): the window's statistics, including the
-- spread of the readings around the window's own linear trend (what the spike detector scores).
with

readings as (
    select * from {{ ref('stg_readings') }}
),

raw_readings as (
    select * from {{ source('plantwatch', 'readings_raw') }}
),

changed as (
    {{ changed_since('raw_readings', 'event_time', watermark='ingested_at') }}
),

in_scope as (
    {{ in_scope('readings', 'changed') }}
),

windowed as (
    select
        machine_id,
        sensor_id,
        {{ window_start('event_time') }} as window_start,
        any(sensor_kind) as sensor_kind,
        count() as reading_count,
        avg(value) as mean,
        stddevPop(value) as stddev,
        min(value) as min_value,
        max(value) as max_value,
        argMin(value, event_time) as first_value,
        argMax(value, event_time) as last_value,
        min(event_time) as first_at,
        max(event_time) as last_at,
        groupArray(value) as window_values,
        groupArray(dateDiff('millisecond', window_start, event_time) / 1000) as offsets,
        max(ingested_at) as max_ingested_at
    from in_scope
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
        arrayMap(r -> abs(r - residual_median), residuals) as deviations
    from windowed
),

window_stats as (
    select
        machine_id,
        sensor_id,
        sensor_kind,
        window_start,
        {{ window_end('window_start') }} as window_end,
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
        max_ingested_at
    from detrended
)

select * from window_stats
