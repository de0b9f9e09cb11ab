{#-
  Incremental windows, shared by every incremental model (append into a ReplacingMergeTree whose version is
  max_ingested_at, so a recomputed window replaces the old one and an identical one changes nothing).

  changed_since(upstream, ...) is the body of a CTE with one row per machine that has new rows upstream:
  (machine_id, since) = the first window to recompute. A machine has new rows when its `watermark` column (the
  ingest time) is later than the newest this model has seen; it then recomputes from the earliest of its rows
  ingested up to var('ingest_settle_seconds') before that (inserts still being written at the last run), so
  with no new rows nothing is recomputed and nothing written. A machine recomputes from one window before its earliest new row, but never from
  earlier than its latest window in this model less var('lateness_seconds'): readings later than that are dropped.
  A full build (or a machine seen for the first time) starts at the machine's first row. A model whose own time
  column runs ahead of its upstream's (a baseline for a block lies after its reference) says by how much in
  this_time_lead_seconds.
-#}
{% macro changed_since(upstream, time_column, watermark='max_ingested_at', this_time_column='window_start', this_time_lead_seconds=0) %}
{%- set window = var('window_seconds') -%}
{%- if is_incremental() %}
select
    fresh.machine_id as machine_id,
    greatest(
        {{ window_start('fresh.earliest') }} - toIntervalSecond({{ window }}),
        if(done.machine_id = '', {{ epoch() }}, done.latest - toIntervalSecond({{ var('lateness_seconds') + this_time_lead_seconds }}))
    ) as since
from (
    select machine_id, min({{ time_column }}) as earliest, max({{ watermark }}) as newest
    from {{ upstream }}
    where {{ watermark }} > (
        select max(max_ingested_at) - toIntervalSecond({{ var('ingest_settle_seconds') }}) from {{ this }}
    )
    group by machine_id
    having newest > (select max(max_ingested_at) from {{ this }})
) as fresh
left join (
    select machine_id, max({{ this_time_column }}) as latest from {{ this }} group by machine_id
) as done on fresh.machine_id = done.machine_id
{%- else %}
select machine_id, {{ window_start('min(' ~ time_column ~ ')') }} as since
from {{ upstream }}
group by machine_id
{%- endif %}
{% endmacro %}

{#-
  The rows of an incremental model (ReplacingMergeTree on max_ingested_at) that satisfy `condition` in their latest
  version: what `select * from relation final where condition` returns, without merging the whole table: only the
  keys with a matching row are looked up. For the marts that keep the few flagged rows of large score tables.
-#}
{% macro latest_rows_where(relation, keys, condition) %}
{%- set key = keys | join(', ') -%}
select candidates.*
from (select * from {{ relation }} where {{ condition }}) as candidates
inner join (
    select {{ key }}, max(max_ingested_at) as latest_version
    from {{ relation }}
    where ({{ key }}) in (select {{ key }} from {{ relation }} where {{ condition }})
    group by {{ key }}
) as latest using ({{ key }})
where candidates.max_ingested_at = latest.latest_version
limit 1 by {{ key }}
{% endmacro %}

{#-
  The rows of `readings` (a CTE with machine_id and event_time) for the machines that `changed` (a changed_since
  CTE) names, from each machine's `since` on - aligned down with `align` (e.g. 'toStartOfHour') when the model's
  windows are coarser than the detector window. The second condition lets ClickHouse prune by time before the join.
-#}
{% macro in_scope(readings, changed, align=none) %}
{%- set since = changed ~ '.since' -%}
{%- set earliest = '(select min(since) from ' ~ changed ~ ')' -%}
select {{ readings }}.*
from {{ readings }}
inner join {{ changed }} on {{ readings }}.machine_id = {{ changed }}.machine_id
where {{ readings }}.event_time >= {{ align ~ '(' ~ since ~ ')' if align else since }}
  and {{ readings }}.event_time >= {{ align ~ '(' ~ earliest ~ ')' if align else earliest }}
{%- endmacro %}
