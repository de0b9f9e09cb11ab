{{ config(
    materialized='dictionary',
    fields=[('machine_id', 'String'), ('line_id', 'String'), ('model', 'String')],
    primary_key='machine_id',
    layout='COMPLEX_KEY_HASHED()',
    lifetime='MIN 0 MAX 60',
) }}
-- The plant's machines (int_machines: the seed and `plantwatch machine set`) as a dictionary: machine -> line and model, for enrichment in materialized views and queries.
select machine_id, line_id, model from {{ ref('int_machines') }}
