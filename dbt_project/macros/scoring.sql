{#-
  The pieces the scoring analyses (analyses/scoring) share. Their values are ClickHouse query parameters that
  plantwatch/scoring.py binds: {run_ids:Array(String)}, {grace_seconds:UInt32}; a replayed export's scores take
  {machines:Array(String)} and {scored_from:Array(DateTime64(3, 'UTC'))} instead.
-#}

{#- The fault labels of the runs scored (all runs when run_ids is empty). -#}
{% macro scored_labels(columns) -%}
select {{ columns }}
    from {{ ref('stg_fault_labels') }}
    where (empty({run_ids:Array(String)}) or run_id in {run_ids:Array(String)})
{%- endmacro %}

{#- The machines of a replayed export, each with the time it is scored from (the end of its healthy period). -#}
{% macro scored_machines() -%}
select tupleElement(pair, 1) as machine_id, tupleElement(pair, 2) as scored_from
    from (select arrayJoin(arrayZip({machines:Array(String)}, {scored_from:Array(DateTime64(3, 'UTC'))})) as pair)
{%- endmacro %}

{#-
  A flag (or an alert: `end` its last flag's end) of the label's category - a sensor fault's on one of its sensors -
  overlapping the label from `before` the start to the grace period after its end.
-#}
{% macro overlaps_label(flag, label, start='window_start', end='window_end', before='toIntervalSecond(0)') -%}
{{ flag }}.category = {{ label }}.category
            and ({{ label }}.category = 'machine' or has({{ label }}.sensor_ids, {{ flag }}.sensor_id))
            and {{ flag }}.{{ end }} > {{ label }}.start_time - {{ before }}
            and {{ flag }}.{{ start }} < {{ label }}.end_time + toIntervalSecond({grace_seconds:UInt32})
{%- endmacro %}

{#- Each scored machine's labelled machine faults, as (start, end) periods; `scope` is the scored_machines CTE. -#}
{% macro machine_fault_periods(scope='scope') -%}
select machine_id, groupArray((start_time, end_time)) as periods
    from {{ ref('stg_fault_labels') }}
    where category = 'machine' and machine_id in (select machine_id from {{ scope }})
    group by machine_id
{%- endmacro %}
