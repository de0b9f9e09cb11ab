"""`plantwatch check`: the data-quality checkpoint on the real ClickHouse, on good data and on bad data (future
timestamps, duplicates, decreasing sequence numbers, impossible values, a stale machine, derived tables that disagree
with the raw data); results land in dq_results and reach the local Prometheus.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from plantwatch import warehouse
from plantwatch.cli import app
from plantwatch.expectations import DERIVED, RAW
from plantwatch.expectations.check import check_once
from plantwatch.expectations.checkpoint import CheckRun
from plantwatch.reading import COLUMN_NAMES
from plantwatch.settings import Settings, get_settings

FIXTURES = Path(__file__).parent / "fixtures"
MACHINES = ("L1-pump01", "L1-pump02")
SENSORS = (("temp", "temperature", "C", 60.0), ("vib", "vibration", "mm/s", 3.0))


def good_rows(machine: str, end: datetime, count: int = 60, first_seq: int = 0) -> list[list[object]]:
    """One reading a second per sensor, ending at `end`, with increasing sequence numbers."""
    rows = []
    for sensor, kind, unit, level in SENSORS:
        for i in range(count):
            at = end - timedelta(seconds=count - 1 - i)
            rows.append([machine, sensor, kind, level + (i % 5) * 0.1, unit, at, first_seq + i, 1])
    return rows


def insert(settings: Settings, rows: list[list[object]]) -> None:
    warehouse.client(settings).insert(settings.clickhouse.raw_readings_table, rows, column_names=list(COLUMN_NAMES))


def failed(run: CheckRun) -> set[str]:
    return {f"{o.suite}.{o.expectation}" for o in run.failures}


@pytest.fixture
def good(isolated: Settings) -> Settings:
    """Fresh, valid readings of two machines. The test database is not one the quality role is granted on, so the
    check connects as the admin here (roles off); tests/test_security.py covers what the quality user may do."""
    mine = isolated.model_copy(update={"clickhouse": isolated.clickhouse.model_copy(update={"roles": False})})
    now = datetime.now(UTC)
    for machine in MACHINES:
        insert(mine, good_rows(machine, now))
    return mine


def test_good_raw_data_passes_and_is_recorded(good: Settings) -> None:
    run = check_once(good, (RAW,))
    assert run.success, failed(run)
    assert {o.suite for o in run.outcomes} == {"readings", "freshness"}
    assert len(run.outcomes) >= 20
    client = warehouse.client(good)
    stored = client.query(
        f"SELECT count(), countIf(success), uniqExact(suite) FROM {good.clickhouse.dq_results_table} "
        f"WHERE run_id = '{run.run_id}'"
    ).result_rows[0]
    assert stored == (len(run.outcomes), len(run.outcomes), 2)


def test_bad_raw_data_fails_the_expectations_that_see_it(good: Settings) -> None:
    now = datetime.now(UTC)
    future = now + timedelta(hours=2)
    insert(good, [["L1-pump01", "temp", "temperature", 61.0, "C", future, 10_000, 1]])  # from the future
    # Same sensor and instant as an existing reading, another seq: a duplicate the view cannot fold.
    sql = (
        f"SELECT event_time FROM {good.clickhouse.readings_view} "
        "WHERE machine_id = 'L1-pump02' AND sensor_id = 'vib' ORDER BY event_time LIMIT 1 OFFSET 30"
    )
    [(taken,)] = warehouse.client(good).query(sql).result_rows
    insert(good, [["L1-pump02", "vib", "vibration", 3.0, "mm/s", taken, 99_999, 1]])
    insert(good, good_rows("L1-pump03", now - timedelta(minutes=30), count=10))  # stale machine
    insert(good, [["L1-pump03", "temp", "temperature", 900.0, "C", now - timedelta(minutes=40), 0, 1]])
    run = check_once(good, (RAW,))

    assert not run.success
    assert failed(run) == {
        "readings.readings_not_in_future",
        "readings.readings_no_duplicates",
        "readings.readings_seq_increasing",  # the duplicate's seq jumps ahead of its successors
        "readings.value_in_physical_range:temperature",
        "freshness.readings_fresh",
    }
    by_name = {o.expectation: o for o in run.outcomes}
    assert by_name["readings_not_in_future"].observed == "1 unexpected rows"
    assert by_name["readings_fresh"].observed == "1 unexpected rows"  # only L1-pump03 is stale
    assert "900.0" in by_name["value_in_physical_range:temperature"].observed

    rows = warehouse.client(good).query(
        f"SELECT expectation, success, observed FROM {good.clickhouse.dq_results_table} WHERE run_id = '{run.run_id}'"
    )
    stored = {name: (ok, observed) for name, ok, observed in rows.result_rows}
    assert stored["readings_no_duplicates"] == (False, "1 unexpected rows")
    assert stored["readings_fresh"][0] is False and stored["machine_id_not_null"][0] is True


def invoke(settings: Settings, *args: str) -> Result:
    """Run the `plantwatch` CLI in-process against the settings' database (as PLANTWATCH_CLICKHOUSE__DATABASE)."""
    env = {
        "PLANTWATCH_CLICKHOUSE__DATABASE": settings.clickhouse.database,
        "PLANTWATCH_CLICKHOUSE__ROLES": str(settings.clickhouse.roles).lower(),
        "COLUMNS": "200",
    }
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        get_settings.cache_clear()


