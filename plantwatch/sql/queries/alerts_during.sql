-- Alerts raised on one machine while a fault lasted (or up to a minute after it ended).
SELECT DISTINCT category, kind
FROM alerts
WHERE machine_id = {machine:String}
  AND started_at <= fromUnixTimestamp64Milli({end_ms:Int64}, 'UTC') + INTERVAL 60 SECOND
  AND coalesce(ended_at, last_flag_at) >= fromUnixTimestamp64Milli({start_ms:Int64}, 'UTC')
