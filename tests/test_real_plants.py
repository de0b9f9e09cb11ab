"""Detection on data that looks like real plants' exports, on the real ClickHouse with dbt (issue 12).

Real exports broke the detectors in ways the demo's plant never did: machines nobody configured (their missing spec
limits read as a breach everywhere), cadences of minutes (one reading per window, no baseline ever formed),
quantized sensors (flagged as stuck), short healthy periods and slow healthy drift (fixed thresholds fired all
the time). Each test here builds such a machine's readings, runs the pipeline's dbt project and checks what an
engineer would see in the marts.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from plantwatch import baseline, warehouse
from plantwatch.producers.replay import replay_csv
from plantwatch.reading import COLUMN_NAMES, SensorKind
from plantwatch.settings import PROJECT_ROOT, Settings, environment
from plantwatch.stack import Stack
from plantwatch.transform import Transformer, dbt_vars
from tests.fixtures.pipeline import IngestProcess, wait_for


@pytest.fixture
def database(stack: Stack, settings: Settings) -> Iterator[Settings]:
    mine = settings.scoped(f"test.real.{uuid.uuid4().hex[:10]}")
    warehouse.migrate(mine)
    yield mine
    warehouse.client(mine, database="default").command(f"DROP DATABASE IF EXISTS {mine.clickhouse.database}")


def insert(settings: Settings, machine: str, start: datetime, period_s: float, series: dict[str, tuple]) -> None:
    """series: sensor -> (kind, unit, values); one reading per sensor per period from start."""
    cols: list[list] = [[] for _ in COLUMN_NAMES]
    for sensor, (kind, unit, values) in series.items():
        for i, value in enumerate(values):
            row = [machine, sensor, kind, float(value), unit, start + timedelta(seconds=i * period_s), i, 1]
            for col, x in zip(cols, row, strict=True):
                col.append(x)
    client = warehouse.client(settings)
    client.insert(settings.clickhouse.raw_readings_table, cols, column_names=list(COLUMN_NAMES), column_oriented=True)


def query(settings: Settings, sql: str) -> list[tuple]:
    return warehouse.client(settings).query(sql).result_rows


def plantwatch(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plantwatch.cli", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**__import__("os").environ, **environment(settings)}, timeout=300,
    )  # fmt: skip


def rig(
    rng: np.random.Generator,
    rows: int,
    fault_at: int,
    drift_per_row: float = 0.0025,
    startup_amps: float = 0.0,
    fault_end: int | None = None,
    remain: float = 0.0,
    flow_drop: float = 3.0,
) -> dict[str, tuple]:
    """A test rig at 1 s: a noisy current (startup_amps higher at start, settling within a minute), a pressure
    quantized in thirds of a bar (still for many seconds), a temperature warming up through the run, and a flow that
    drops by flow_drop litres from fault_at on (until fault_end, after which `remain` of the drop stays: the rig's new
    operating point), the rotor's vibration rising with it."""
    t = np.arange(rows)
    fault = np.where(t < fault_at, 0.0, np.where(t < (fault_end or rows), 1.0, remain))
    return {
        "current": ("current", "A", 2.0 + startup_amps * np.exp(-t / 15) + 0.3 * rng.standard_normal(rows)),
        "pressure": ("pressure", "bar", np.round((0.15 + 0.12 * rng.standard_normal(rows)) / 0.33) * 0.33),
        "temperature": ("temperature", "C", 68 + drift_per_row * t + 0.1 * rng.standard_normal(rows)),
        "flow": ("flow", "l/min", np.round(32 + 0.35 * rng.standard_normal(rows) - flow_drop * fault)),
        "accelerometer": ("acceleration", "g", 0.2 + 0.004 * rng.standard_normal(rows) + 0.01 * fault),
    }


