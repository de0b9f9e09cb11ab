{{ config(
    materialized='incremental',
    incremental_strategy='append',
    engine='ReplacingMergeTree(max_ingested_at)',
    order_by='(machine_id, sensor_id, window_start)',
    partition_by='toYYYYMM(window_start)',
    indexes=[
        {'name': 'spike_score_minmax', 'definition': 'spike_score TYPE minmax GRANULARITY 1'},
        {'name': 'drift_score_minmax', 'definition': 'drift_score TYPE minmax GRANULARITY 1'},
    ],
) }}
{%- set context = var('drift_context_windows') -%}
-- One row per sensor of a scored machine window: the spike score (the largest reading's distance from the window's
-- own trend in robust z: / (1.4826 x the baseline's median absolute deviation)) and the drift score (an EWMA, with
-- a half-life of var drift_half_life_windows windows, of the sensor's residual against its machine's other sensors,
-- clipped to +-var drift_clip so that one spike does not look like a drift).
with

machine_scores as (
    select * from {{ ref('int_machine_window_scores') }} final
),

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

changed as (
    {{ changed_since(ref('int_machine_window_scores'), 'window_start') }}
),

in_scope as (
    select machine_scores.*, changed.since as since
    from machine_scores
    inner join changed on machine_scores.machine_id = changed.machine_id
    where machine_scores.baseline_kind != ''
      and machine_scores.window_start >= changed.since - toIntervalSecond({{ context * var('window_seconds') }})
      and machine_scores.window_start
          >= (select min(since) from changed) - toIntervalSecond({{ context * var('window_seconds') }})
),

per_sensor as (
    select
        machine_id,
        window_start,
        window_end,
        since,
        baseline_kind,
        max_ingested_at,
        sensor.1 as sensor_id,
        sensor.2 as residual,
        sensor.3 as noise_mad
    from in_scope
    array join arrayZip(sensor_ids, residuals, noise_mads) as sensor
),

scoped_windows as (
    select machine_id, sensor_id, window_start, residual_peak
    from windows
    where machine_id in (select machine_id from changed)
      and window_start
          >= (select min(since) from changed) - toIntervalSecond({{ context * var('window_seconds') }})
),

with_windows as (
    select
        per_sensor.*,
        windows.residual_peak as residual_peak
    from per_sensor
    inner join scoped_windows as windows
        on per_sensor.machine_id = windows.machine_id
        and per_sensor.sensor_id = windows.sensor_id
        and per_sensor.window_start = windows.window_start
),

smoothed as (
    select
        *,
        residual_peak / (1.4826 * greatest(noise_mad, 1e-9)) as spike_score,
        exponentialTimeDecayedAvg({{ var('drift_half_life_windows') / 0.6931471805599453 }})(
            greatest(-{{ var('drift_clip') }}, least({{ var('drift_clip') }}, residual)),
            toUnixTimestamp(window_start) / {{ var('window_seconds') }}
        ) over (
            partition by machine_id, sensor_id
            order by window_start
            rows between {{ context }} preceding and current row
        ) as drift_score
    from with_windows
),

scored as (
    select
        machine_id,
        sensor_id,
        window_start,
        window_end,
        baseline_kind,
        residual,
        spike_score,
        drift_score,
        max_ingested_at
    from smoothed
    where window_start >= since
)

select * from scored
