SELECT minute AS time, readings, machines FROM pipeline_stats FINAL WHERE $__timeFilter(minute) ORDER BY time
