"""The dbt warehouse against real ClickHouse: crafted series in an isolated database, then `dbt build`.

One dataset for the module (dbt costs seconds per invocation): machines driven by a common load cycle with noise,
40 minutes at 1 Hz, healthy for the first 30 minutes; in the last 10, each faulty machine gets one fault of its own.
The clean machines must stay silent, every fault must raise its flag kind, and sensor faults must never show as
machine anomalies. Later tests add data: rerunning with nothing new changes nothing, late readings are folded in
(within the lateness), and a commissioning baseline is used once fitted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from clickhouse_connect.driver.client import Client

from plantwatch import baseline, warehouse
from plantwatch.reading import COLUMN_NAMES
from plantwatch.scoring import score, score_instants
from plantwatch.settings import Settings
from plantwatch.stack import Stack
from plantwatch.transform import Transformer, transform

SECONDS = 2400
FAULT_AT = 1850
# sensor -> (kind, unit, idle, gain, noise): value = idle + gain * load + noise, as the simulator's pumps
SENSORS = {
    "current": ("current", "A", 8.0, 52.0, 0.6),
    "speed": ("speed", "rpm", 600.0, 2300.0, 6.0),
    "vib_x": ("vibration", "mm/s", 0.9, 3.2, 0.12),
    "bearing_temp": ("temperature", "C", 38.0, 30.0, 0.25),
}
CLEAN = ("L1-pump01", "L3-pump03")
LATE = "L3-pump02"


def _fault(machine: str, t: np.ndarray, load: np.ndarray, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Apply machine's fault in place; returns per-sensor masks of readings to keep (dropout)."""
    keep = {s: np.ones(t.size, dtype=bool) for s in SENSORS}
    at = (t >= FAULT_AT) & (t < FAULT_AT + 120)
    if machine == "L1-pump02":  # two spikes 30 s apart (one alert), a third 5 minutes later (another)
        for start in (1900, 1930, 2200):
            values["vib_x"][(t >= start) & (t < start + 3)] += 20
    elif machine == "L1-pump03":  # drift: vib_x creeps up, nothing else does
        values["vib_x"] += np.where(t >= FAULT_AT, 0.02 * (t - FAULT_AT), 0)
    elif machine == "L1-pump04":  # relation break: current follows the inverse of the load, within spec
        values["current"] = np.where(at, 8 + 52 * (1.2 - load), values["current"])
    elif machine == "L2-pump01":  # spec breach: current 60 A up for 30 s
        values["current"][(t >= FAULT_AT) & (t < FAULT_AT + 30)] += 60
    elif machine == "L2-pump02":  # stuck speed
        values["speed"][at] = values["speed"][t == FAULT_AT][0]
    elif machine == "L2-pump03":  # dropout of vib_x for 50 s
        keep["vib_x"] = ~((t >= FAULT_AT) & (t < FAULT_AT + 50))
    elif machine == "L3-pump01":  # impossible bearing temperature
        values["bearing_temp"][(t >= FAULT_AT) & (t < FAULT_AT + 3)] = 500.0
    return keep


MACHINES = ("L1-pump01", "L1-pump02", "L1-pump03", "L1-pump04", "L2-pump01", "L2-pump02", "L2-pump03", "L3-pump01",
            "L3-pump02", "L3-pump03")  # fmt: skip


def readings(start: datetime, machine: str, t: np.ndarray, seed: int, faults: bool = True) -> list[list]:
    """Columns (COLUMN_NAMES order) of one machine's readings at offsets t (seconds from start)."""
    rng = np.random.default_rng(seed)
    load = 0.6 + 0.2 * np.sin(2 * np.pi * t / 300 + seed)
    values = {s: idle + gain * load + noise * rng.standard_normal(t.size)
              for s, (_, _, idle, gain, noise) in SENSORS.items()}  # fmt: skip
    keep = _fault(machine, t, load, values) if faults else {s: np.ones(t.size, dtype=bool) for s in SENSORS}
    cols: list[list] = [[] for _ in COLUMN_NAMES]
    for sensor, (kind, unit, *_) in SENSORS.items():
        for ti, v in zip(t[keep[sensor]], values[sensor][keep[sensor]], strict=True):
            row = [machine, sensor, kind, round(float(v), 3), unit, start + timedelta(seconds=float(ti)), int(ti), 1]
            for col, x in zip(cols, row, strict=True):
                col.append(x)
    return cols


