SELECT minute AS time, max_ingest_delay_s FROM pipeline_stats WHERE $__timeFilter(minute) ORDER BY time
