{#- Time windows and severities shared by every model. -#}

{% macro window_start(ts, seconds=none) -%}
toDateTime64(toStartOfInterval({{ ts }}, toIntervalSecond({{ seconds or var('window_seconds') }})), 3, 'UTC')
{%- endmacro %}

{% macro window_end(start, seconds=none) -%}
{{ start }} + toIntervalSecond({{ seconds or var('window_seconds') }})
{%- endmacro %}

{% macro epoch() -%}
toDateTime64(0, 3, 'UTC')
{%- endmacro %}

{#- 'critical' at critical_factor x the threshold, 'warning' from the threshold. -#}
{% macro severity(score, threshold) -%}
if({{ score }} >= {{ threshold }} * {{ var('critical_factor') }}, 'critical', 'warning')
{%- endmacro %}
