SELECT minute AS time, readings, machines FROM pipeline_stats WHERE $__timeFilter(minute) ORDER BY time
