{#-
  The mergeable states of a group of readings' statistics: what the per-minute materialized view keeps and what
  rolling_aggregates rolls up from minutes into longer windows. Merge them with the -Merge functions of the same
  aggregates (avgMerge(mean_state), argMinMerge(first_value_state), ...).
-#}
{% macro reading_states(value='value', time='event_time') -%}
avgState({{ value }}) as mean_state,
        stddevPopState({{ value }}) as stddev_state,
        minState({{ value }}) as min_state,
        maxState({{ value }}) as max_state,
        argMinState({{ value }}, {{ time }}) as first_value_state,
        argMaxState({{ value }}, {{ time }}) as last_value_state,
        minState({{ time }}) as first_at_state,
        maxState({{ time }}) as last_at_state
{%- endmacro %}
