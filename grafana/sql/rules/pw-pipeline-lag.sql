SELECT toFloat64(max(max_ingest_delay_s)) AS max_ingest_delay_s
FROM pipeline_stats
WHERE minute >= now() - INTERVAL 5 MINUTE
