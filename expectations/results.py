"""Where check results go: the ClickHouse table ``dq_results`` (Grafana reads it) and Prometheus gauges.

The gauges live in the process's default registry, labelled with the checked database, so a long-running
``plantwatch check --every`` serves them on /metrics (see :func:`plantwatch.metrics.serve_metrics`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from plantwatch import warehouse
from plantwatch.expectations.checkpoint import QUALITY_ROLE, CheckRun
from plantwatch.settings import Settings

RESULT_COLUMNS = ("run_id", "run_at", "suite", "expectation", "column", "success", "observed", "details")

EXPECTATION_SUCCESS = Gauge(
    "plantwatch_dq_expectation_success",
    "1 when the expectation passed in the latest data-quality run, 0 when it failed.",
    ["database", "suite", "expectation"],
)
FAILED_EXPECTATIONS = Gauge(
    "plantwatch_dq_failed_expectations",
    "Expectations that failed in the latest data-quality run.",
    ["database", "suite"],
)
RUN_SUCCESS = Gauge(
    "plantwatch_dq_last_run_success", "1 when every expectation passed in the latest run.", ["database"]
)
RUN_TIMESTAMP = Gauge(
    "plantwatch_dq_last_run_timestamp_seconds", "When the latest data-quality run started (Unix time).", ["database"]
)
_published: dict[str, set[tuple[str, str]]] = {}  # database -> (suite, expectation) series set
RUNS = Counter("plantwatch_dq_runs_total", "Data-quality runs, by outcome.", ["database", "outcome"])


def store(settings: Settings, run: CheckRun) -> int:
    """Insert one dq_results row per outcome; returns the number of rows."""
    rows = [
        [run.run_id, run.run_at, o.suite, o.expectation, o.column, o.success, o.observed, o.details]
        for o in run.outcomes
    ]
    if rows:
        client = warehouse.client(settings, role=QUALITY_ROLE)
        client.insert(settings.clickhouse.dq_results_table, rows, column_names=list(RESULT_COLUMNS))
    return len(rows)


def publish(run: CheckRun) -> None:
    """Set the gauges to this run's results (replacing the previous run's series for its database)."""
    db = run.database
    for suite, expectation in _published.pop(db, set()):  # drop series of expectations no longer checked
        EXPECTATION_SUCCESS.remove(db, suite, expectation)
    failed: dict[str, int] = {}
    for o in run.outcomes:
        EXPECTATION_SUCCESS.labels(db, o.suite, o.expectation).set(int(o.success))
        _published.setdefault(db, set()).add((o.suite, o.expectation))
        failed[o.suite] = failed.get(o.suite, 0) + (not o.success)
    for suite, count in failed.items():
        FAILED_EXPECTATIONS.labels(db, suite).set(count)
    RUN_SUCCESS.labels(db).set(int(run.success))
    RUN_TIMESTAMP.labels(db).set(run.run_at.timestamp())
    RUNS.labels(db, "success" if run.success else "failure").inc()
