"""The reading: its fields, its wire format on Kafka and its columns in ClickHouse, defined once.

Wire format (schema version 1): one Kafka message carries the readings of one machine at one instant, as JSON
(orjson), keyed by machine id so that each machine's readings keep their order within a partition::

    {"v": 1, "machine_id": "L1-M01", "ts": 1764291600000,
     "readings": [{"sensor_id": "temp", "kind": "temperature", "value": 71.3, "unit": "C", "seq": 42}, ...]}

``ts`` is the event time in UTC epoch milliseconds; ``seq`` counts each sensor's readings from 0 so that gaps and
duplicates can be seen downstream. A row in ClickHouse is one reading (see ``COLUMNS``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import accumulate, chain, compress, repeat
from math import isfinite
from operator import attrgetter, itemgetter
from typing import Annotated, NamedTuple

import msgspec
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})
MAX_MESSAGE_BYTES = 64 * 1024
MAX_READINGS_PER_MESSAGE = 256
# Event times the wire takes (epoch milliseconds): after 1970-01-01 and within ClickHouse's DateTime64 (to the end of
# 2299; a later time would not land as itself).
MIN_TS_MS, MAX_TS_MS = 1, 10_413_791_999_999
# Identifiers (machine, sensor, kind, unit) are plain tokens: they become partition keys, labels and file names.
IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
UNIT = re.compile(r"[A-Za-z0-9%/°._ -]{0,16}")
NON_FINITE_TOKEN = re.compile(rb"(?<![\w\"])-?(NaN|Infinity)(?![\w\"])")


class SensorKind(StrEnum):
    """What a sensor measures. The wire takes any identifier as a kind; these are the ones plantwatch knows a
    default unit and name words for (producers/replay.py), and that spec limits are usually set per. ``other``: a
    sensor of a kind not listed, scored by the statistical detectors like any other."""

    TEMPERATURE = "temperature"
    VIBRATION = "vibration"
    ACCELERATION = "acceleration"
    PRESSURE = "pressure"
    CURRENT = "current"
    VOLTAGE = "voltage"
    POWER = "power"
    SPEED = "speed"
    FLOW = "flow"
    LEVEL = "level"
    TORQUE = "torque"
    HUMIDITY = "humidity"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    clickhouse_type: str
    codec: str = ""


# The raw table's columns, in insert order (ingested_at is filled by ClickHouse).
COLUMNS: tuple[Column, ...] = (
    Column("machine_id", "LowCardinality(String)"),
    Column("sensor_id", "LowCardinality(String)"),
    Column("sensor_kind", "LowCardinality(String)"),
    Column("value", "Float64", "CODEC(Gorilla, ZSTD(1))"),
    Column("unit", "LowCardinality(String)"),
    Column("event_time", "DateTime64(3, 'UTC')", "CODEC(DoubleDelta, ZSTD(1))"),
    Column("seq", "UInt64", "CODEC(DoubleDelta, ZSTD(1))"),
    Column("schema_version", "UInt8"),
)
COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)
# The columns as Arrow types (what the ingest inserts, in Arrow format): event_time as milliseconds since the epoch.
ARROW_SCHEMA = pa.schema([
    ("machine_id", pa.string()), ("sensor_id", pa.string()), ("sensor_kind", pa.string()), ("value", pa.float64()),
    ("unit", pa.string()), ("event_time", pa.timestamp("ms", tz="UTC")), ("seq", pa.uint64()),
    ("schema_version", pa.uint8()),
])  # fmt: skip
assert tuple(ARROW_SCHEMA.names) == COLUMN_NAMES


@dataclass(frozen=True, slots=True)
class Reading:
    machine_id: str
    sensor_id: str
    kind: str
    value: float
    unit: str
    ts_ms: int
    seq: int
    schema_version: int = SCHEMA_VERSION


class InvalidMessage(ValueError):
    """A message that does not follow the wire format; ``reason`` is a short stable code for metrics."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def encode(machine_id: str, ts_ms: int, readings: list[dict]) -> bytes:
    """One message: the readings (dicts with sensor_id, kind, value, unit, seq) of a machine at ts_ms."""
    return orjson.dumps({"v": SCHEMA_VERSION, "machine_id": machine_id, "ts": ts_ms, "readings": readings})