def test_an_unconfigured_machine_is_never_flagged_by_a_missing_limit(database: Settings) -> None:
    """A machine in no seed reads 500 A: no spec limit, so no spec breach (the materialized view used to read its
    missing limits as 0..0 and flag every reading). Once an engineer sets its model and that model's limits with
    the commands, its next readings are checked."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    series = {"current": ("current", "A", np.full(600, 500.0)), "value": ("other", "", np.full(600, 3.0))}
    insert(database, "rig-unknown", start, 1.0, series)
    Transformer(database).build()
    assert query(database, "select count() from int_spec_breaches where machine_id = 'rig-unknown'") == [(0,)]
    assert query(database, "select count() from anomaly_flags where flag_kind = 'spec_breach'") == [(0,)]
    [(model,)] = query(database, "select model from machine_health where machine_id = 'rig-unknown'")
    assert model == ""
    listed = plantwatch(database, "machine", "list")
    assert "rig-unknown" in listed.stdout and "unassigned" in listed.stdout, listed.stderr

    assert plantwatch(database, "machine", "set", "rig-unknown", "--model", "test_rig").returncode == 0
    done = plantwatch(database, "limits", "set", "--model", "test_rig", "--kind", "current", "--lower", "0",
                      "--upper", "10", "--unit", "A")  # fmt: skip
    assert done.returncode == 0, done.stderr
    refused = plantwatch(database, "limits", "set", "--model", "test_rig", "--kind", "current", "--lower", "10",
                         "--upper", "0")  # fmt: skip
    assert refused.returncode == 2 and "lower <= upper" in refused.stderr
    Transformer(database).build()  # the dictionaries are rebuilt from the configuration
    later = start + timedelta(seconds=600)
    insert(database, "rig-unknown", later, 1.0, {"current": ("current", "A", np.full(30, 500.0))})
    breaches = query(
        database, "select min(event_time), count() from int_spec_breaches where machine_id = 'rig-unknown'"
    )
    assert breaches[0][1] == 30 and breaches[0][0].replace(tzinfo=UTC) >= later


def test_cadence_is_measured_and_a_slow_machine_learns_before_it_scores(database: Settings) -> None:
    """One reading per 5 minutes: the machine's windows are 50 minutes (10 periods), not 10 s; until it has sent 20
    readings it is `learning` with how many it has, and its trailing baseline forms in windows of its own."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rng = np.random.default_rng(3)
    insert(database, "kiln-new", now - timedelta(minutes=5 * 12), 300.0,
           {"value": ("temperature", "C", 80 + rng.standard_normal(12))})  # fmt: skip
    days = 40
    rows = days * 288
    daily = 80 + 8 * np.sin(2 * np.pi * np.arange(rows) / 288) + rng.standard_normal(rows)
    insert(database, "kiln-old", now - timedelta(minutes=5 * rows), 300.0, {"value": ("temperature", "C", daily)})
    Transformer(database).build()
    cadence = dict(query(database, "select machine_id, (period_ms, window_ms) from int_machine_cadence final"))
    assert cadence == {"kiln-old": (300_000, 3_000_000)}
    health = {m: (status, detail) for m, status, detail in
              query(database, "select machine_id, status, learning_detail from machine_health")}  # fmt: skip
    assert health["kiln-new"] == ("learning", "measuring its sampling period: 12 of 20 readings")
    assert health["kiln-old"][0] == "ok", health["kiln-old"]
    [(kinds, thresholds)] = query(
        database,
        "select groupUniqArray(baseline_kind), (select count() from int_detector_thresholds final "
        "where machine_id = 'kiln-old') from int_machine_window_scores final where machine_id = 'kiln-old'",
    )
    assert "trailing" in kinds and thresholds > 0
    assert query(database, "select count() from anomaly_flags where machine_id = 'kiln-old'") == [(0,)]


