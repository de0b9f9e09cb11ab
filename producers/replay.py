"""Replay a historian export (CSV, one row per instant, one column per sensor) as one machine's readings.

The delimiter is detected from the header unless given; the time column is the one named like a time
(``datetime``, ``timestamp``, ``time``, ``date``, ...) unless given. Times are ISO 8601 (naive ones are UTC), epoch
seconds or milliseconds, or follow ``time_format`` (strptime). Each other column is a sensor; its kind is guessed
from its name (``temp``/``thermo``, ``vib``, ``accel``, ``press``, ``current``/``amp``, ``volt``, ``power``/``kw``,
``speed``/``rpm``, ``flow``, ``level``, ``torque``, ``humid``) unless given, else ``other`` (said in the report);
its unit from a ``(unit)`` or ``[unit]`` suffix, else the kind's usual one. An optional label column (``0``/``1``,
``0.0``/``1.0`` or ``true``/``false``) becomes ground-truth episodes (runs of 1s), written like the simulator's fault
labels; other annotation columns (``anomaly``, ``changepoint``, ``label``, ...) are not sensors and are left out
(said in the report) unless given a kind.

A row is malformed when it has the wrong number of fields, an unreadable time, a time outside what a reading may
carry (before 1970, after 2299: ``plantwatch.reading.MIN_TS_MS``/``MAX_TS_MS``), a value that is not a number, or a
label that is not one of those; malformed rows are counted and reported with their line numbers and the rest is
replayed. An empty cell is a missing reading, not an error. Rows that repeat an earlier row's time are replayed
(as further readings, with their own seq) and counted in a warning.

The whole file is refused, before anything is sent, when it cannot be read as one machine's sensors: no such file
(or a folder), not UTF-8 (the first undecodable line is named: a file in another encoding would have every later
line wrong too, and a half-sent file is worse than none), two columns that give the same sensor id once units are
stripped (``temp (C)`` and ``temp [F]``), no time column, no sensor column.
"""

from __future__ import annotations

import codecs
import csv
import re
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from plantwatch.producers.faults import FaultLabel
from plantwatch.producers.publish import Message, publish_run, save_labels
from plantwatch.reading import IDENTIFIER, MAX_TS_MS, MIN_TS_MS, UNIT, SensorKind
from plantwatch.settings import Settings

DELIMITERS = (",", ";", "\t", "|")
TIME_NAMES = ("datetime", "timestamp", "time", "date", "ts", "zeit", "datum")
KIND_WORDS: tuple[tuple[str, SensorKind], ...] = (
    ("temp", SensorKind.TEMPERATURE),
    ("thermo", SensorKind.TEMPERATURE),
    ("vib", SensorKind.VIBRATION),
    ("accel", SensorKind.ACCELERATION),
    ("press", SensorKind.PRESSURE),
    ("current", SensorKind.CURRENT),
    ("amp", SensorKind.CURRENT),
    ("volt", SensorKind.VOLTAGE),
    ("power", SensorKind.POWER),
    ("kw", SensorKind.POWER),
    ("speed", SensorKind.SPEED),
    ("rpm", SensorKind.SPEED),
    ("flow", SensorKind.FLOW),
    ("level", SensorKind.LEVEL),
    ("torque", SensorKind.TORQUE),
    ("humid", SensorKind.HUMIDITY),
)
DEFAULT_UNITS = {
    SensorKind.TEMPERATURE: "C",
    SensorKind.VIBRATION: "mm/s",
    SensorKind.ACCELERATION: "g",
    SensorKind.PRESSURE: "bar",
    SensorKind.CURRENT: "A",
    SensorKind.VOLTAGE: "V",
    SensorKind.POWER: "kW",
    SensorKind.SPEED: "rpm",
    SensorKind.FLOW: "m3/h",
    SensorKind.LEVEL: "m",
    SensorKind.TORQUE: "Nm",
    SensorKind.HUMIDITY: "%",
    SensorKind.OTHER: "",
}
# Columns that annotate the rows rather than measure anything (labels of public data sets and historians).
ANNOTATION_NAMES = frozenset({"anomaly", "anomalies", "changepoint", "label", "labels", "is_anomaly", "fault",
                              "target", "outlier"})  # fmt: skip
