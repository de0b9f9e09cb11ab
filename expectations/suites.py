"""The expectation suites: what "good data" means for raw readings, their freshness and the derived (dbt) tables.

Each suite validates one table (or view) in the plantwatch database. Column-level rules use Great Expectations'
built-in expectations, which GE compiles to SQL for ClickHouse; rules that span rows or tables are
``UnexpectedRowsExpectation`` queries kept in ``expectations/sql/*.sql`` (``{batch}`` is the validated table,
``${name}`` a setting). Every expectation carries ``meta["name"]``, the stable name results are stored under.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from string import Template

import great_expectations.expectations as gxe
from great_expectations.expectations.row_conditions import Column

from plantwatch.expectations import DERIVED, GROUPS, RAW
from plantwatch.expectations.limits import physical_ranges
from plantwatch.reading import COLUMN_NAMES, SensorKind
from plantwatch.resources import package_path
from plantwatch.settings import Settings
from plantwatch.warehouse import template_values

SQL_DIR = package_path("plantwatch.expectations", "sql")

# The dbt marts checked here and the values their categorical columns may take (the warehouse's table contract).
MACHINE_FLAG_KINDS = ("spec_breach", "level", "spike", "drift", "multivariate")
SENSOR_FAULT_KINDS = ("stuck", "dropout", "impossible_value")
SEVERITIES = ("warning", "critical")
ALERT_STATUSES = ("open", "resolved")
IDENTIFIER_COLUMNS = ("machine_id", "sensor_id", "sensor_kind")


@dataclass(frozen=True)
class Suite:
    name: str
    group: str
    table: str
    expectations: list[gxe.Expectation] = field(default_factory=list)


def _named(expectation: gxe.Expectation, name: str) -> gxe.Expectation:
    expectation.meta = {"name": name}
    return expectation


def _sql_check(file_stem: str, settings: Settings) -> gxe.UnexpectedRowsExpectation:
    """An UnexpectedRowsExpectation from expectations/sql/<file_stem>.sql (its leading comment is the description)."""
    text = (SQL_DIR / f"{file_stem}.sql").read_text()
    lines = text.splitlines()
    description = " ".join(line.lstrip("- ").strip() for line in lines if line.startswith("--"))
    query = "\n".join(line for line in lines if not line.lstrip().startswith("--"))
    values = {**template_values(settings), **settings.quality.model_dump()}
    query = Template(query).substitute(values)
    return _named(gxe.UnexpectedRowsExpectation(unexpected_rows_query=query, description=description), file_stem)


def readings_suite(settings: Settings) -> Suite:
    """Raw readings as users see them (the deduplicated view)."""
    checks: list[gxe.Expectation] = [
        _named(gxe.ExpectColumnValuesToNotBeNull(column=name), f"{name}_not_null") for name in COLUMN_NAMES
    ]
    checks += [
        _named(gxe.ExpectColumnValueLengthsToBeBetween(column=name, min_value=1), f"{name}_not_empty")
        for name in IDENTIFIER_COLUMNS
    ]
    checks.append(
        _named(
            gxe.ExpectColumnValuesToBeInSet(column="sensor_kind", value_set=[kind.value for kind in SensorKind]),
            "sensor_kind_known",
        )
    )
    for kind, limits in sorted(physical_ranges(settings.quality.spec_limits_csv).items()):
        in_range = gxe.ExpectColumnValuesToBeBetween(
            column="value",
            min_value=limits.low,
            max_value=limits.high,
            row_condition=Column("sensor_kind") == kind,
            description=f"{kind} readings lie within the physically possible range [{limits.low}, {limits.high}]",
        )
        checks.append(_named(in_range, f"value_in_physical_range:{kind}"))
    checks += [
        _sql_check("readings_not_in_future", settings),
        _sql_check("readings_seq_increasing", settings),
        _sql_check("readings_no_duplicates", settings),
    ]
    return Suite("readings", RAW, settings.clickhouse.readings_view, checks)


def freshness_suite(settings: Settings) -> Suite:
    """Every machine reported recently (read from the raw table: a redelivered copy does not change the maximum)."""
    return Suite("freshness", RAW, settings.clickhouse.raw_readings_table, [_sql_check("readings_fresh", settings)])


def _in_set(column: str, values: tuple[str, ...]) -> gxe.Expectation:
    return _named(gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(values)), f"{column}_known")


def derived_suites(settings: Settings) -> list[Suite]:
    """The dbt marts: flags and alerts name known machines, categorical columns hold known values, counts add up."""

    def known() -> gxe.Expectation:
        return _sql_check("flags_known_machines", settings)

    return [
        Suite(
            "anomaly_flags",
            DERIVED,
            "anomaly_flags",
            [known(), _in_set("flag_kind", MACHINE_FLAG_KINDS), _in_set("severity", SEVERITIES)],
        ),
        Suite(
            "sensor_fault_flags",
            DERIVED,
            "sensor_fault_flags",
            [known(), _in_set("fault_kind", SENSOR_FAULT_KINDS), _in_set("severity", SEVERITIES)],
        ),
        Suite("alerts", DERIVED, "alerts", [known(), _in_set("status", ALERT_STATUSES)]),
        Suite("pipeline_stats", DERIVED, "pipeline_stats", [_sql_check("pipeline_stats_match_raw", settings)]),
    ]


def suites(settings: Settings, groups: tuple[str, ...] = GROUPS) -> list[Suite]:
    """The suites of the given groups ("raw", "derived"), in run order."""
    chosen = []
    if RAW in groups:
        chosen += [readings_suite(settings), freshness_suite(settings)]
    if DERIVED in groups:
        chosen += derived_suites(settings)
    return chosen
