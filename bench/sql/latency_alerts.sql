-- Machines with a spec-breach alert on one sensor, in the alerts mart.
SELECT DISTINCT machine_id
FROM ${database}.alerts
WHERE category = 'machine' AND kind = 'spec_breach' AND sensor_id = {sensor:String}