LABEL_VALUES = {"0": False, "1": True, "0.0": False, "1.0": True, "false": False, "true": True}
UNIT_SUFFIX = re.compile(r"^(.*?)\s*[\(\[]([^\)\]]*)[\)\]]\s*$")


class ReplayError(ValueError):
    """The file cannot be replayed at all (as opposed to single malformed rows)."""


def parse_speed(text: str) -> float:
    """``1x``, ``10x``, ``2.5x`` -> that factor; ``max`` -> 0 (no waiting)."""
    text = text.strip().lower()
    if text == "max":
        return 0.0
    match = re.fullmatch(r"(\d+(?:\.\d+)?)x?", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"speed must be like 1x, 10x or max, not {text!r}")
    return float(match.group(1))


@dataclass(frozen=True, slots=True)
class SensorColumn:
    index: int
    sensor_id: str
    kind: SensorKind
    unit: str


@dataclass(frozen=True)
class Layout:
    delimiter: str
    time_index: int
    label_index: int | None
    sensors: tuple[SensorColumn, ...]
    width: int
    notes: tuple[str, ...] = ()  # what was guessed or left out, for the user to check


def _sensor_column(index: int, name: str, kinds: dict[str, SensorKind], notes: list[str]) -> SensorColumn:
    base, unit = name.strip(), None
    if match := UNIT_SUFFIX.match(base):
        base, unit = match.group(1), match.group(2).strip()
    sensor_id = re.sub(r"[^A-Za-z0-9_.:-]+", "_", base).strip("_.:-").lower()[:64]
    if not IDENTIFIER.fullmatch(sensor_id):
        raise ReplayError(f"column {name!r} gives no usable sensor id")
    kind = kinds.get(name) or kinds.get(sensor_id)
    if kind is None:
        kind = next((k for word, k in KIND_WORDS if word in sensor_id), None)
    if kind is None:
        kind = SensorKind.OTHER
        notes.append(f"column {name!r}: kind 'other' (not told by its name; set it with --kind '{name}=KIND')")
    if unit is None or not UNIT.fullmatch(unit):
        unit = DEFAULT_UNITS[kind]
    return SensorColumn(index, sensor_id, kind, unit)


def detect_layout(
    header: list[str],
    delimiter: str,
    time_column: str | None = None,
    label_column: str | None = None,
    kinds: dict[str, SensorKind] | None = None,
    ignore: tuple[str, ...] = (),
) -> Layout:
    names = [h.strip() for h in header]
    if time_column is None:
        time_column = next((n for n in names if n.lower() in TIME_NAMES), None)
        if time_column is None:
            raise ReplayError(f"no time column among {names}: name it with --time-column")
    if time_column not in names:
        raise ReplayError(f"time column {time_column!r} not in the header {names}")
    if label_column is not None and label_column not in names:
        raise ReplayError(f"label column {label_column!r} not in the header {names}")
    kinds = kinds or {}
    notes: list[str] = []
    annotations = [n for n in names if n.lower() in ANNOTATION_NAMES and n not in kinds and n != label_column]
    if annotations:
        notes.append(f"left out {', '.join(map(repr, annotations))}: annotations, not sensors "
                     f"(--label-column to record one as ground truth, --kind to replay it as a sensor)")  # fmt: skip
    skip = {time_column, label_column, *ignore, *annotations}
    sensors = tuple(_sensor_column(i, n, kinds, notes) for i, n in enumerate(names) if n not in skip)
    if not sensors:
        raise ReplayError("no sensor columns")
    first_named: dict[str, int] = {}
    for column in sensors:
        if (other := first_named.setdefault(column.sensor_id, column.index)) != column.index:
            raise ReplayError(f"columns {names[other]!r} and {names[column.index]!r} are both sensor "
                              f"{column.sensor_id!r}: rename one, or leave one out with --ignore")  # fmt: skip
    label_index = names.index(label_column) if label_column else None
    return Layout(delimiter, names.index(time_column), label_index, sensors, len(names), tuple(notes))


