{{ config(
    materialized='incremental',
    incremental_strategy='append',
    engine='ReplacingMergeTree(max_ingested_at)',
    order_by='(machine_id, block_start)',
    partition_by='toYYYYMM(block_start)',
) }}
{%- set block = var('baseline_block_minutes') -%}
{%- set blocks_back = (var('baseline_window_minutes') / block) | round(0, 'ceil') | int -%}
-- The default (trailing) baseline of each machine for each block of var baseline_block_minutes: fitted on the
-- complete, sensor-fault-free windows of the var baseline_window_minutes before the block (see macros/baselines.sql).
-- Fitted from mergeable moments per block, so each window is read once however long the reference is.
with

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

faults as (
    select * from {{ ref('int_sensor_fault_windows') }} final
),

changed as (
    {{ changed_since(
        ref('int_sensor_windows'), 'window_start',
        this_time_column='block_start', this_time_lead_seconds=(block * blocks_back + block) * 60
    ) }}
),

in_scope as (
    select windows.*, toStartOfInterval(changed.since, toIntervalMinute({{ block }})) as since_block
    from windows
    inner join changed on windows.machine_id = changed.machine_id
    where windows.window_start >= since_block - toIntervalMinute({{ block * blocks_back }})
      and windows.window_start
          >= toStartOfInterval((select min(since) from changed), toIntervalMinute({{ block }}))
             - toIntervalMinute({{ block * blocks_back }})
),

faulty_windows as (
    select machine_id, window_start
    from faults
    where fault_kind != ''
    group by machine_id, window_start
),

healthy as (
    select in_scope.*
    from in_scope
    left anti join faulty_windows
        on in_scope.machine_id = faulty_windows.machine_id and in_scope.window_start = faulty_windows.window_start
),

vectors as (
    {{ machine_window_vectors('healthy') }}
),

since_blocks as (
    select machine_id, toStartOfInterval(since, toIntervalMinute({{ block }})) as since_block
    from changed
),

block_moments as (
    select
        machine_id,
        toStartOfInterval(window_start, toIntervalMinute({{ block }})) as source_block,
        sensor_ids,
        {{ baseline_moments() }},
        max(max_ingested_at) as max_ingested_at
    from vectors
    group by machine_id, source_block, sensor_ids
),

reference_moments as (
    select
        block_moments.machine_id as machine_id,
        arrayJoin(
            arrayMap(k -> block_moments.source_block + toIntervalMinute({{ block }} * k), range(1, {{ blocks_back + 1 }}))
        ) as block_start,
        block_moments.sensor_ids as sensor_ids,
        block_moments.windows as windows,
        block_moments.sum_x as sum_x,
        block_moments.sum_xx as sum_xx,
        block_moments.sum_noise as sum_noise,
        block_moments.max_ingested_at as max_ingested_at,
        since_blocks.since_block as since_block
    from block_moments
    inner join since_blocks on block_moments.machine_id = since_blocks.machine_id
),

summed as (
    select
        machine_id,
        block_start,
        sensor_ids,
        sum(windows) as windows,
        sumForEach(sum_x) as sum_x,
        sumForEach(sum_xx) as sum_xx,
        sumForEach(sum_noise) as sum_noise,
        max(max_ingested_at) as max_ingested_at
    from reference_moments
    where block_start > since_block
    group by machine_id, block_start, sensor_ids
    order by windows desc
    limit 1 by machine_id, block_start
),

fitted as (
    select
        machine_id,
        block_start,
        block_start + toIntervalMinute({{ block }}) as block_end,
        windows,
        sensor_ids,
        {{ baseline_from_moments() }},
        {{ baseline_inverse('correlation') }} as inverse,
        max_ingested_at
    from summed
),

trailing_baselines as (
    select
        machine_id, block_start, block_end, windows, sensor_ids, means, stds, noise_mads, inverse, max_ingested_at
    from fitted
)

select * from trailing_baselines
