-- Ground-truth fault episodes, one row a labelled fault.
with

labels as (
    select * from {{ source('plantwatch', 'fault_labels') }} final
),

renamed as (
    select
        toString(run_id) as run_id,
        toString(machine_id) as machine_id,
        sensor_ids,
        toString(fault_kind) as fault_kind,
        multiIf(
            fault_kind in ('stuck', 'dropout', 'out_of_range', 'impossible_value'), 'sensor',
            'machine'
        ) as category,
        severity,
        start_time,
        end_time,
        toString(source) as source
    from labels
)

select * from renamed
