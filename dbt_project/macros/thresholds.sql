{#-
  A threshold that about var false_alarm_rate (at most 0.1) of healthy scores exceed, from their median and 90th
  percentile (`quantiles` = [q50, q90]): tails of detector scores fall roughly exponentially, so the quantile at
  rate r lies (q90 - q50) x ln(0.1 / r) / ln(5) beyond q90. Robust where an empirical 99th percentile of a few dozen
  windows is just their maximum, and a few faulty windows among them barely move it. Never below `minimum`.
-#}
{% macro tail_threshold(quantiles, minimum) -%}
greatest(
    {{ minimum }},
    {{ quantiles }}[2] + ({{ quantiles }}[2] - {{ quantiles }}[1])
        * log(0.1 / least({{ var('false_alarm_rate') }}, 0.1)) / log(5)
)
{%- endmacro %}
