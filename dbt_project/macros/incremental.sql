{#-
  Incremental models append into a ReplacingMergeTree whose version is `computed_at` (now64() of the run that wrote
  the row): a recomputed row replaces the old one. Each run recomputes, per machine, everything from a `since` time
  on; with nothing new upstream nothing is recomputed and nothing written. Two ways to find (machine_id, since):

  readings_changed_since (models over the raw readings): a machine has new rows when some of its raw rows were
  ingested after the newest `max_ingested_at` this model has seen; it recomputes from one window before the earliest
  of its rows ingested up to var ingest_settle_seconds before that (inserts still being written at the last run), but
  never from earlier than its latest window here less the lateness (var lateness_seconds, or var lateness_windows
  windows if longer): readings later than that are dropped. A machine this model has never seen starts from its first
  reading. `cadence`: the CTE of int_machine_cadence, for models cut into each machine's own windows.

  changed_since (models over other models): a machine recomputes from the earliest `time_column` of its upstream
  rows computed after this model's newest row; `restart` (SQL returning machine_id) names machines to recompute
  from the start, e.g. those with a new commissioning baseline.
  A full build recomputes every machine from the start.
-#}
{% macro readings_changed_since(cadence=none) %}
{%- set upstream = source('plantwatch', 'readings_raw') -%}
{%- set window_ms = 'cadence.window_ms' if cadence else var('window_seconds') * 1000 -%}
{%- if is_incremental() %}
select
    fresh.machine_id as machine_id,
    if(
        done.machine_id = '',
        {{ epoch() }},
        greatest(
            {{ window_start('fresh.earliest', window_ms) }} - toIntervalMillisecond({{ window_ms }}),
            done.latest - toIntervalMillisecond({{ at_least(var('lateness_seconds'), var('lateness_windows'), window_ms) }})
        )
    ) as since
from (
    select machine_id, min(event_time) as earliest, max(ingested_at) as newest
    from {{ upstream }}
    where ingested_at > (
        select max(max_ingested_at) - toIntervalSecond({{ var('ingest_settle_seconds') }}) from {{ this }}
    )
    group by machine_id
    having newest > (select max(max_ingested_at) from {{ this }})
    {%- if cadence %}
    union all
    -- machines whose cadence was measured since this model last ran: all their history is new here
    select machine_id, {{ epoch() }} as earliest, {{ epoch() }} as newest
    from {{ cadence }}
    where machine_id not in (select machine_id from {{ this }})
    {%- endif %}
) as fresh
{%- if cadence %}
inner join {{ cadence }} as cadence on fresh.machine_id = cadence.machine_id
{%- endif %}
left join (
    select machine_id, max(window_start) as latest from {{ this }} group by machine_id
) as done on fresh.machine_id = done.machine_id
limit 1 by fresh.machine_id
{%- else %}
select machine_id, {{ epoch() }} as since
from {{ cadence if cadence else upstream }}
group by machine_id
{%- endif %}
{% endmacro %}

{% macro changed_since(upstream, time_column='window_start', restart=none) %}
{%- if is_incremental() %}
select machine_id, min(since) as since
from (
    select machine_id, min({{ time_column }}) as since
    from {{ upstream }}
    where computed_at > (select max(computed_at) from {{ this }})
    group by machine_id
    {%- if restart %}
    union all
    select machine_id, {{ epoch() }} as since from ({{ restart }})
    {%- endif %}
)
group by machine_id
{%- else %}
select machine_id, {{ epoch() }} as since
from {{ upstream }}
group by machine_id
{%- endif %}
{% endmacro %}

{#-
  The rows of an incremental model (ReplacingMergeTree on computed_at) that satisfy `condition` in their latest
  version: what `select * from relation final where condition` returns, without merging the whole table: only the
  keys with a matching row are looked up. For the marts that keep the few flagged rows of large score tables.
-#}
{% macro latest_rows_where(relation, keys, condition) %}
{%- set key = keys | join(', ') -%}
select *
from (
    select *
    from {{ relation }}
    where ({{ key }}) in (select {{ key }} from {{ relation }} where {{ condition }})
    order by {{ key }}, computed_at desc
    limit 1 by {{ key }}
)
where {{ condition }}
{% endmacro %}

{#-
  The rows of `rows` (a CTE with machine_id and `time_column`) for the machines that `changed` (a changed_since CTE)
  names, from each machine's `since_column` on (a model needing context before `since` adds a column of its own to
  the changed CTE) - aligned down with `align` (e.g. 'toStartOfHour') when the model's windows are coarser than the
  detector window. The second condition lets ClickHouse prune by time before the join.
-#}
{% macro in_scope(rows, changed, align=none, time_column='event_time', since_column='since') %}
{%- set since = changed ~ '.' ~ since_column -%}
{%- set earliest = '(select min(' ~ since_column ~ ') from ' ~ changed ~ ')' -%}
select {{ rows }}.*, {{ since }} as scope_since
from {{ rows }}
inner join {{ changed }} on {{ rows }}.machine_id = {{ changed }}.machine_id
where {{ rows }}.{{ time_column }} >= {{ align ~ '(' ~ since ~ ')' if align else since }}
  and {{ rows }}.{{ time_column }} >= {{ align ~ '(' ~ earliest ~ ')' if align else earliest }}
{%- endmacro %}

{#-
  The config of an incremental model as the macros above expect it: appended rows, of which the newest `version`
  (computed_at: the run that wrote it) of each `order_by` key wins on merge. `partition_by` a time column: monthly
  partitions of it. `fine_index` (the per-window tables): an index mark every var window_table_index_granularity
  rows, so that reading a machine's last hour skips the rest of its history. `minmax`: columns with a minmax skip
  index (the incremental reads cut by computed_at; the marts by their flag columns).
-#}
{% macro incremental_config(order_by, version='computed_at', partition_by=none, fine_index=false, minmax=[]) %}
{%- set indexes = [] -%}
{%- for column in minmax -%}
{%- do indexes.append({'name': column ~ '_minmax', 'definition': column ~ ' TYPE minmax GRANULARITY 1'}) -%}
{%- endfor -%}
{{ return({
    'materialized': 'incremental',
    'incremental_strategy': 'append',
    'engine': 'ReplacingMergeTree(' ~ version ~ ')',
    'order_by': order_by,
    'partition_by': 'toYYYYMM(' ~ partition_by ~ ')' if partition_by else none,
    'settings': {'index_granularity': var('window_table_index_granularity')} if fine_index else {},
    'indexes': indexes,
}) }}
{% endmacro %}