def insert(client: Client, settings: Settings, cols: list[list]) -> None:
    client.insert(settings.clickhouse.raw_readings_table, cols, column_names=list(COLUMN_NAMES), column_oriented=True)


@contextmanager
def own_database(settings: Settings, prefix: str) -> Iterator[Settings]:
    """Settings with a database of their own (migrated, used as the admin, dropped after)."""
    db = f"{prefix}_{uuid.uuid4().hex[:10]}"
    mine = settings.model_copy(
        update={"clickhouse": settings.clickhouse.model_copy(update={"database": db, "roles": False})}
    )
    warehouse.migrate(mine)
    try:
        yield mine
    finally:
        warehouse.client(mine, database="default").command(f"DROP DATABASE IF EXISTS {db}")


@pytest.fixture(scope="module")
def warehouse_db(stack: Stack, settings: Settings) -> Iterator[Settings]:
    """A database of its own, migrated, with the crafted series, built once with `dbt build` (models + dbt tests)."""
    with own_database(settings, "test_wh") as mine:
        client = warehouse.client(mine)
        for i, machine in enumerate(MACHINES):
            insert(client, mine, readings(START, machine, np.arange(SECONDS, dtype=float), seed=i))
        transform(mine)  # dbt build: raises if any model or dbt test fails
        yield mine


# Event time an hour ago, on a 10-minute boundary so that baseline blocks line up with the offsets above.
START = datetime.fromtimestamp((datetime.now(UTC).timestamp() - 3600) // 600 * 600, UTC)


@pytest.fixture(scope="module")
def query(warehouse_db: Settings) -> Callable[[str], list[tuple]]:
    client = warehouse.client(warehouse_db)
    return lambda sql: client.query(sql).result_rows


def kinds(query: Callable[[str], list[tuple]], table: str, kind_column: str, machine: str) -> set[tuple[str, str]]:
    rows = query(f"select distinct sensor_id, {kind_column} from {table} where machine_id = '{machine}'")
    return {(r[0], r[1]) for r in rows}


def test_clean_machines_stay_silent(query: Callable[[str], list[tuple]]) -> None:
    for machine in CLEAN:
        assert kinds(query, "anomaly_flags", "flag_kind", machine) == set()
        assert kinds(query, "sensor_fault_flags", "fault_kind", machine) == set()
        assert query(f"select count() from alerts where machine_id = '{machine}'")[0][0] == 0
    # ... and the healthy first half hour of every machine too
    cutoff = (START + timedelta(seconds=FAULT_AT)).strftime("%Y-%m-%d %H:%M:%S")
    assert query(f"select count() from anomaly_flags where window_start < '{cutoff}'")[0][0] == 0
    assert query(f"select count() from sensor_fault_flags where window_start < '{cutoff}'")[0][0] == 0


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        ("L1-pump02", {("vib_x", "spike"), ("vib_x", "spec_breach")}),
        ("L1-pump03", {("vib_x", "drift")}),
        ("L1-pump04", {("", "multivariate")}),
        ("L2-pump01", {("current", "spec_breach")}),
    ],
)
def test_machine_anomalies_fire(query: Callable[[str], list[tuple]], machine: str, expected: set) -> None:
    found = kinds(query, "anomaly_flags", "flag_kind", machine)
    assert expected <= found, found
    assert kinds(query, "sensor_fault_flags", "fault_kind", machine) == set()
    first = query(f"select min(window_start) from anomaly_flags where machine_id = '{machine}'")[0][0]
    assert first.replace(tzinfo=UTC) >= START + timedelta(seconds=FAULT_AT)


def test_relation_break_is_within_spec(query: Callable[[str], list[tuple]]) -> None:
    """The coupled change is caught although every sensor stays inside its limits."""
    assert ("current", "spec_breach") not in kinds(query, "anomaly_flags", "flag_kind", "L1-pump04")


@pytest.mark.parametrize(
    ("machine", "expected"),
    [("L2-pump02", ("speed", "stuck")), ("L2-pump03", ("vib_x", "dropout")),
     ("L3-pump01", ("bearing_temp", "impossible_value"))],
)  # fmt: skip
def test_sensor_faults_are_kept_apart(query: Callable[[str], list[tuple]], machine: str, expected: tuple) -> None:
    assert kinds(query, "sensor_fault_flags", "fault_kind", machine) == {expected}
    assert kinds(query, "anomaly_flags", "flag_kind", machine) == set(), "a sensor fault raised a machine anomaly"
    categories = query(f"select distinct category, kind from alerts where machine_id = '{machine}'")
    assert categories == [("sensor", expected[1])]


