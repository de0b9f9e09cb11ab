-- The spec-breach rows the materialized view wrote for one sensor: machine and event time (ms).
SELECT machine_id, toUnixTimestamp64Milli(event_time)
FROM ${database}.int_spec_breaches
WHERE sensor_id = {sensor:String}