def test_a_commissioning_fit_calibrates_and_rescores_without_a_full_refresh(database: Settings) -> None:
    """A 20-minute run of a rig (quantized pressure, a temperature that warms up): `baseline fit --first 400` says
    what it fitted, the next plain transform rescores the whole run against it; the period named healthy raises
    nothing (its start-up surge included: scored out of sample to calibrate, not alerted on), the healthy rows after
    it stay quiet (drift and quantization included) and the flow drop is flagged within a few windows."""
    start = datetime(2020, 3, 9, 10, 0, tzinfo=UTC)  # an old export: it lands, and is scored
    rows, fault_at = 1200, 800
    insert(database, "rig-07", start, 1.0, rig(np.random.default_rng(7), rows, fault_at, startup_amps=1.5))
    transformer = Transformer(database)
    transformer.build()
    fitted = plantwatch(database, "baseline", "fit", "--machine", "rig-07", "--first", "400")
    assert fitted.returncode == 0, fitted.stderr
    assert "fitted rig-07 on 40 healthy windows, 5 sensors" in fitted.stderr
    assert "drifting when healthy (may go on drifting at that rate): temperature" in fitted.stderr
    transformer.build()  # no --full-refresh: the fit makes this run rescore rig-07's history
    kinds = query(database, "select groupUniqArray(baseline_kind) from int_machine_window_scores final "
                            "where machine_id = 'rig-07'")  # fmt: skip
    assert kinds == [(["commissioning"],)]
    [(calibration_windows,)] = query(database, "select calibration_windows from int_detector_thresholds final "
                                               "where baseline_kind = 'commissioning'")  # fmt: skip
    assert calibration_windows == 40
    flags = query(database, "select window_start, flag_kind, sensor_id from anomaly_flags order by window_start")
    healthy_after_fit = [f for f in flags if start + timedelta(seconds=400) <= f[0].replace(tzinfo=UTC)
                         < start + timedelta(seconds=fault_at)]  # fmt: skip
    assert healthy_after_fit == [], "the warm-up or the quantized pressure raised a flag"
    first = min(f[0].replace(tzinfo=UTC) for f in flags)
    assert start + timedelta(seconds=fault_at - 10) <= first <= start + timedelta(seconds=fault_at + 40)
    assert query(database, "select count() from sensor_fault_flags where fault_kind = 'stuck'") == [(0,)]


def test_a_rig_that_settles_at_a_new_operating_point_is_flagged_for_its_fault_only(database: Settings) -> None:
    """Two runs of a rig, each with the same flow drop from row 500: on rig-20 the fault ends at row 800 and half of
    the drop remains (a new operating point, as real rigs do after a fault), on rig-21 it lasts to the end. Both
    faults are flagged from their start; rig-20's flags stop within 30 s (three windows) of its fault's end (the
    level settled at half the fault's: the median of var settle_windows windows falls two windows after the fault),
    rig-21's go on to the end of its run."""
    start = datetime(2020, 3, 9, 10, 0, tzinfo=UTC)
    rows, fault_at, fault_end = 1400, 500, 800
    for machine, seed, remain, end in [("rig-20", 20, 0.5, fault_end), ("rig-21", 21, 1.0, None)]:
        series = rig(np.random.default_rng(seed), rows, fault_at, fault_end=end, remain=remain, flow_drop=4.5)
        insert(database, machine, start, 1.0, series)
    transformer = Transformer(database)
    transformer.build()
    for machine in ("rig-20", "rig-21"):
        baseline.fit(database, machine, *baseline.first_rows_period(database, machine, 400), "test", transformer)
    transformer.build()
    spans = dict(query(database, "select machine_id, (min(window_start), max(window_end)) from anomaly_flags "
                                 "group by machine_id"))  # fmt: skip
    at = {machine: tuple((t.replace(tzinfo=UTC) - start).total_seconds() for t in span) for machine, span in
          spans.items()}  # fmt: skip
    assert fault_at - 10 <= at["rig-20"][0] <= fault_at + 40
    assert fault_end <= at["rig-20"][1] <= fault_end + 30, at
    assert fault_at - 10 <= at["rig-21"][0] <= fault_at + 40
    assert at["rig-21"][1] >= rows - 60, at