def test_flags_are_merged_into_episodes(query: Callable[[str], list[tuple]]) -> None:
    spikes = query(
        "select flag_count, status, ended_at is not null, started_at from alerts "
        "where machine_id = 'L1-pump02' and kind = 'spike' order by started_at"
    )
    assert [(n, status, ended) for n, status, ended, _ in spikes] == [(2, "resolved", True), (1, "resolved", True)]
    assert spikes[0][3].replace(tzinfo=UTC) == START + timedelta(seconds=1900)
    stuck = query("select flag_count, severity from alerts where machine_id = 'L2-pump02'")
    assert stuck == [(12, "warning")]  # 120 s stuck: twelve 10 s windows, one alert
    assert query("select count() = uniqExact(alert_id) from alerts")[0][0]


def test_detection_is_scored_by_the_dbt_analyses(warehouse_db: Settings) -> None:
    """plantwatch.scoring runs dbt_project/analyses/scoring with its values as query parameters: a run's labels only."""
    at = START + timedelta(seconds=FAULT_AT)
    labels = [  # run, machine, sensors, kind, start, end: as the columns below, severity and source aside
        ("scored", "L1-pump02", ["vib_x"], "spike", START + timedelta(seconds=1900), START + timedelta(seconds=1903)),
        ("scored", "L2-pump02", ["speed"], "stuck", at, at + timedelta(seconds=120)),
        ("other", "L1-pump01", ["vib_x"], "drift", at, at + timedelta(seconds=300)),  # a clean machine: missed
    ]
    columns = ["run_id", "machine_id", "sensor_ids", "fault_kind", "start_time", "end_time", "severity", "source"]
    rows = [[*label, 1.0, "test"] for label in labels]
    warehouse.client(warehouse_db).insert(warehouse_db.clickhouse.fault_labels_table, rows, column_names=columns)
    transformer = Transformer(warehouse_db)

    scored = score(transformer, ["scored"], include_unlabelled_machines=False)
    assert {(e.machine_id, e.fault_kind, e.detected) for e in scored.episodes} == {
        ("L1-pump02", "spike", True),
        ("L2-pump02", "stuck", True),
    }
    assert scored.cross_readings == 0  # no machine anomaly during the sensor fault
    assert scored.machine_hours == pytest.approx(len(MACHINES) * (SECONDS - 1) / 3600, rel=0.01)
    other = score(transformer, ["other"])
    assert [(e.machine_id, e.detected) for e in other.episodes] == [("L1-pump01", False)]

    # as a replayed export: L1-pump02 from minute 30 on - its labelled spike found, the later unlabelled one a false
    # alarm; every instant counted once (40 minutes at 1 Hz less the first 30)
    instants = score_instants(transformer, {"L1-pump02": START + timedelta(seconds=1800)})
    assert [(e.fault_kind, e.detected) for e in instants.episodes] == [("spike", True)]
    assert [alarm.started_at.replace(tzinfo=UTC) for alarm in instants.false_alarms] == [
        START + timedelta(seconds=2200)
    ]
    rows = instants.rows
    assert rows.tp > 0 and rows.tp + rows.fp + rows.fn + rows.tn == SECONDS - 1800


def test_machine_health_and_pipeline_stats(query: Callable[[str], list[tuple]]) -> None:
    health = dict(query("select machine_id, open_sensor_faults from machine_health"))
    assert set(MACHINES) <= set(health)
    stats = query("select sum(readings), max(machines) from pipeline_stats final")[0]
    assert stats[0] == query("select count() from readings_raw")[0][0]
    assert stats[1] == len(MACHINES)
    hourly = query(
        "select reading_count from rolling_aggregates final "
        "where machine_id = 'L1-pump01' and sensor_id = 'current' and window_seconds = 3600 order by window_start"
    )
    assert sum(r[0] for r in hourly) == SECONDS


