"""Run the suites as one Great Expectations checkpoint against ClickHouse, through a SQL datasource.

The datasource is GE's generic SQL datasource on clickhouse-connect's SQLAlchemy dialect (``clickhousedb://``), so
every expectation runs as SQL inside ClickHouse: column expectations are compiled by GE, the cross-row and
cross-table ones are our queries (see :mod:`plantwatch.expectations.suites`). Nothing is pulled into pandas. The
context is ephemeral: suites are code, results go to ClickHouse (:mod:`plantwatch.expectations.results`), so no
GE project folder.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import great_expectations as gx
import orjson
from great_expectations.data_context.types.base import ProgressBarsConfig
from sqlalchemy.engine import URL

from plantwatch import warehouse
from plantwatch.access import Role, credentials
from plantwatch.expectations import GROUPS
from plantwatch.expectations.suites import Suite, suites
from plantwatch.settings import Settings

MAX_DETAIL_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Outcome:
    """One expectation's result in one run."""

    suite: str
    expectation: str
    column: str
    success: bool
    observed: str
    details: str


@dataclass
class CheckRun:
    run_id: str
    run_at: datetime
    database: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]


QUALITY_ROLE: Role = "quality"  # reads everything, writes only dq_results (plantwatch/sql/access.yaml)


def connection_url(settings: Settings) -> str:
    """The SQLAlchemy URL of the quality role's user on the plantwatch database."""
    ch = settings.clickhouse
    user, password = credentials(settings, QUALITY_ROLE)
    url = URL.create(
        "clickhousedb",
        username=user,
        password=password or None,
        host=ch.host,
        port=ch.http_port,
        database=ch.database,
    )
    return url.render_as_string(hide_password=False)


def _observed(result: dict[str, Any]) -> str:
    """What was seen, in a few words: a count of offending rows, or an expectation's observed value."""
    if "unexpected_count" in result:
        sample = result.get("partial_unexpected_list") or []
        shown = f" e.g. {orjson.dumps(sample[:5], default=str).decode()}" if sample else ""
        return f"{result['unexpected_count']} of {result.get('element_count', '?')} unexpected{shown}"
    if "observed_value" in result:
        return f"{result['observed_value']} unexpected rows"
    return ""


def _errors(exception_info: dict[str, Any]) -> list[str]:
    """Exception messages of a validation result: GE reports one, or one per failed metric keyed by metric id."""
    if "raised_exception" in exception_info:
        infos = [exception_info]
    else:
        infos = [info for info in exception_info.values() if isinstance(info, dict)]
    return [str(info.get("exception_message", "")) for info in infos if info.get("raised_exception")]


def _outcome(suite: str, validation: Any) -> Outcome:
    config = validation.expectation_config
    meta = config.meta or {}
    kwargs = config.kwargs
    errors = _errors(validation.exception_info or {})
    raised = bool(errors)
    result = dict(validation.result or {})
    details: dict[str, Any] = {"type": config.type, "description": config.description}
    if raised:
        details["error"] = errors[0]
    if result.get("details", {}).get("unexpected_rows"):
        details["sample"] = result["details"]["unexpected_rows"][:5]
    return Outcome(
        suite=suite,
        expectation=meta.get("name", config.type),
        column=str(kwargs.get("column", "")),
        success=bool(validation.success) and not raised,
        observed="error: " + details["error"][:200] if raised else _observed(result),
        details=orjson.dumps(details, default=str).decode()[:MAX_DETAIL_CHARS],
    )


def _missing_table(suite: Suite) -> Outcome:
    return Outcome(suite.name, "table_exists", "", False, f"table {suite.table} missing", "{}")


def run_checkpoint(settings: Settings, groups: tuple[str, ...] = GROUPS) -> CheckRun:
    """Validate the suites of the given groups; a missing table fails its suite instead of aborting the run."""
    run = CheckRun(uuid.uuid4().hex, datetime.now(UTC), settings.clickhouse.database)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    datasource = context.data_sources.add_sql(name="clickhouse", connection_string=connection_url(settings))
    client = warehouse.client(settings, role=QUALITY_ROLE)
    definitions = []
    for suite in suites(settings, groups):
        if not client.command("EXISTS TABLE {table:Identifier}", parameters={"table": suite.table}):
            run.outcomes.append(_missing_table(suite))
            continue
        batch = datasource.add_table_asset(name=suite.name, table_name=suite.table).add_batch_definition_whole_table(
            "all"
        )
        gx_suite = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=suite.expectations))
        definitions.append(
            context.validation_definitions.add(gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite))
        )
    if definitions:
        checkpoint = context.checkpoints.add(
            gx.Checkpoint(
                name="plantwatch",
                validation_definitions=definitions,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
            )
        )
        result = checkpoint.run()
        for suite_result in result.run_results.values():
            run.outcomes += [_outcome(suite_result.suite_name, v) for v in suite_result.results]
    return run