def parse_time(text: str, time_format: str | None = None) -> int:
    """Epoch milliseconds of a timestamp cell (naive times are UTC)."""
    text = text.strip()
    if time_format:
        moment = datetime.strptime(text, time_format)
    elif re.fullmatch(r"\d+(\.\d+)?", text):
        number = float(text)
        return int(number if number > 1e11 else number * 1000)  # milliseconds already, or seconds
    else:
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def check_utf8(path: Path, chunk_bytes: int = 1 << 20) -> None:
    """Refuse a file that is not UTF-8, naming its first undecodable line, before anything of it is sent."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(chunk_bytes):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                line = lines + chunk.count(b"\n", 0, exc.start) + 1
                column = exc.start - (chunk.rfind(b"\n", 0, exc.start) + 1) + 1
                raise ReplayError(
                    f"{path}: line {line} is not UTF-8 (byte 0x{chunk[exc.start]:02x} at column {column}); nothing "
                    f"was replayed: convert the file first (e.g. iconv -f latin1 -t utf-8)"
                ) from None
            lines += chunk.count(b"\n")
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise ReplayError(f"{path}: line {lines + 1} ends in the middle of a UTF-8 character; nothing was "
                              f"replayed") from None  # fmt: skip


@dataclass(slots=True)
class Row:
    line: int
    ts_ms: int
    values: list[tuple[SensorColumn, float]]
    label: bool


@dataclass
class ReplayReport:
    run_id: str
    rows: int = 0
    replayed: int = 0
    readings: int = 0
    messages: int = 0
    malformed: list[tuple[int, str]] = field(default_factory=list)
    notes: tuple[str, ...] = ()
    labels: list[FaultLabel] = field(default_factory=list)
    labels_file: Path | None = None
    labels_in_clickhouse: bool = False
    delivered: bool = False
    repeated_times: int = 0  # rows whose time an earlier row had already


def read_rows(
    path: Path, layout: Layout, time_format: str | None, report: ReplayReport, shift_ms: int | None = None
) -> Iterator[Row]:
    """The well-formed rows; malformed ones are added to the report with their line numbers. ``shift_ms``: what
    the replay will add to each time (None: the first well-formed row's distance to ``rebase``, see replay_csv),
    for the range check to apply to the times that will be sent."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=layout.delimiter)
        next(reader)
        for fields in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in fields):
                continue
            report.rows += 1
            if len(fields) != layout.width:
                report.malformed.append((line, f"{len(fields)} fields, expected {layout.width}"))
                continue
            try:
                ts = parse_time(fields[layout.time_index], time_format)
            except (ValueError, OverflowError, OSError):
                report.malformed.append((line, f"unreadable time {fields[layout.time_index]!r}"))
                continue
            if not MIN_TS_MS <= ts + (shift_ms or 0) <= MAX_TS_MS:
                report.malformed.append((line, f"time {fields[layout.time_index].strip()!r} is outside what a "
                                               f"reading may carry (1970 to 2299)"))  # fmt: skip
                continue
            label = False
            if layout.label_index is not None:
                cell = fields[layout.label_index].strip().lower()
                if cell not in LABEL_VALUES:
                    report.malformed.append((line, f"label {cell!r} is not 0/1, 0.0/1.0 or true/false"))
                    continue
                label = LABEL_VALUES[cell]
            values, bad = [], None
            for col in layout.sensors:
                cell = fields[col.index].strip()
                if not cell:
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    bad = f"{col.sensor_id}: {cell!r} is not a number"
                    break
                if value != value or value in (float("inf"), float("-inf")):
                    bad = f"{col.sensor_id}: {cell!r} is not a finite number"
                    break
                values.append((col, value))
            if bad:
                report.malformed.append((line, bad))
                continue
            yield Row(line, ts, values, label)