def test_a_period_of_rows_after_maintenance_counts_from_then(database: Settings) -> None:
    """`first_rows_period(..., after=T)` (a re-baselining after maintenance) takes its rows from T on, and when too
    few are left says how many there are from T on, not the machine's whole count."""
    start = datetime(2020, 3, 9, 10, 0, tzinfo=UTC)
    insert(database, "rig-12", start, 1.0, rig(np.random.default_rng(12), 100, fault_at=10_000))
    assert baseline.first_rows_period(database, "rig-12", 10, start + timedelta(seconds=50)) == (
        start + timedelta(seconds=50),
        start + timedelta(seconds=60),
    )
    with pytest.raises(baseline.BaselineError, match=r"has 20 rows from 2020-03-09T10:01:20\+00:00 on, fewer than"):
        baseline.first_rows_period(database, "rig-12", 30, start + timedelta(seconds=80))
    with pytest.raises(baseline.BaselineError, match=r"has no readings from 2020-03-09T10:05:00\+00:00 on"):
        baseline.first_rows_period(database, "rig-12", 30, start + timedelta(seconds=300))


def test_a_quantized_sensor_is_not_stuck_but_a_frozen_one_is(database: Settings) -> None:
    """The pressure sits still for many seconds at a time when healthy: never stuck. After the fit, the current
    freezes at one value for two minutes: stuck, and no machine anomaly is raised for it."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1300)
    series = rig(np.random.default_rng(11), 1200, fault_at=10_000)
    current = series["current"][2].copy()
    current[900:1020] = current[900]
    series["current"] = ("current", "A", current)
    insert(database, "rig-11", start, 1.0, series)
    transformer = Transformer(database)
    transformer.build()
    assert plantwatch(database, "baseline", "fit", "--machine", "rig-11", "--first", "400").returncode == 0
    transformer.build()
    stuck = query(database, "select sensor_id, min(window_start), count() from sensor_fault_flags "
                            "where fault_kind = 'stuck' group by sensor_id")  # fmt: skip
    assert [(s, n >= 8) for s, _, n in stuck] == [("current", True)]
    assert stuck[0][1].replace(tzinfo=UTC) >= start + timedelta(seconds=900)
    machine = query(database, "select count() from anomaly_flags where window_start >= "
                              f"'{(start + timedelta(seconds=890)).strftime('%Y-%m-%d %H:%M:%S')}'")  # fmt: skip
    assert machine == [(0,)]


def test_a_2013_replay_lands(isolated: Settings, tmp_path: Path) -> None:
    """History replayed through Kafka and the ingest lands and stays: retention counts from when a reading landed
    (a TTL on event time dropped these rows on insert while every step reported success)."""
    path = tmp_path / "machine_temperature.csv"
    start = datetime(2013, 12, 2, 21, 15)
    lines = [f"{start + timedelta(minutes=5 * i):%Y-%m-%d %H:%M:%S},{80 + (i % 7) / 10}" for i in range(200)]
    path.write_text("timestamp,value\n" + "\n".join(lines) + "\n")
    settings = isolated.model_copy(update={"state_dir": tmp_path})
    report = replay_csv(settings, path, "old-press", kinds={"value": SensorKind.TEMPERATURE})
    assert report.replayed == 200 and report.delivered

    ingest = IngestProcess(settings, tmp_path / "ingest.log")
    try:
        wait_for("the replay to land", lambda: landed_count(settings) == 200, timeout=90)
    finally:
        ingest.stop()
    client = warehouse.client(settings)
    client.command(f"OPTIMIZE TABLE {settings.clickhouse.raw_readings_table} FINAL")  # TTLs apply on merges too
    assert landed_count(settings) == 200
    assert str(client.command(f"SELECT min(event_time) FROM {settings.clickhouse.raw_readings_table}")) < "2014"


def landed_count(settings: Settings) -> int:
    return warehouse.client(settings).command(f"SELECT count() FROM {settings.clickhouse.raw_readings_table}")


def test_the_false_alarm_rate_is_one_setting() -> None:
    """PLANTWATCH_TRANSFORM__FALSE_ALARM_RATE reaches dbt as the var every threshold is calibrated to; unset, the
    dbt project's default holds; a rate that is not a small share is refused."""
    assert dbt_vars(Settings(transform={"false_alarm_rate": 0.002}))["false_alarm_rate"] == 0.002
    assert "false_alarm_rate" not in dbt_vars(Settings())
    with pytest.raises(ValidationError, match="false_alarm_rate"):
        Settings(transform={"false_alarm_rate": 0})