def test_rolling_aggregates_match_the_readings(query: Callable[[str], list[tuple]]) -> None:
    """Every 1-minute, 5-minute and hour window (rolled up from per-minute states, over incremental runs) has the
    statistics computed straight from the deduplicated readings."""
    for seconds, start in ((60, "toStartOfMinute"), (300, "toStartOfFiveMinutes"), (3600, "toStartOfHour")):
        got = query(
            "select toDateTime(window_start), reading_count, mean, stddev, min_value, max_value, rate_of_change "
            "from rolling_aggregates final where machine_id = 'L1-pump01' and sensor_id = 'current' "
            f"and window_seconds = {seconds} order by window_start"
        )
        expected = query(
            f"select {start}(event_time) as w, count(), avg(value), stddevPop(value), min(value), max(value), "
            "if(max(event_time) > min(event_time), (argMax(value, event_time) - argMin(value, event_time)) "
            "/ (dateDiff('millisecond', min(event_time), max(event_time)) / 1000), 0.) "
            "from readings where machine_id = 'L1-pump01' and sensor_id = 'current' group by w order by w"
        )
        assert len(got) == len(expected) >= 1, seconds
        for row, want in zip(got, expected, strict=True):
            assert row[:2] == want[:2], seconds
            assert row[2:] == pytest.approx(want[2:], rel=1e-9, abs=1e-9), (seconds, row[0])


TABLES = ("int_machine_cadence", "int_sensor_windows", "int_sensor_window_checks", "int_trailing_baselines",
          "int_machine_window_scores", "int_sensor_window_scores", "int_detector_thresholds", "rolling_aggregates",
          "pipeline_stats", "alerts", "anomaly_flags", "sensor_fault_flags", "machine_health")  # fmt: skip


def snapshot(query: Callable[[str], list[tuple]]) -> dict[str, tuple[list, list]]:
    """Every model's rows (as users see them: FINAL) and the stored row counts."""
    out = {}
    for table in TABLES:
        final = "final" if table.startswith("int_") or table in ("rolling_aggregates", "pipeline_stats") else ""
        columns = "* except (status)" if table == "machine_health" else "*"  # status: wall-clock staleness
        out[table] = (
            query(f"select {columns} from {table} {final} order by all"),
            query(f"select count() from {table}"),
        )
    return out


def test_rerun_without_new_data_changes_nothing(warehouse_db: Settings, query: Callable[[str], list[tuple]]) -> None:
    before = snapshot(query)
    transform(warehouse_db, test=False)
    assert snapshot(query) == before
    # The periodic pass (`transform --every`): the refresh models run, then a pass with nothing new is skipped.
    transformer = Transformer(warehouse_db)
    assert transformer.refresh().command == "run"
    assert transformer.refresh().command == "skip"
    assert snapshot(query) == before


def test_late_data_and_commissioning_baseline(warehouse_db: Settings, query: Callable[[str], list[tuple]]) -> None:
    baseline.fit(warehouse_db, LATE, START, START + timedelta(seconds=1800))
    client = warehouse.client(warehouse_db)
    # On time: two more minutes of LATE; late but within the lateness: a spike 10 s before its last window ends;
    # too late (beyond the lateness): an impossible value on a clean machine half an hour back.
    insert(client, warehouse_db, readings(START, LATE, np.arange(SECONDS, SECONDS + 120, dtype=float), 8, False))
    late = START + timedelta(seconds=SECONDS - 5)
    too_late = START + timedelta(seconds=600.5)
    rows = [[LATE, "vib_x", "vibration", 25.0, "mm/s", late, 99999, 1],
            ["L3-pump03", "bearing_temp", "temperature", 900.0, "C", too_late, 99999, 1]]  # fmt: skip
    insert(client, warehouse_db, [list(col) for col in zip(*rows, strict=True)])
    transform(warehouse_db, test=False)

    late_window = (START + timedelta(seconds=SECONDS - 10)).strftime("%Y-%m-%d %H:%M:%S")
    folded = query(
        f"select reading_count, max_value from int_sensor_windows final "
        f"where machine_id = '{LATE}' and sensor_id = 'vib_x' and window_start = '{late_window}'"
    )
    assert folded == [(11, 25.0)]
    spikes = query(
        f"select sensor_id, window_start from anomaly_flags where machine_id = '{LATE}' and flag_kind = 'spike'"
    )
    assert [(s, w.replace(tzinfo=UTC)) for s, w in spikes] == [("vib_x", START + timedelta(seconds=SECONDS - 10))]
    assert kinds(query, "sensor_fault_flags", "fault_kind", "L3-pump03") == set(), "a reading beyond the lateness"
    newest = query(
        f"select baseline_kind from int_machine_window_scores final where machine_id = '{LATE}' "
        f"order by window_start desc limit 1"
    )
    assert newest == [("commissioning",)]
    fitted = baseline.fits(warehouse_db, LATE)
    assert len(fitted) == 1 and fitted[0].windows == 180 and fitted[0].sensors == len(SENSORS)
