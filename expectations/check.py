"""One data-quality run: validate (the checkpoint), store the results in ``dq_results``, set the Prometheus gauges.

`plantwatch check` runs it once or with ``--watch`` (serving /metrics, registered with the local Prometheus, which
alerts on the gauges: PlantwatchDataQualityFailed); the demo runs it once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from plantwatch import warehouse
from plantwatch.expectations import GROUPS
from plantwatch.settings import Settings

if TYPE_CHECKING:
    from plantwatch.expectations.checkpoint import CheckRun

METRICS_JOB = "plantwatch-check"


def check_once(settings: Settings, groups: tuple[str, ...] = GROUPS) -> CheckRun:
    """Validate, store the results in ClickHouse and update the gauges; returns the run."""
    # Imported here: Great Expectations takes seconds to import, which every other command would pay.
    from plantwatch.expectations.checkpoint import QUALITY_ROLE, run_checkpoint
    from plantwatch.expectations.results import publish, store

    results_table = settings.clickhouse.dq_results_table
    exists = "EXISTS TABLE {table:Identifier}"
    if not warehouse.client(settings, role=QUALITY_ROLE).command(exists, parameters={"table": results_table}):
        warehouse.migrate(settings)  # a fresh database: the admin creates the tables, dq_results among them
    run = run_checkpoint(settings, groups)
    store(settings, run)
    publish(run)
    return run
