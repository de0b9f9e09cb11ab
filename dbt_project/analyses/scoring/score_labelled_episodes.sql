-- Labelled machine faults of the scored machines (those that end after the machine's scored_from), each with the
-- first flag that overlaps it (a flag window reaching into [start, end)): detected, and the delay from the start to
-- the end of that flag's window (when it could be known).
WITH

scope AS (
    {{ scored_machines() }}
),

labels AS (
    SELECT labels.machine_id AS machine_id, labels.fault_kind AS fault_kind, labels.start_time AS start_time,
           labels.end_time AS end_time
    FROM {{ ref('stg_fault_labels') }} AS labels
    INNER JOIN scope ON labels.machine_id = scope.machine_id
    WHERE labels.category = 'machine' AND labels.end_time > scope.scored_from
),

flags AS (
    SELECT machine_id, window_start, window_end FROM {{ ref('anomaly_flags') }}
    WHERE machine_id IN (SELECT machine_id FROM scope)
)

SELECT
    labels.machine_id AS machine_id,
    labels.fault_kind AS fault_kind,
    labels.start_time AS start_time,
    labels.end_time AS end_time,
    countIf(flags.window_end > labels.start_time AND flags.window_start < labels.end_time) > 0 AS detected,
    if(
        detected,
        greatest(0., dateDiff('millisecond', labels.start_time,
                              minIf(flags.window_end, flags.window_end > labels.start_time
                                    AND flags.window_start < labels.end_time)) / 1000),
        nan
    ) AS delay_s
FROM labels
LEFT JOIN flags ON labels.machine_id = flags.machine_id
GROUP BY machine_id, fault_kind, start_time, end_time
ORDER BY machine_id, start_time