def test_cli_exits_non_zero_on_bad_data_and_zero_on_good(good: Settings) -> None:
    ok = invoke(good, "check", "--suite", RAW)
    assert ok.exit_code == 0, ok.output
    assert "PASSED" in ok.output and "readings" in ok.output and "freshness" in ok.output

    insert(good, [["L1-pump01", "temp", "temperature", 61.0, "C", datetime.now(UTC) + timedelta(days=1), 10**6, 1]])
    bad = invoke(good, "check", "--suite", RAW)
    assert bad.exit_code == 1, bad.output
    assert "FAILED (1 expectations)" in bad.output and "readings_not_in_future" in bad.output


@pytest.fixture
def marts(good: Settings) -> Settings:
    admin = warehouse.client(good, database="default")
    for statement in warehouse.render(FIXTURES / "marts.sql", good):
        admin.command(statement)
    client = warehouse.client(good)
    client.insert("machines", [[m, "L1", "pump"] for m in MACHINES], column_names=["machine_id", "line_id", "model"])
    # Readings that arrived over the last three minutes (ingest time), and pipeline_stats as dbt computes it.
    now = datetime.now(UTC)
    for minutes_ago in (3, 2, 1):
        arrived = now - timedelta(minutes=minutes_ago)
        rows = good_rows("L1-pump02", arrived, count=5, first_seq=100 * (4 - minutes_ago))
        columns = [*COLUMN_NAMES, "ingested_at"]
        client.insert(good.clickhouse.raw_readings_table, [[*row, arrived] for row in rows], column_names=columns)
    client.command(
        "INSERT INTO pipeline_stats SELECT toStartOfMinute(ingested_at) AS minute, count(), uniqExact(machine_id), "
        "max(dateDiff('millisecond', event_time, ingested_at)) / 1000, max(ingested_at) "
        f"FROM {good.clickhouse.raw_readings_table} GROUP BY minute"
    )
    t = datetime.now(UTC)
    flag = ["L1-pump01", "temp", "spike", t, t, 9.0, "critical"]
    client.insert("anomaly_flags", [flag])
    client.insert("sensor_fault_flags", [["L1-pump02", "vib", "stuck", t, t, 1.0, "warning"]])
    client.insert("alerts", [["a1", "L1-pump01", "temp", "machine", "spike", "critical", "open", t, None, t, 1, 9.0]])
    return good


def test_derived_tables_pass_when_consistent(marts: Settings) -> None:
    run = check_once(marts, (DERIVED,))
    assert run.success, failed(run)
    assert {o.suite for o in run.outcomes} == {"anomaly_flags", "sensor_fault_flags", "alerts", "pipeline_stats"}


