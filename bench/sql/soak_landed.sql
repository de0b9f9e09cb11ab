-- Rows in the raw table, and the readings among them: FINAL folds rows with the same sort key (machine, sensor,
-- event time, seq) as the readings view does, so the difference is the duplicates no merge has folded yet.
SELECT count(), (SELECT count() FROM ${database}.${raw_readings_table} FINAL)
FROM ${database}.${raw_readings_table}