# Identifiers and units repeat across millions of messages: remember the ones that passed their pattern so the hot
# path is a set lookup instead of a regex match (bounded, so hostile input cannot grow it without limit).
_KNOWN_IDENTIFIERS: set[str] = set()
_KNOWN_UNITS: set[str] = set()
_KNOWN_LIMIT = 65_536
_READING_FIELDS = itemgetter("sensor_id", "kind", "value", "unit", "seq")
_DICT = frozenset({dict})
_FLOAT, _INT, _NUMBER = frozenset({float}), frozenset({int}), frozenset({float, int})
_new_tuple = tuple.__new__

# A decoded reading as a tuple in COLUMNS order (and Reading's field order).
Row = tuple[str, str, str, float, str, int, int, int]


class MessageReadings(NamedTuple):
    """One message's readings as columns: what the ingest appends to its batches, with no object per reading."""

    machine_id: str
    ts_ms: int
    schema_version: int
    sensor_ids: Sequence[str]
    kinds: Sequence[str]
    values: Sequence[float]
    units: Sequence[str]
    seqs: Sequence[int]

    def columns(self) -> tuple[Sequence, ...]:
        """The readings' columns in COLUMNS order."""
        n = len(self.values)
        return (
            [self.machine_id] * n, self.sensor_ids, self.kinds, self.values, self.units, [self.ts_ms] * n, self.seqs,
            [self.schema_version] * n,
        )  # fmt: skip

    def rows(self) -> list[Row]:
        return list(zip(*self.columns(), strict=True))


def _checked(value: object, field: str, pattern: re.Pattern[str], known: set[str]) -> str:
    if type(value) is not str or not pattern.fullmatch(value):
        raise InvalidMessage("bad_identifier", f"{field}={str(value)[:80]!r}")
    if len(known) < _KNOWN_LIMIT:
        known.add(value)
    return value


def _identifier(value: object, field: str) -> str:
    if type(value) is str and value in _KNOWN_IDENTIFIERS:
        return value
    return _checked(value, field, IDENTIFIER, _KNOWN_IDENTIFIERS)


def decode(raw: bytes) -> list[Reading]:
    """Parse and validate one message; raises InvalidMessage with the reason when anything is off."""
    return [Reading(*row) for row in decode_columns(raw).rows()]


