SELECT run_at, suite, expectation, `column`, success, observed
FROM dq_results WHERE (suite, run_id) IN (SELECT suite, argMax(run_id, run_at) FROM dq_results GROUP BY suite)
ORDER BY success, suite, expectation
