{#
  dbt-clickhouse's create statement for materialized views, with DEFINER = the dbt user and SQL SECURITY DEFINER.
  A materialized view runs on every insert into its source; without this, it would run with the rights of the
  inserting user, so the ingest user (which may only INSERT into the raw table, see plantwatch/sql/access.yaml)
  would need rights on every derived table too. Overrides the adapter's macro of the same name.
#}
{% macro clickhouse__create_mv(mv_relation, target_relation, cluster_clause, refreshable_clause, view_sql, is_main_statement=False)  -%}
  {% set statement_name = 'main' if is_main_statement else 'create existing mv: ' + mv_relation.name -%}
  {% call statement(statement_name) -%}
    create materialized view if not exists {{ mv_relation }} {{ cluster_clause }}
    {{ refreshable_clause }}
    to {{ target_relation }}
    definer = {{ target.user }} sql security definer
    as {{ view_sql }}
  {% endcall %}
{%- endmacro %}
