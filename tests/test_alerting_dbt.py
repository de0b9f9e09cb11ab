"""The alert rules and the data-quality suites on real dbt output (not fixture tables): half an hour of readings
ending now for three machines - one healthy, one whose current jumps 60 A over its spec for the last minute, one
whose speed sensor sticks for the last 2 to 12 minutes - then `dbt build` (plantwatch.transform) in an isolated
database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from plantwatch import dashboards, warehouse
from plantwatch.alerting import RuleResult, evaluate_rules
from plantwatch.expectations import GROUPS
from plantwatch.expectations.check import check_once
from plantwatch.reading import COLUMN_NAMES
from plantwatch.settings import Settings
from plantwatch.stack import Stack
from plantwatch.transform import transform
from tests.test_grafana import MACROS, clickhouse_queries, rule_bodies

SECONDS = 1800
# sensor -> (kind, unit, idle, gain, noise): value = idle + gain * load + noise, like the simulator's pumps
SENSORS = {
    "current": ("current", "A", 8.0, 52.0, 0.6),
    "speed": ("speed", "rpm", 600.0, 2300.0, 6.0),
    "vib_x": ("vibration", "mm/s", 0.9, 3.2, 0.12),
    "bearing_temp": ("temperature", "C", 38.0, 30.0, 0.25),
}
HEALTHY, OVERLOADED, STUCK = "L1-pump01", "L1-pump02", "L2-pump02"
# dbt vars baseline_block_windows x window_seconds: the trailing baselines' blocks at one reading per second
BLOCK_SECONDS = 60 * 10


def stuck_from(end: datetime) -> int:
    """The second the speed sensor sticks: 50 s before the last trailing-block boundary at least a minute before the
    end, so that the start of the still run lies in the reference of the block it is scored in (it once raised its
    own stuck threshold there, and the machine anomaly fired instead of the sensor fault in one run of four)."""
    boundary = (int(end.timestamp()) - 60) // BLOCK_SECONDS * BLOCK_SECONDS
    return SECONDS - 1 - (int(end.timestamp()) - (boundary - 50))


def columns(machine: str, end: datetime, seed: int) -> list[list[object]]:
    t = np.arange(SECONDS, dtype=float)
    rng = np.random.default_rng(seed)
    load = 0.6 + 0.2 * np.sin(2 * np.pi * t / 300 + seed)
    cols: list[list[object]] = [[] for _ in COLUMN_NAMES]
    for sensor, (kind, unit, idle, gain, noise) in SENSORS.items():
        values = idle + gain * load + noise * rng.standard_normal(SECONDS)
        if machine == OVERLOADED and sensor == "current":
            values = np.where(t >= SECONDS - 60, values + 60, values)
        if machine == STUCK and sensor == "speed":
            values = np.where(t >= stuck_from(end), values[stuck_from(end)], values)
        for ti, value in zip(t, values, strict=True):
            at = end - timedelta(seconds=SECONDS - 1 - float(ti))
            row = [machine, sensor, kind, round(float(value), 3), unit, at, int(ti), 1]
            for col, x in zip(cols, row, strict=True):
                col.append(x)
    return cols


@pytest.fixture(scope="module")
def built(stack: Stack, settings: Settings) -> Iterator[Settings]:
    mine = settings.scoped(f"test.al.{uuid.uuid4().hex[:10]}")
    try:
        warehouse.migrate(mine)
        client = warehouse.client(mine)
        end = datetime.now(UTC).replace(microsecond=0)
        raw = mine.clickhouse.raw_readings_table
        for seed, machine in enumerate((HEALTHY, OVERLOADED, STUCK)):
            cols = columns(machine, end, seed)
            client.insert(raw, cols, column_names=list(COLUMN_NAMES), column_oriented=True)
        transform(mine)
        yield mine
    finally:
        warehouse.client(mine, database="default").command(f"DROP DATABASE IF EXISTS {mine.clickhouse.database}")


@pytest.fixture(scope="module")
def results(built: Settings) -> dict[str, RuleResult]:
    return {result.rule.uid: result for result in evaluate_rules(built)}


def machines(result: RuleResult) -> set[str]:
    return {alert.labels["machine_id"] for alert in result.alerts}


def test_machine_anomaly_fires_for_the_overloaded_machine_only(results: dict[str, RuleResult]) -> None:
    result = results["pw-machine-anomaly"]
    assert result.state == "firing" and machines(result) == {OVERLOADED}
    assert "spec_breach" in {alert.labels["kind"] for alert in result.alerts}


def test_sensor_fault_fires_for_the_stuck_sensor_only(results: dict[str, RuleResult]) -> None:
    result = results["pw-sensor-fault"]
    assert [(a.labels["machine_id"], a.labels["sensor_id"], a.labels["kind"]) for a in result.alerts] == [
        (STUCK, "speed", "stuck")
    ]


def test_a_still_run_going_on_is_not_learned_as_healthy(built: Settings) -> None:
    """The speed sensor's still run began in the reference of the trailing block it is scored in, and has not ended:
    no block's baseline may count it as how long the sensor sits still when healthy (the one it is scored in counted
    5 windows, the next ones all of it)."""
    baselines = (
        warehouse.client(built)
        .query(
            f"SELECT block_start, sensor_ids, flat_runs FROM int_trailing_baselines FINAL WHERE machine_id = '{STUCK}'"
        )
        .result_rows
    )
    speed = {block: dict(zip(sensors, runs, strict=True))["speed"] for block, sensors, runs in baselines}
    assert speed and set(speed.values()) == {0}, speed


def test_stale_data_spares_the_reporting_machines(results: dict[str, RuleResult]) -> None:
    """The seed lists more machines than report here: those are stale, the three that report are not."""
    stale = machines(results["pw-stale-data"])
    assert stale and not stale & {HEALTHY, OVERLOADED, STUCK}


def test_pipeline_lag_sees_the_backfill(results: dict[str, RuleResult]) -> None:
    """All half hour arrived at once: readings up to 30 minutes old reached ClickHouse in the last minutes."""
    [alert] = results["pw-pipeline-lag"].alerts
    assert SECONDS - 120 < alert.values["B"] < SECONDS + 300


def test_data_quality_passes_on_dbt_output_and_its_rule_stays_quiet(built: Settings) -> None:
    run = check_once(built, GROUPS)
    assert run.success, [(o.suite, o.expectation, o.observed) for o in run.failures]
    assert {"anomaly_flags", "sensor_fault_flags", "alerts", "pipeline_stats"} <= {o.suite for o in run.outcomes}
    [quality] = [r for r in evaluate_rules(built) if r.rule.uid == "pw-data-quality"]
    assert quality.state == "normal"


def test_every_grafana_query_runs_on_the_marts_dbt_built(built: Settings) -> None:
    """test_grafana runs the dashboards' and rules' SQL on fixture tables with the marts' columns; here on the marts
    themselves (views, materialized views and tables as dbt made them: no FINAL on a view, say)."""
    client = warehouse.client(built)
    queries = [(rule["uid"], item["model"]["rawSql"]) for _, rule in rule_bodies() for item in rule["data"]
               if item["datasourceUid"] != "__expr__"]  # fmt: skip
    for board in dashboards.dashboards().values():
        queries += [(f"{board['title']} / {where}", raw) for where, raw in clickhouse_queries(board)]
    for where, raw in queries:
        query = raw
        for pattern, replacement in MACROS:
            query = pattern.sub(replacement, query)
        try:
            client.query(query)
        except Exception as exc:
            pytest.fail(f"{where}: {exc}\n{query}")
    assert len(queries) >= 20
