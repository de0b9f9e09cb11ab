-- What users query: raw readings with redeliveries folded away, whether or not a merge has run yet.
CREATE VIEW IF NOT EXISTS ${database}.${readings_view} AS
SELECT * FROM ${database}.${raw_readings_table} FINAL