def test_derived_tables_fail_on_unknown_machines_and_miscounts(marts: Settings) -> None:
    client = warehouse.client(marts)
    t = datetime.now(UTC)
    client.insert("anomaly_flags", [["ghost-machine", "", "bogus_kind", t, t, 1.0, "warning"]])
    # the stats of a minute lost rows that the raw table holds
    [minute] = client.query("SELECT min(minute) FROM pipeline_stats").result_rows[0]
    client.command(
        "ALTER TABLE pipeline_stats UPDATE readings = readings - 3 WHERE minute = {minute:DateTime('UTC')}",
        parameters={"minute": minute},
        settings={"mutations_sync": 1},
    )
    run = check_once(marts, (DERIVED,))
    assert failed(run) == {
        "anomaly_flags.flags_known_machines",
        "anomaly_flags.flag_kind_known",
        "pipeline_stats.pipeline_stats_match_raw",
    }


def test_missing_marts_fail_their_suites(good: Settings) -> None:
    run = check_once(good, (DERIVED,))
    assert failed(run) == {
        f"{t}.table_exists" for t in ("anomaly_flags", "sensor_fault_flags", "alerts", "pipeline_stats")
    }


def prometheus_value(settings: Settings, query: str) -> list[dict]:
    url = f"{settings.prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        return orjson.loads(response.read())["data"]["result"]


def metrics_port(process: subprocess.Popen[str]) -> int:
    """The port a `--watch` command announces it serves /metrics on (its first lines; a library may warn first)."""
    assert process.stdout is not None
    seen = []
    for line in process.stdout:
        seen.append(line)
        if found := re.search(r"127\.0\.0\.1:(\d+)/metrics", line):
            return int(found.group(1))
        if len(seen) >= 20:
            break
    raise AssertionError(f"no /metrics address in the first lines: {seen}")


def test_watch_mode_serves_results_that_prometheus_scrapes(good: Settings) -> None:
    """`plantwatch check --watch` keeps checking, serves /metrics and registers it with the local Prometheus."""
    insert(good, [["L1-pump01", "temp", "temperature", 61.0, "C", datetime.now(UTC) + timedelta(days=1), 10**6, 1]])
    env = {
        **os.environ,
        "PLANTWATCH_CLICKHOUSE__DATABASE": good.clickhouse.database,
        "PLANTWATCH_CLICKHOUSE__ROLES": "false",
        "PLANTWATCH_QUALITY__CHECK_INTERVAL_SECONDS": "2",
        "COLUMNS": "200",
    }
    cli = [Path(sys.executable).parent / "plantwatch", "check", "--watch", "--suite", RAW]
    watcher = subprocess.Popen(cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        port = metrics_port(watcher)
        db = good.clickhouse.database
        labels = f'database="{db}",expectation="readings_not_in_future",suite="readings"'
        deadline = time.monotonic() + 60
        exposition = ""
        while f"plantwatch_dq_expectation_success{{{labels}}} 0.0" not in exposition and time.monotonic() < deadline:
            time.sleep(0.5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                exposition = response.read().decode()
        assert f"plantwatch_dq_expectation_success{{{labels}}} 0.0" in exposition
        assert f'plantwatch_dq_last_run_success{{database="{db}"}} 0.0' in exposition

        query = f'plantwatch_dq_failed_expectations{{database="{db}",suite="readings"}}'
        while not (result := prometheus_value(good, query)) and time.monotonic() < deadline:
            time.sleep(1)  # file discovery refresh and scrape interval are 5 s each
        assert result, "Prometheus did not scrape the data-quality metrics"
        assert result[0]["value"][1] == "1"
        assert watcher.poll() is None, "the watch loop exited"
    finally:
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=30)


def test_an_expectation_that_cannot_run_fails_with_the_error(good: Settings) -> None:
    """A mart without the contract's columns: the query errors, and the error is what the results show."""
    warehouse.client(good).command("CREATE TABLE pipeline_stats (minute DateTime, machines UInt64) ENGINE = Memory")
    run = check_once(good, (DERIVED,))
    [outcome] = [o for o in run.outcomes if o.suite == "pipeline_stats"]
    assert not outcome.success
    assert outcome.observed.startswith("error: ") and "readings" in outcome.observed
