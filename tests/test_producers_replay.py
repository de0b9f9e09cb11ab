"""CSV replay of a historian export: a `;`-separated fixture with a `datetime` column, a 0/1 label column, an
empty cell and four broken lines, replayed into a real Kafka topic with its labels in ClickHouse."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from plantwatch import warehouse
from plantwatch.producers.labels import read_labels_file
from plantwatch.producers.replay import ReplayReport, detect_layout, parse_speed, read_rows, replay_csv
from plantwatch.reading import SensorKind
from plantwatch.settings import Settings, environment
from tests.fixtures.kafka_topic import read_topic

FIXTURE = Path(__file__).parent / "fixtures" / "historian.csv"
MACHINE = "L9-pump01"
BROKEN = {6: "fields", 10: "time", 13: "not a number", 15: "label"}


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def local(settings: Settings, tmp_path: Path) -> Settings:
    return settings.model_copy(update={"state_dir": tmp_path})


def test_replay_reports_broken_lines_and_replays_the_rest(isolated: Settings, tmp_path: Path) -> None:
    settings = local(isolated, tmp_path)
    report = replay_csv(settings, FIXTURE, MACHINE, label_column="anomaly", run_id="csv-1")

    assert report.rows == 17 and report.replayed == 13
    assert [line for line, _ in report.malformed] == sorted(BROKEN)
    for line, why in report.malformed:
        assert BROKEN[line] in why
    assert report.delivered and report.labels_in_clickhouse

    records = read_topic(settings)
    assert {r.key for r in records} == {MACHINE.encode()}
    readings = [rd for r in records for rd in r.readings()]
    assert len(readings) == report.readings == 13 * 4 - 1  # one empty cell is a missing reading, not an error
    by_sensor = {}
    for rd in readings:
        by_sensor.setdefault(rd.sensor_id, []).append(rd)
    assert {s: (v[0].kind, v[0].unit) for s, v in by_sensor.items()} == {
        "bearing_temperature": ("temperature", "C"),
        "vibration_rms": ("vibration", "mm/s"),
        "motor_current": ("current", "A"),
        "discharge_pressure": ("pressure", "bar"),
    }
    # Timestamps kept, in file order; each sensor counts its own readings from 0 with no gaps.
    temps = by_sensor["bearing_temperature"]
    assert temps[0].ts_ms == ms("2026-11-01 08:00:00") and temps[0].value == 41.2
    assert [t.ts_ms for t in temps] == sorted(t.ts_ms for t in temps)
    assert all(rows == list(range(len(rows))) for rows in ([r.seq for r in v] for v in by_sensor.values()))
    assert ms("2026-11-01 08:00:40") not in {t.ts_ms for t in temps}  # the short line was not replayed

    # Runs of 1s become episodes, from the first labelled row to the first unlabelled one.
    expected = [
        (ms("2026-11-01 08:01:00"), ms("2026-11-01 08:01:40")),
        (ms("2026-11-01 08:02:20"), ms("2026-11-01 08:02:40")),
    ]
    assert [(lb.start_ms, lb.end_ms) for lb in read_labels_file(report.labels_file)] == expected
    rows = (
        warehouse.client(settings)
        .query(
            f"SELECT machine_id, fault_kind, source, toUnixTimestamp64Milli(start_time), "
            f"toUnixTimestamp64Milli(end_time), length(sensor_ids) FROM {settings.clickhouse.fault_labels_table} "
            "WHERE run_id = 'csv-1' ORDER BY start_time"
        )
        .result_rows
    )
    assert [tuple(r) for r in rows] == [(MACHINE, "labelled", "replay", s, e, 4) for s, e in expected]


def test_replay_rebases_timestamps_and_paces(isolated: Settings, tmp_path: Path) -> None:
    settings = local(isolated, tmp_path)
    start = ms("2030-01-01 00:00:00")
    report = replay_csv(settings, FIXTURE, MACHINE, delimiter=";", time_column="datetime", rebase_to_ms=start,
                        speed=400.0, archive=False)  # fmt: skip
    assert any("left out 'anomaly'" in note for note in report.notes)  # an annotation, not a sensor
    times = sorted({rd.ts_ms for r in read_topic(settings) for rd in r.readings()})
    assert times[0] == start and times[-1] == start + 160_000  # spacing kept: 08:00:00 .. 08:02:40
    assert report.labels == []  # no label column given
    assert parse_speed("10x") == 10 and parse_speed("1x") == 1 and parse_speed("max") == 0


def test_replay_cli_prints_broken_lines(isolated: Settings, tmp_path: Path) -> None:
    env = {**os.environ, **environment(local(isolated, tmp_path))}
    result = subprocess.run(
        [sys.executable, "-m", "plantwatch.cli", "replay", str(FIXTURE), "--machine", MACHINE,
         "--label-column", "anomaly", "--speed", "max"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "13 of 17 rows replayed" in result.stderr and "2 labelled episodes" in result.stderr
    for line in BROKEN:
        assert f"line {line}:" in result.stderr
    assert len(read_topic(isolated)) == 13


def test_replay_knows_the_columns_real_exports_have() -> None:
    """Kinds guessed from the names real exports use (an unknown one is `other`, and said), annotation columns left
    out, and labels written as 0/1, 0.0/1.0 or true/false."""
    header = ["datetime", "Accelerometer1RMS", "Current", "Thermocouple", "Voltage", "Volume Flow RateRMS",
              "value", "anomaly", "changepoint"]  # fmt: skip
    layout = detect_layout(header, ";", label_column="anomaly")
    kinds = {c.sensor_id: (c.kind.value, c.unit) for c in layout.sensors}
    assert kinds == {
        "accelerometer1rms": ("acceleration", "g"), "current": ("current", "A"),
        "thermocouple": ("temperature", "C"), "voltage": ("voltage", "V"),
        "volume_flow_raterms": ("flow", "m3/h"), "value": ("other", ""),
    }  # fmt: skip
    assert any("'changepoint'" in note for note in layout.notes)
    assert any("column 'value': kind 'other'" in note for note in layout.notes)
    given = detect_layout(header, ";", label_column="anomaly", kinds={"value": SensorKind.TEMPERATURE})
    assert {c.sensor_id: c.kind for c in given.sensors}["value"] is SensorKind.TEMPERATURE


def test_replay_reads_labels_as_exports_write_them(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "timestamp,value,label\n"
        "2013-12-02 21:15:00,80.0,0.0\n2013-12-02 21:20:00,80.5,1.0\n2013-12-02 21:25:00,80.1,TRUE\n"
        "2013-12-02 21:30:00,80.2,false\n2013-12-02 21:35:00,80.2,0\n2013-12-02 21:40:00,80.3,2\n"
    )
    layout = detect_layout(["timestamp", "value", "label"], ",", label_column="label")
    report = ReplayReport("labels")
    rows = list(read_rows(path, layout, None, report))
    assert [row.label for row in rows] == [False, True, True, False, False]
    assert report.malformed == [(7, "label '2' is not 0/1, 0.0/1.0 or true/false")]
