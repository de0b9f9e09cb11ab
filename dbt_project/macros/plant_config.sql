{#-
  A seed overridden and extended by what `plantwatch machine set` / `plantwatch limits set` configured (`configured`,
  a source keeping every change: its newest row per key counts): the configured rows, and the seeded rows whose
  `keys` none of them has.
-#}
{% macro seed_with_overrides(seeded, configured, keys, columns) -%}
{%- set key = keys | join(', ') -%}
select {{ columns | join(', ') }} from {{ configured }} final
    union all
    select {{ columns | join(', ') }} from {{ seeded }}
    where ({{ key }}) not in (select {{ key }} from {{ configured }} final)
{%- endmacro %}