def first_time(path: Path, layout: Layout, time_format: str | None) -> int:
    """The time of the first row whose time can be read (what --rebase moves to now); 0 when none can."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f, delimiter=layout.delimiter)
        next(reader)
        for fields in reader:
            if len(fields) == layout.width:
                try:
                    return parse_time(fields[layout.time_index], time_format)
                except (ValueError, OverflowError, OSError):
                    continue
    return 0


def episodes(
    marks: list[tuple[int, bool]], run_id: str, machine_id: str, sensor_ids: tuple[str, ...], kind: str
) -> list[FaultLabel]:
    """Runs of labelled rows as labels: from the first labelled row to the first unlabelled one after it."""
    out, start = [], None
    for ts, on in marks:
        if on and start is None:
            start = ts
        elif not on and start is not None:
            out.append(FaultLabel(run_id, machine_id, sensor_ids, kind, 1.0, start, ts, "replay"))
            start = None
    if start is not None:
        out.append(FaultLabel(run_id, machine_id, sensor_ids, kind, 1.0, start, marks[-1][0] + 1, "replay"))
    return out


def sniff_delimiter(path: Path) -> str:
    """The candidate that splits the header into the most fields (csv.Sniffer gives up on files with broken
    lines, which historian exports have)."""
    with path.open(newline="", encoding="utf-8-sig") as f:
        header = f.readline()
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    if counts[best] == 0:
        raise ReplayError(f"cannot tell the delimiter of {path}: give it with --delimiter")
    return best


def replay_csv(
    settings: Settings,
    path: Path,
    machine_id: str,
    *,
    delimiter: str | None = None,
    time_column: str | None = None,
    time_format: str | None = None,
    label_column: str | None = None,
    label_kind: str = "labelled",
    kinds: dict[str, SensorKind] | None = None,
    ignore: tuple[str, ...] = (),
    rebase_to_ms: int | None = None,
    speed: float = 0.0,
    archive: bool = True,
    run_id: str | None = None,
) -> ReplayReport:
    """Replay the file through the SDK logger. ``rebase_to_ms``: move the first row to that time (keeping the
    spacing); ``speed``: 1 for the recorded pace, 10 for ten times faster, 0 for no waiting."""
    if not IDENTIFIER.fullmatch(machine_id):
        raise ReplayError(f"machine id {machine_id!r} is not a plain identifier")
    if not path.is_file():
        raise ReplayError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")
    check_utf8(path)
    delimiter = delimiter or sniff_delimiter(path)
    with path.open(newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader(f, delimiter=delimiter), None)
    if not header:
        raise ReplayError(f"{path} is empty")
    layout = detect_layout(header, delimiter, time_column, label_column, kinds, ignore)
    report = ReplayReport(run_id or f"replay-{machine_id}-{path.stem}-{time.time_ns() // 1_000_000}")
    report.notes = layout.notes
    seq = dict.fromkeys((c.sensor_id for c in layout.sensors), 0)
    marks: list[tuple[int, bool]] = []
    times = array("q")
    shift = 0 if rebase_to_ms is None else rebase_to_ms - first_time(path, layout, time_format)

    first_ts = 0  # the first row's time: the recorded pace counts from it

    def messages() -> Iterator[Message]:
        nonlocal first_ts
        for row in read_rows(path, layout, time_format, report, shift):
            ts = row.ts_ms + shift
            first_ts = first_ts if report.replayed else ts
            marks.append((ts, row.label))
            times.append(ts)
            report.replayed += 1
            if not row.values:
                continue
            readings = []
            for col, value in row.values:
                readings.append({"sensor_id": col.sensor_id, "kind": col.kind.value, "value": value,
                                 "unit": col.unit, "seq": seq[col.sensor_id]})  # fmt: skip
                seq[col.sensor_id] += 1
            yield machine_id, ts, readings

    def recorded_pace(ts: int, _readings: int) -> float:
        return (ts - first_ts) / 1000 / speed

    published = publish_run(
        settings, messages(), archive=archive, pace=recorded_pace if speed else None, flush_timeout=30.0
    )
    report.delivered, report.readings, report.messages = published.delivered, published.readings, published.messages
    report.repeated_times = len(times) - len(np.unique(np.frombuffer(times, dtype=np.int64))) if times else 0
    if layout.label_index is not None:
        sensor_ids = tuple(c.sensor_id for c in layout.sensors)
        report.labels = episodes(marks, report.run_id, machine_id, sensor_ids, label_kind)
        report.labels_file, report.labels_in_clickhouse = save_labels(settings, report.run_id, report.labels)
    return report
