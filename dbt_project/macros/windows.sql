{#-
  Detector windows. Each machine has a window length of its own (int_machine_cadence.window_ms: a number of its
  sampling periods, at least var window_seconds), so windows are computed in epoch milliseconds: a window is
  [index * window_ms, (index + 1) * window_ms). Every model that cuts windows joins int_machine_cadence for the length.
-#}

{% macro ms(ts) -%}
toUnixTimestamp64Milli({{ ts }})
{%- endmacro %}

{% macro ms_time(milliseconds) -%}
fromUnixTimestamp64Milli(toInt64({{ milliseconds }}), 'UTC')
{%- endmacro %}

{#- The window holding `ts` (a DateTime64), as its start time. -#}
{% macro window_start(ts, window_ms) -%}
{{ ms_time('intDiv(' ~ ms(ts) ~ ', ' ~ window_ms ~ ') * ' ~ window_ms) }}
{%- endmacro %}

{% macro window_end(start, window_ms) -%}
{{ start }} + toIntervalMillisecond({{ window_ms }})
{%- endmacro %}

{#- A window's position on its machine's grid of windows (consecutive windows differ by 1). -#}
{% macro window_index(start, window_ms) -%}
intDiv({{ ms(start) }}, {{ window_ms }})
{%- endmacro %}

{% macro epoch() -%}
toDateTime64(0, 3, 'UTC')
{%- endmacro %}

{#- A duration of var `seconds`, or of `windows` windows of the machine, whichever is longer (in milliseconds). -#}
{% macro at_least(seconds, windows, window_ms) -%}
greatest({{ seconds }} * 1000, {{ windows }} * {{ window_ms }})
{%- endmacro %}

{#- 'critical' at var critical_factor x the threshold, 'warning' from the threshold. -#}
{% macro severity(score, threshold) -%}
if({{ score }} >= {{ threshold }} * {{ var('critical_factor') }}, 'critical', 'warning')
{%- endmacro %}

{#- The join condition of two relations' rows of the same window: machine, sensor (unless per_machine) and start. -#}
{% macro same_window(left, right, per_machine=false) -%}
{{ left }}.machine_id = {{ right }}.machine_id
        {%- if not per_machine %} and {{ left }}.sensor_id = {{ right }}.sensor_id{% endif %}
        and {{ left }}.window_start = {{ right }}.window_start
{%- endmacro %}

{#- The columns that name a sensor's window, first in every per-window table of sensors. -#}
{% macro sensor_window_columns() -%}
machine_id,
        sensor_id,
        sensor_kind,
        window_start,
        {{ window_end('window_start', 'window_ms') }} as window_end,
        window_ms
{%- endmacro %}
