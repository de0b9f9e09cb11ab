-- Rows that name a machine the machines seed does not know.
SELECT machine_id
FROM {batch}
WHERE machine_id NOT IN (SELECT machine_id FROM machines)
