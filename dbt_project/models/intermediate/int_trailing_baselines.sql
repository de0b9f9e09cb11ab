{{ config(**incremental_config('(machine_id, block_start)', partition_by='block_start')) }}
{%- set block = var('baseline_block_windows') -%}
{%- set blocks_back = (var('baseline_reference_windows') / block) | round(0, 'ceil') | int -%}
-- The default (trailing) baseline of each machine for each block of var baseline_block_windows windows: fitted on
-- the healthy windows (complete, no impossible value or dropout) of the var baseline_reference_windows windows
-- before the block (see macros/baselines.sql). Sized in windows, so a machine's reference is an hour at 1 s and
-- about 12 days at one reading per 5 minutes. Fitted from mergeable moments per block, so each window is read once
-- however long the reference is.
with

windows as (
    select * from {{ ref('int_sensor_windows') }} final
),

checks as (
    select * from {{ ref('int_sensor_window_checks') }} final
),

cadence as materialized (
    select * from {{ ref('int_machine_cadence') }} final
),

changed as materialized (
    {{ changed_since(ref('int_sensor_window_checks')) }}
),

with_context as materialized (
    {{ trailing_block_context('changed', 'cadence') }}
),

scoped_windows as (
    {{ in_scope('windows', 'with_context', time_column='window_start', since_column='context_since') }}
),

scoped_checks as (
    {{ in_scope('checks', 'with_context', time_column='window_start', since_column='context_since') }}
),

healthy as (
    {{ healthy_windows('scoped_windows', 'scoped_checks') }}
),

vectors as (
    {{ machine_window_vectors('healthy') }}
),

block_moments as (
    select
        machine_id,
        window_ms,
        intDiv({{ window_index('window_start', 'window_ms') }}, {{ block }}) as source_block,
        sensor_ids,
        {{ baseline_moments() }},
        max(max_ingested_at) as max_ingested_at
    from vectors
    group by machine_id, window_ms, source_block, sensor_ids
),

reference_moments as (
    select
        block_moments.*,
        arrayJoin(arrayMap(k -> block_moments.source_block + k, range(1, {{ blocks_back + 1 }}))) as block,
        with_context.since_block as since_block
    from block_moments
    inner join with_context on block_moments.machine_id = with_context.machine_id
),

summed as (
    select
        machine_id,
        block,
        window_ms,
        sensor_ids,
        {{ merged_moments() }},
        max(max_ingested_at) as max_ingested_at
    from reference_moments
    where block > since_block
    group by machine_id, window_ms, block, sensor_ids
    order by windows desc
    limit 1 by machine_id, block
),

fitted as (
    select
        machine_id,
        {{ ms_time('block * ' ~ block ~ ' * window_ms') }} as block_start,
        {{ window_end('block_start', block ~ ' * window_ms') }} as block_end,
        windows,
        sensor_ids,
        {{ baseline_from_moments() }},
        {{ baseline_inverse('correlation', 'windows') }} as inverse,
        max_ingested_at
    from summed
),

trailing_baselines as (
    select
        machine_id, block_start, block_end, windows, sensor_ids, means, stds, noise_mads, reading_counts, quanta,
        flat_runs, inverse, max_ingested_at, now64(3) as computed_at
    from fitted
)

select * from trailing_baselines