def decode_columns(raw: bytes) -> MessageReadings:
    """What decode() does, returning the readings as columns: the ingest's hot path."""
    if len(raw) > MAX_MESSAGE_BYTES:
        raise InvalidMessage("oversized", f"{len(raw)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        msg = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # NaN and ±Infinity are not JSON (Python's json.dumps writes them anyway); orjson refuses them, and numbers
        # beyond a double, so tell those apart from plain garbage.
        reason = "not_finite" if "infinity" in str(exc) or NON_FINITE_TOKEN.search(raw) else "not_json"
        raise InvalidMessage(reason, str(exc)[:120]) from None
    if type(msg) is not dict:
        raise InvalidMessage("wrong_type", "message is not a JSON object")
    version = msg.get("v")
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise InvalidMessage("unknown_schema_version", repr(version)[:40])
    try:
        machine_id, ts, items = msg["machine_id"], msg["ts"], msg["readings"]
    except KeyError as exc:
        raise InvalidMessage("missing_field", str(exc)) from None
    machine_id = _identifier(machine_id, "machine_id")
    if type(ts) is not int or not MIN_TS_MS <= ts <= MAX_TS_MS:
        raise InvalidMessage("wrong_type", f"ts={ts!r:.40}")
    if type(items) is not list or not 0 < len(items) <= MAX_READINGS_PER_MESSAGE:
        raise InvalidMessage("wrong_type", "readings must be a non-empty list")
    columns = _cleared_columns(items) or _checked_columns(items)
    return _new_tuple(MessageReadings, (machine_id, ts, version, *columns))  # MessageReadings(...) minus ~1 µs


class DecodedMessages(NamedTuple):
    """Many messages decoded at once: their valid readings as columns (COLUMNS order), how many readings each
    message gave (0 for an invalid one), and what was wrong with each invalid one, by index."""

    columns: tuple[Sequence, ...]
    counts: list[int]
    invalid: list[tuple[int, InvalidMessage]]


def decode_many(raws: Sequence[bytes]) -> DecodedMessages:
    """What decode_columns() does for each message, for a whole run of messages at once: the ingest's hot path.

    Whole-run checks (at C speed) clear a run of good messages without a Python loop over them; a run with anything
    off is decoded message by message, to find which ones are wrong and why.
    """
    return _cleared_messages(raws) or _checked_messages(raws)


# Sensor lists (one message's sensor ids, in order) seen with no sensor twice: most messages repeat their machine's
# list, so a set lookup tells that two of a message's readings cannot share a key (bounded like _KNOWN_IDENTIFIERS).
_DISTINCT_SENSORS: set[tuple[str, ...]] = set()
# A reading's key in the raw table (its ORDER BY): readings with the same key are folded into one.
ReadingKey = tuple[str, str, int, int]  # machine_id, sensor_id, ts_ms, seq
_Seen = tuple[float, str, str, int]  # value, kind, unit, and the offset of the message it came in


def without_conflicts(decoded: DecodedMessages, offsets: Sequence[int]) -> DecodedMessages:
    """The run without its messages that contradict a reading landed before them in the run, each one added to
    ``invalid`` as ``conflicting_duplicate`` naming the key and both readings (``offsets`` name the messages).

    The raw table is a ReplacingMergeTree on (machine, sensor, event time, seq): an identical reading sent again
    (a redelivery, a replay) folds away, as it should, but two readings with that key and different values (kind,
    unit) are a producer bug, a clock or seq reset, and the merge would drop one without a word. The first one seen
    lands; a later message with any reading that contradicts it (or a message contradicting itself) is a dead
    letter. Identical duplicates land and fold, as before.

    Cheap on a run without conflicts (bench/ingest.py): the keys compared are one per message (machine, event time)
    and each message's sensor list (looked up among lists known to name no sensor twice), not one per reading;
    only a run where a key may repeat is compared reading by reading. Only this run is compared: a conflicting
    reading in a later run is not seen here (docs/ingest.md).
    """
    counts = decoded.counts
    machine_ids, sensor_ids, _, _, _, times, _, _ = decoded.columns
    ends = list(compress(accumulate(counts), counts))  # of the messages that gave readings
    if not ends:
        return decoded
    starts = [0, *ends[:-1]]
    if len(set(zip(map(machine_ids.__getitem__, starts), map(times.__getitem__, starts), strict=True))) == len(starts):
        sensor_lists = sensor_ids if type(sensor_ids) is tuple else tuple(sensor_ids)
        lists = list(map(sensor_lists.__getitem__, map(slice, starts, ends)))
        if _DISTINCT_SENSORS.issuperset(lists):
            return decoded
        if all(len(set(sensors)) == len(sensors) for sensors in lists):
            if len(_DISTINCT_SENSORS) < _KNOWN_LIMIT:
                _DISTINCT_SENSORS.update(lists)
            return decoded
    return _compared(decoded, offsets)


def _compared(decoded: DecodedMessages, offsets: Sequence[int]) -> DecodedMessages:
    """without_conflicts() reading by reading: the run where some key may repeat."""
    machine_ids, sensor_ids, kinds, values, units, times, seqs, _ = decoded.columns
    seen: dict[ReadingKey, _Seen] = {}  # the first reading of each key, from the messages that land
    conflicting: list[tuple[int, InvalidMessage]] = []
    start = 0
    for index, count in enumerate(decoded.counts):
        mine: dict[ReadingKey, _Seen] = {}
        conflict = None
        for i in range(start, start + count):
            key = (machine_ids[i], sensor_ids[i], times[i], seqs[i])
            reading = (values[i], kinds[i], units[i], offsets[index])
            first = seen.get(key) or mine.get(key)
            if first is None:
                mine[key] = reading
            elif first[:3] != reading[:3]:
                conflict = _conflict(key, first, reading)
                break
        start += count
        if conflict is not None:
            conflicting.append((index, conflict))
        else:
            seen.update(mine)
    if not conflicting:
        return decoded
    dropped = {index for index, _ in conflicting}
    keep = [index not in dropped for index, count in enumerate(decoded.counts) for _ in range(count)]
    columns = tuple(list(compress(column, keep)) for column in decoded.columns)
    counts = [0 if index in dropped else count for index, count in enumerate(decoded.counts)]
    return DecodedMessages(columns, counts, sorted([*decoded.invalid, *conflicting], key=itemgetter(0)))


def _conflict(key: ReadingKey, first: _Seen, later: _Seen) -> InvalidMessage:
    machine_id, sensor_id, ts, seq = key
    return InvalidMessage(
        "conflicting_duplicate",
        f"machine_id={machine_id} sensor_id={sensor_id} ts={ts} seq={seq}: value={later[0]!r} kind={later[1]} "
        f"unit={later[2]!r} conflicts with value={first[0]!r} kind={first[1]} unit={first[2]!r} first seen at "
        f"offset {first[3]}",
    )


def _spread(values: Sequence, counts: list[int]) -> list:
    """Each value repeated for its message's readings."""
    return list(chain.from_iterable(map(repeat, values, counts)))


class _WireReading(msgspec.Struct, gc=False):
    sensor_id: str
    kind: str
    value: float  # a JSON integer is taken too, as a float
    unit: str
    seq: Annotated[int, msgspec.Meta(ge=0)]


class _WireMessage(msgspec.Struct, gc=False):
    """The wire format as types, for msgspec to check while it parses (a fast path: see _cleared_messages)."""

    v: int
    machine_id: str
    ts: Annotated[int, msgspec.Meta(ge=MIN_TS_MS, le=MAX_TS_MS)]
    readings: Annotated[list[_WireReading], msgspec.Meta(min_length=1, max_length=MAX_READINGS_PER_MESSAGE)]


_decode_wire = msgspec.json.Decoder(_WireMessage).decode
_MESSAGE_ATTRS = attrgetter("v", "machine_id", "ts", "readings")
_READING_ATTRS = attrgetter("sensor_id", "kind", "value", "unit", "seq")


def _cleared_messages(raws: Sequence[bytes]) -> DecodedMessages | None:
    """The run's columns if every message clears the checks decode_columns makes; None otherwise.

    msgspec checks the structure and types while it parses each message (on its own: never joined into one JSON
    array, which would let a message's bytes complete its neighbour's); what is left is checked a whole column at a
    time: versions, finite values, identifiers and units among those already matched against their patterns.
    """
    if not raws or max(map(len, raws)) > MAX_MESSAGE_BYTES:
        return None
    try:
        messages = list(map(_decode_wire, raws))
    except (msgspec.DecodeError, RecursionError):  # deep nesting in a field the wire format ignores, too
        return None
    versions, machine_ids, times, items = zip(*map(_MESSAGE_ATTRS, messages), strict=True)
    if not SUPPORTED_VERSIONS.issuperset(versions) or not _KNOWN_IDENTIFIERS.issuperset(machine_ids):
        return None
    counts = list(map(len, items))
    sensor_ids, kinds, values, units, seqs = zip(*map(_READING_ATTRS, chain.from_iterable(items)), strict=True)
    if not all(map(isfinite, values)):
        return None
    if not (
        _KNOWN_IDENTIFIERS.issuperset(sensor_ids)
        and _KNOWN_IDENTIFIERS.issuperset(kinds)
        and _KNOWN_UNITS.issuperset(units)
    ):
        return None
    return DecodedMessages(
        (_spread(machine_ids, counts), sensor_ids, kinds, values, units, _spread(times, counts), seqs,
         _spread(versions, counts)),
        counts,
        [],
    )  # fmt: skip


def _checked_messages(raws: Sequence[bytes]) -> DecodedMessages:
    columns: tuple[list, ...] = tuple([] for _ in COLUMNS)
    counts: list[int] = []
    invalid: list[tuple[int, InvalidMessage]] = []
    for index, raw in enumerate(raws):
        try:
            readings = decode_columns(raw)
        except InvalidMessage as exc:
            invalid.append((index, exc))
            counts.append(0)
            continue
        except Exception as exc:  # whatever a message does to the decoder, it is that message's fault
            invalid.append((index, InvalidMessage("undecodable", f"{type(exc).__name__}: {str(exc)[:200]}")))
            counts.append(0)
            continue
        for column, values in zip(columns, readings.columns(), strict=True):
            column.extend(values)
        counts.append(len(readings.values))
    return DecodedMessages(columns, counts, invalid)


def _cleared_columns(items: list) -> tuple[Sequence, ...] | None:
    """The readings' columns if whole-column checks (at C speed) clear them all; None sends them one by one.

    Clears only what _checked_columns accepts: every reading an object with the five fields, values float (or int),
    finite, seqs non-negative ints, identifiers and units among those already matched against their patterns.
    """
    if set(map(type, items)) != _DICT:
        return None
    try:
        sensor_ids, kinds, values, units, seqs = zip(*map(_READING_FIELDS, items), strict=True)
    except KeyError:
        return None
    value_types = set(map(type, values))
    if value_types != _FLOAT:
        if not value_types <= _NUMBER:
            return None
        values = tuple(map(float, values))
    if not all(map(isfinite, values)) or set(map(type, seqs)) != _INT or min(seqs) < 0:
        return None
    try:
        known = _KNOWN_IDENTIFIERS.issuperset(sensor_ids) and _KNOWN_IDENTIFIERS.issuperset(kinds)
        if not (known and _KNOWN_UNITS.issuperset(units)):
            return None
    except TypeError:  # an unhashable identifier
        return None
    return sensor_ids, kinds, values, units, seqs


def _checked_columns(items: list) -> tuple[Sequence, ...]:
    """Reading by reading: the columns, or InvalidMessage naming the first thing wrong."""
    sensor_ids, kinds, values, units, seqs = [], [], [], [], []
    for item in items:
        if type(item) is not dict:
            raise InvalidMessage("wrong_type", "a reading is not an object")
        try:
            sensor_id, kind, value, unit, seq = _READING_FIELDS(item)
        except KeyError as exc:
            raise InvalidMessage("missing_field", str(exc)) from None
        if type(value) is not float:
            if type(value) is not int:
                raise InvalidMessage("wrong_type", f"value={value!r:.40}")
            value = float(value)
        if not isfinite(value):
            raise InvalidMessage("not_finite", f"value={value!r}")
        if type(seq) is not int or seq < 0:
            raise InvalidMessage("wrong_type", f"seq={seq!r:.40}")
        units.append(_checked(unit, "unit", UNIT, _KNOWN_UNITS))
        sensor_ids.append(_checked(sensor_id, "sensor_id", IDENTIFIER, _KNOWN_IDENTIFIERS))
        kinds.append(_checked(kind, "kind", IDENTIFIER, _KNOWN_IDENTIFIERS))
        values.append(value)
        seqs.append(seq)
    return sensor_ids, kinds, values, units, seqs


def readings_table(columns: Sequence[Sequence]) -> pa.Table:
    """Readings as Python columns (COLUMNS order, event times in epoch milliseconds) as an Arrow table."""
    return pa.Table.from_arrays(
        [pa.array(column, type=field.type) for column, field in zip(columns, ARROW_SCHEMA, strict=True)],
        schema=ARROW_SCHEMA,
    )


def table_columns(table: pa.Table) -> tuple[list, ...]:
    """readings_table() undone: Python columns in COLUMNS order, event times in epoch milliseconds."""
    return tuple(
        (column.cast(pa.int64()) if pa.types.is_timestamp(column.type) else column).to_pylist()
        for column in table.columns
    )


class DecodedRun(NamedTuple):
    """A run of messages decoded and checked for conflicting duplicates: its valid readings as an Arrow table
    (ARROW_SCHEMA), how many readings each message gave (0: invalid) and what was wrong with each invalid one."""

    readings: pa.Table
    counts: list[int]
    invalid: list[tuple[int, InvalidMessage]]


def decode_run(raws: Sequence[bytes], offsets: Sequence[int]) -> DecodedRun:
    """``without_conflicts(decode_many(raws), offsets)`` as an Arrow table: the ingest's hot path.

    A clean run (every message valid, no reading key twice) goes from msgspec's structs straight into typed Arrow
    columns, a whole column at a time, with its checks made on those columns; anything else goes through
    decode_many and without_conflicts, which decide what is wrong and why.
    """
    cleared = _cleared_run(raws)
    if cleared is not None:
        return cleared
    decoded = without_conflicts(decode_many(raws), offsets)
    return DecodedRun(readings_table(decoded.columns), decoded.counts, decoded.invalid)


_SENSOR_ID, _KIND, _VALUE, _UNIT, _SEQ = map(attrgetter, ("sensor_id", "kind", "value", "unit", "seq"))
_VERSION, _MACHINE_ID, _TS, _READINGS = map(attrgetter, ("v", "machine_id", "ts", "readings"))
# Multipliers folding a reading's key into one int64 (wrapping): equal keys give equal hashes, so as many distinct
# hashes as readings means no key twice; a collision only sends the run to the slow path.
_KEY_MIX = (1_000_003, 998_244_353, 1_000_000_007)


def _cleared_run(raws: Sequence[bytes]) -> DecodedRun | None:
    """The run as an Arrow table if every message clears decode_columns' checks and no reading key repeats (what
    decode_many and without_conflicts would return, with nothing invalid); None otherwise, for them to decide.

    The checks are _cleared_messages' (msgspec checks the structure and types while it parses each message;
    versions, finite values, identifiers and units among those already matched against their patterns are checked
    a column at a time), and the conflict check is without_conflicts' cheap one, on Arrow columns.
    """
    if not raws or max(map(len, raws)) > MAX_MESSAGE_BYTES:
        return None
    try:
        return _cleared_structs(list(map(_decode_wire, raws)))
    except Exception:  # msgspec refused a message, or a value Arrow cannot hold (a seq past int64): the slow path
        return None


def _cleared_structs(messages: list[_WireMessage]) -> DecodedRun | None:
    versions, machine_ids = list(map(_VERSION, messages)), list(map(_MACHINE_ID, messages))
    if not SUPPORTED_VERSIONS.issuperset(versions) or not _KNOWN_IDENTIFIERS.issuperset(machine_ids):
        return None
    times, items = list(map(_TS, messages)), list(map(_READINGS, messages))
    readings = list(chain.from_iterable(items))
    values = pa.array(list(map(_VALUE, readings)), pa.float64())
    if not pc.all(pc.is_finite(values)).as_py():
        return None
    sensor_ids = pa.array(list(map(_SENSOR_ID, readings)), pa.string())
    kinds = pa.array(list(map(_KIND, readings)), pa.string())
    units = pa.array(list(map(_UNIT, readings)), pa.string())
    sensors = sensor_ids.dictionary_encode()
    if not (
        _KNOWN_IDENTIFIERS.issuperset(sensors.dictionary.to_pylist())
        and _KNOWN_IDENTIFIERS.issuperset(pc.unique(kinds).to_pylist())
        and _KNOWN_UNITS.issuperset(pc.unique(units).to_pylist())
    ):
        return None
    counts = list(map(len, items))
    message_indices = np.repeat(np.arange(len(messages), dtype=np.int64), counts)
    parents = pa.array(message_indices)
    machine_column = pa.array(machine_ids, pa.string())
    message_times = pa.array(times, pa.int64())
    reading_times = message_times.take(parents)
    seqs = pa.array(list(map(_SEQ, readings)), pa.int64())
    machines = machine_column.dictionary_encode()
    if not _keys_distinct(message_indices, machines, sensors, message_times, reading_times, seqs):
        return None  # some key twice, maybe: without_conflicts tells identical duplicates from conflicting ones
    columns = [
        machine_column.take(parents), sensor_ids, kinds, values, units,
        reading_times.cast(ARROW_SCHEMA.field("event_time").type), seqs.cast(pa.uint64()),
        pa.array(versions, pa.uint8()).take(parents),
    ]  # fmt: skip
    return DecodedRun(pa.Table.from_arrays(columns, schema=ARROW_SCHEMA), counts, [])


def _keys_distinct(
    parents: np.ndarray,
    machines: pa.DictionaryArray,
    sensors: pa.DictionaryArray,
    times: pa.Array,
    reading_times: pa.Array,
    seqs: pa.Array,
) -> bool:
    """True if no reading key (machine, sensor, event time, seq) is there twice; False if one may be.

    As in without_conflicts, cheap first: each message's (machine, event time) distinct and no sensor twice in a
    message (one hash a message, one a reading); else each reading's whole key hashed. Sorted, not hashed again:
    numpy sorts these (nearly sorted) int64 faster than Arrow counts distinct values."""
    machine_codes = machines.indices.to_numpy().astype(np.int64)
    sensor_codes = sensors.indices.to_numpy().astype(np.int64)
    if _distinct(times.to_numpy() * _KEY_MIX[0] + machine_codes) and _distinct(parents * _KEY_MIX[1] + sensor_codes):
        return True
    keys = reading_times.to_numpy() * _KEY_MIX[0] + seqs.to_numpy()
    keys = keys * _KEY_MIX[1] + machine_codes[parents]
    return _distinct(keys * _KEY_MIX[2] + sensor_codes)


def _distinct(keys: np.ndarray) -> bool:
    ordered = np.sort(keys)
    return not (ordered[1:] == ordered[:-1]).any()
