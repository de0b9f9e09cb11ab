-- Every machine: configured (machine_config), shipped (the machines seed) or only seen in the readings (unassigned).
SELECT
    ifNull(nullIf(configured.machine_id, ''), seen.machine_id) AS machine_id,
    configured.line_id AS line_id,
    if(configured.model = '', 'unassigned', configured.model) AS model,
    seen.last_reading_at AS last_reading_at
FROM (SELECT machine_id, line_id, model FROM int_machines) AS configured
FULL OUTER JOIN (
    SELECT toString(machine_id) AS machine_id, max(event_time) AS last_reading_at
    FROM {readings:Identifier}
    GROUP BY machine_id
) AS seen ON configured.machine_id = seen.machine_id
ORDER BY machine_id
