-- Detection scored per row of a replayed export: one row is one instant of one machine (all its sensors' readings
-- at that time), counted from the machine's scored_from time on (the end of its healthy period). truth: the instant
-- lies in a labelled machine fault of that machine; predicted: a machine anomaly flag's window covers it.
-- One result row per machine: tp, fp, fn, tn.
WITH

scope AS (
    {{ scored_machines() }}
),

instants AS (
    SELECT DISTINCT toString(readings.machine_id) AS machine_id, readings.event_time AS event_time
    FROM {{ source('plantwatch', 'readings') }} AS readings
    INNER JOIN scope ON toString(readings.machine_id) = scope.machine_id
    WHERE readings.event_time >= scope.scored_from
),

labels AS (
    {{ machine_fault_periods() }}
),

flags AS (
    SELECT machine_id, groupArray((window_start, window_end)) AS windows
    FROM (SELECT DISTINCT machine_id, window_start, window_end FROM {{ ref('anomaly_flags') }})
    WHERE machine_id IN (SELECT machine_id FROM scope)
    GROUP BY machine_id
),

classified AS (
    SELECT
        instants.machine_id AS machine_id,
        arrayExists(p -> instants.event_time >= p.1 AND instants.event_time < p.2, labels.periods) AS truth,
        arrayExists(w -> instants.event_time >= w.1 AND instants.event_time < w.2, flags.windows) AS predicted
    FROM instants
    LEFT JOIN labels ON instants.machine_id = labels.machine_id
    LEFT JOIN flags ON instants.machine_id = flags.machine_id
)

SELECT
    machine_id,
    countIf(truth AND predicted) AS tp,
    countIf(NOT truth AND predicted) AS fp,
    countIf(truth AND NOT predicted) AS fn,
    countIf(NOT truth AND NOT predicted) AS tn
FROM classified
GROUP BY machine_id
ORDER BY machine_id
