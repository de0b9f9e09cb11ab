{#-
  A per-shard transform (plantwatch settings transform.per_shard, docs/scale-out.md) builds each shard's models in
  the shard database on its own node. This puts them, on that node, under their names in `database` (the
  configured one, where the apps, Grafana and the checks read): a Distributed table over each model (every shard's
  rows: each shard holds whole machines), a view over each seed (every shard has the same copy). A view that
  aggregates over machines (meta across_shards, e.g. pipeline_stats) is instead the same view over those
  Distributed tables, made after them: one row per key, not one per shard. Dictionaries stay per node. Run by
  plantwatch.transform after each shard's build; a model not built yet is skipped.
-#}
{% macro expose_shard_models(database, cluster) %}
{%- set across_shards = [] -%}
{%- for node in graph.nodes.values()
    if node.resource_type in ('model', 'seed') and node.config.materialized not in ('dictionary', 'ephemeral') %}
  {%- set built = adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias) -%}
  {%- if built is none -%}
  {%- elif node.config.meta.get('across_shards') -%}
    {%- do across_shards.append(node) -%}
  {%- elif node.resource_type == 'seed' -%}
    {%- do run_query('create or replace view ' ~ database ~ '.' ~ node.alias ~ ' as select * from ' ~ built) -%}
  {%- else -%}
    {%- do run_query(
        'create or replace table ' ~ database ~ '.' ~ node.alias ~ ' as ' ~ built
        ~ ' engine = Distributed(' ~ cluster ~ ', ' ~ node.schema ~ ', ' ~ node.alias ~ ')'
    ) -%}
  {%- endif -%}
{%- endfor %}
{%- for node in across_shards %}
  {%- set definition = run_query(
      "select as_select from system.tables where database = '" ~ node.schema ~ "' and name = '" ~ node.alias ~ "'"
  ).columns[0].values()[0] -%}
  {%- do run_query(
      'create or replace view ' ~ database ~ '.' ~ node.alias ~ ' as '
      ~ definition.replace(node.schema ~ '.', database ~ '.')
  ) -%}
{%- endfor %}
{% endmacro %}
