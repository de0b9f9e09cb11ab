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

{#- The standard normal quantile with upper tail probability `p` (0 < p <= 0.5; Abramowitz and Stegun 26.2.23,
    error below 5e-4). -#}
{% macro normal_quantile(p) -%}
(sqrt(-2 * log({{ p }})) - (2.515517 + 0.802853 * sqrt(-2 * log({{ p }})) + 0.010328 * (-2 * log({{ p }})))
    / (1 + 1.432788 * sqrt(-2 * log({{ p }})) + 0.189269 * (-2 * log({{ p }}))
       + 0.001308 * pow(sqrt(-2 * log({{ p }})), 3)))
{%- endmacro %}

{#- What T-squared per sensor a perfect Gaussian model of `dims` sensors exceeds at var false_alarm_rate (the
    chi-square quantile over dims, Wilson-Hilferty): the multivariate threshold is never below it, so a healthy
    period that happened to be calm cannot make the detector more sensitive than the model itself allows. -#}
{% macro chi_square_per_dim(dims) -%}
pow(
    1 - 2 / (9 * {{ dims }})
    + {{ normal_quantile('least(' ~ var('false_alarm_rate') ~ ', 0.5)') }} * sqrt(2 / (9 * {{ dims }})),
    3
)
{%- endmacro %}
