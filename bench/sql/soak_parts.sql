-- Active parts in the soak's database: every table's, and the raw table's alone (merges keep both bounded).
SELECT count(), countIf(table = '${raw_readings_table}')
FROM system.parts
WHERE database = '${database}' AND active
