-- A table's engine with its arguments, e.g. `Distributed(plantwatch, plantwatch, readings_raw_local, CRC32(machine_id))`
-- (no row when the table does not exist or the user may not see it).
SELECT engine_full
FROM system.tables
WHERE database = {database:String} AND name = {table:String}
