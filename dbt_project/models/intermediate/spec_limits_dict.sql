{{ config(
    materialized='dictionary',
    fields=[
        ('model', 'String'), ('sensor_kind', 'String'), ('lower', 'Float64'), ('upper', 'Float64'),
        ('physical_min', 'Float64'), ('physical_max', 'Float64'),
    ],
    primary_key='model, sensor_kind',
    layout='COMPLEX_KEY_HASHED()',
    lifetime='MIN 0 MAX 60',
) }}
-- The spec limits (int_spec_limits: the seed and `plantwatch limits set`) as a dictionary keyed by (model, sensor_kind), for the spec-breach materialized view.
select model, sensor_kind, lower, upper, physical_min, physical_max from {{ ref('int_spec_limits') }}
