SELECT suite, countIf(NOT success) AS failed FROM dq_results WHERE (suite, run_id) IN (SELECT suite, argMax(run_id, run_at) FROM dq_results GROUP BY suite) GROUP BY suite
