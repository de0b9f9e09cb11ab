{#-
  The raw readings' key columns as plain Strings (the raw table keeps them LowCardinality): every model downstream
  joins and groups them with String columns of its own. `columns`: the keys a model keeps.
-#}
{% macro reading_keys(columns=['machine_id', 'sensor_id', 'sensor_kind']) -%}
{%- for column in columns -%}
toString({{ column }}) as {{ column }}{{ ',\n        ' if not loop.last }}
{%- endfor -%}
{%- endmacro %}

{#-
  A group of readings' statistics, as values (combinator ''), as mergeable states (combinator 'State': each column
  named with a _state suffix), or merged back from such states ('Merge'): int_sensor_windows computes them per
  window, rolling_aggregates per minute as states that it merges into longer windows.
-#}
{% macro reading_statistics(combinator='') -%}
{%- set statistics = [
    ('count', '', 'reading_count'),
    ('avg', 'value', 'mean'),
    ('stddevPop', 'value', 'stddev'),
    ('min', 'value', 'min_value'),
    ('max', 'value', 'max_value'),
    ('argMin', 'value, event_time', 'first_value'),
    ('argMax', 'value, event_time', 'last_value'),
    ('min', 'event_time', 'first_at'),
    ('max', 'event_time', 'last_at'),
] -%}
{%- for function, arguments, name in statistics -%}
{%- if combinator == 'Merge' -%}
{{ function }}Merge({{ name }}_state) as {{ name }}
{%- else -%}
{{ function }}{{ combinator }}({{ arguments }}) as {{ name }}{{ '_state' if combinator }}
{%- endif -%}
{{ ',\n        ' if not loop.last }}
{%- endfor -%}
{%- endmacro %}
