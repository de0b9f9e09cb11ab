"""The ingest's hot paths agree with the reading-by-reading checks: whatever decode_columns' whole-column checks and
decode_many's run-at-once checks clear, the slow path accepts with the same columns; whatever the slow path rejects,
they do not clear. Randomised messages, fixed seed."""

from __future__ import annotations

import json
import random

import pytest

from plantwatch import reading
from plantwatch.reading import InvalidMessage, decode, decode_columns, decode_many, encode, without_conflicts

GOOD = {"sensor_id": "temp", "kind": "temperature", "value": 71.5, "unit": "C", "seq": 3}
ODD_VALUES = [
    None, True, False, 0, -1, 2**63, 1.5, -0.0, "x", "", " ", "bad id!", "a" * 80, [], {}, ["temp"], float("inf"),
    float("nan"), "°C", "mm/s", "temp", "temperature",
]  # fmt: skip


def mutated(rng: random.Random) -> list:
    items = []
    for _ in range(rng.randint(1, 6)):
        item = dict(GOOD, sensor_id=rng.choice(["temp", "vib", "a.b:c-d", "x"]), value=rng.uniform(-1e3, 1e3))
        if rng.random() < 0.5:
            field = rng.choice(list(GOOD))
            if rng.random() < 0.2:
                del item[field]
            else:
                item[field] = rng.choice(ODD_VALUES)
        items.append(item if rng.random() > 0.05 else rng.choice(ODD_VALUES))
    return items


def test_fast_path_clears_only_what_the_slow_path_accepts() -> None:
    rng = random.Random(7)
    cleared = rejected = 0
    for _ in range(5000):
        items = mutated(rng)
        try:
            slow = reading._checked_columns(items)
        except InvalidMessage:
            slow = None
            rejected += 1
        fast = reading._cleared_columns(items)
        if fast is not None:
            cleared += 1
            assert slow is not None, items
            assert [list(c) for c in fast] == [list(c) for c in slow], items
    assert cleared > 500 and rejected > 500  # both paths were exercised


def mutated_message(rng: random.Random) -> bytes:
    """A message, good or wrong anywhere: its fields, its readings, its JSON, its size."""
    message: dict = {"v": 1, "machine_id": rng.choice(["L1-M01", "M2", "L1-M01"]), "ts": 1_764_291_600_000}
    message["readings"] = mutated(rng) if rng.random() < 0.2 else [dict(GOOD, seq=rng.randint(0, 9))]
    if rng.random() < 0.15:
        field = rng.choice(["v", "machine_id", "ts", "readings"])
        if rng.random() < 0.2:
            del message[field]
        else:
            message[field] = rng.choice([*ODD_VALUES, 2, 10**14, 10**15, -5, 1.0 * 10**12])
    raw = json.dumps(message).encode()  # json, unlike orjson, writes NaN and Infinity as the bare tokens
    odd = [raw[:-1], b"[" + raw + b"]", raw + b" " * 70_000, b"null", raw.replace(b"71.5", b"1e999")]
    return rng.choice(odd) if rng.random() < 0.05 else raw


def test_run_at_once_agrees_with_each_message_on_its_own() -> None:
    rng = random.Random(11)
    fast_runs = 0
    for _ in range(400):
        raws = [mutated_message(rng) for _ in range(rng.randint(1, 8) if rng.random() < 0.5 else 1)]
        expected_columns: list[list] = [[] for _ in reading.COLUMNS]
        expected_counts, expected_invalid = [], []
        for index, raw in enumerate(raws):
            try:
                columns = decode_columns(raw).columns()
            except InvalidMessage as exc:
                expected_counts.append(0)
                expected_invalid.append((index, exc.reason))
                continue
            for column, values in zip(expected_columns, columns, strict=True):
                column.extend(values)
            expected_counts.append(len(columns[0]))
        fast_runs += reading._cleared_messages(raws) is not None
        got = decode_many(raws)
        assert got.counts == expected_counts, raws
        assert [(index, exc.reason) for index, exc in got.invalid] == expected_invalid, raws
        assert [[(type(v), v) for v in c] for c in got.columns] == [[(type(v), v) for v in c] for c in expected_columns]
    assert fast_runs > 100  # the fast path was exercised, not only the fallback


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{", "not_json"),
        (b"[1]", "wrong_type"),
        (b'{"v": 1, "machine_id": "M", "ts": 5, "readings": [{"value": NaN}]}', "not_finite"),
        (b'{"v": [1], "machine_id": "M"}', "unknown_schema_version"),
        (b'{"v": 1, "machine_id": "M", "ts": 5}', "missing_field"),
        (b" " * 70_000, "oversized"),
        (encode("M", 5, [dict(GOOD, value=True)]), "wrong_type"),
        (encode("M", 5, [dict(GOOD, unit="no;unit")]), "bad_identifier"),
    ],
)
def test_reasons(value: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as info:
        decode_columns(value)
    assert info.value.reason == reason


def test_columns_rows_and_readings_agree() -> None:
    raw = encode("L1-M01", 1_764_291_600_000, [GOOD, dict(GOOD, sensor_id="vib", kind="vibration", value=2, seq=4)])
    columns = decode_columns(raw)
    assert list(columns.values) == [71.5, 2.0] and columns.machine_id == "L1-M01"
    assert [tuple(r.__getattribute__(f) for f in r.__slots__) for r in decode(raw)] == columns.rows()


def conflicting_reference(raws: list[bytes]) -> list[int]:
    """The messages a run dead-letters as conflicting, reading by reading: one whose reading has the key of a reading
    landed earlier in the run, or of one earlier in the message, with another value, kind or unit."""
    seen: dict[tuple, tuple] = {}
    conflicting = []
    for index, raw in enumerate(raws):
        mine: dict[tuple, tuple] = {}
        for r in decode(raw):
            key, rest = (r.machine_id, r.sensor_id, r.ts_ms, r.seq), (r.value, r.kind, r.unit)
            if seen.get(key, mine.get(key, rest)) != rest:
                conflicting.append(index)
                break
            mine.setdefault(key, rest)
        else:
            seen.update(mine)
    return conflicting


def test_conflicting_duplicates_found_as_reading_by_reading() -> None:
    """Whatever the cheap whole-run checks let through has no conflict; what they do not is compared exactly."""
    rng = random.Random(17)
    found = 0
    for _ in range(3000):
        raws = []
        for _ in range(rng.randint(1, 6)):
            items = [
                dict(GOOD, sensor_id=rng.choice(["temp", "vib", "amps"]), seq=rng.randint(0, 1),
                     value=rng.choice([1.0, 1.0, 2.0]), unit=rng.choice(["C", "C", "C", "F"]))
                for _ in range(rng.randint(1, 3))
            ]  # fmt: skip
            raws.append(encode(rng.choice(["M1", "M2"]), rng.choice([5, 6, 7]), items))
        expected = conflicting_reference(raws)
        found += bool(expected)
        got = without_conflicts(decode_many(raws), list(range(100, 100 + len(raws))))
        assert [index for index, _ in got.invalid] == expected, raws
        assert all(exc.reason == "conflicting_duplicate" for _, exc in got.invalid)
        landed = [raw for index, raw in enumerate(raws) if index not in expected]
        assert [list(c) for c in got.columns] == [list(c) for c in decode_many(landed).columns]
        assert [count for index, count in enumerate(got.counts) if index in expected] == [0] * len(expected)
    assert 500 < found < 2900  # runs with and without conflicts


def test_conflict_names_the_key_and_both_readings() -> None:
    one = encode("L1-M01", 5, [dict(GOOD, value=1.0)])
    two = encode("L1-M01", 5, [dict(GOOD, value=2.0)])
    got = without_conflicts(decode_many([one, two, one]), [40, 41, 42])
    assert got.counts == [1, 0, 1]
    [(index, exc)] = got.invalid
    assert index == 1 and exc.reason == "conflicting_duplicate"
    assert str(exc) == (
        "conflicting_duplicate: machine_id=L1-M01 sensor_id=temp ts=5 seq=3: value=2.0 kind=temperature unit='C' "
        "conflicts with value=1.0 kind=temperature unit='C' first seen at offset 40"
    )


def reference_run(raws: list[bytes], offsets: list[int]) -> tuple[list[list], list[int], list[tuple[int, str]]]:
    """What decode_run must give: decode_many then without_conflicts, as Python columns."""
    decoded = without_conflicts(decode_many(raws), offsets)
    return [list(c) for c in decoded.columns], decoded.counts, [(i, exc.reason) for i, exc in decoded.invalid]


HOSTILE_LINES = [
    b"", b"\n", b" ", b"{}", b"{}{}", b"\xef\xbb\xbf{}", b'{"v":1}\n{"v":1}', b"null", b"[]", b"1",
    b'{"v":1,"machine_id":"L1-M01","ts":5,"readings":[{"sensor_id":"temp","kind":"temperature","value":Infinity,'
    b'"unit":"C","seq":1}]}',
    b'{"v":1,"machine_id":"L1-M01","ts":5,"readings":[{"sensor_id":"temp","kind":"temperature","value":1,'
    b'"unit":"C","seq":1}],"x":NaN}',
    b'{"v":1,"machine_id":"L1-M01","ts":5,"readings":[{"sensor_id":"t\xff","kind":"temperature","value":1.5,'
    b'"unit":"C","seq":1}]}',
    b'{"v":1,"machine_id":"L1-M01","ts":5,"readings":[{"sensor_id":"temp","kind":"temperature","value":1.5,'
    b'"unit":"C","seq":1,"seq":2}]}',
]  # fmt: skip


def test_decode_run_gives_what_decode_many_and_without_conflicts_give() -> None:
    """The whole-run path into Arrow clears only runs the message-by-message checks accept whole, with the same
    readings; anything else (invalid messages, a key twice) goes the slow way."""
    rng = random.Random(23)
    machines = ["L1-M01", "L1-M02", "M2"]
    cleared_runs = 0
    for round_ in range(300):
        size = rng.choice([1, 2, 7, 40])
        raws = [
            encode(machines[i % 3], 1_764_291_600_000 + 1000 * (i // 3) + round_,
                   [dict(GOOD, sensor_id=s, seq=i, value=rng.uniform(-1e3, 1e3)) for s in ("temp", "vib")])
            for i in range(size)
        ]  # fmt: skip
        if rng.random() < 0.6:  # something off somewhere in the run
            where = rng.randrange(size)
            odd = rng.random()
            if odd < 0.4:
                raws[where] = mutated_message(rng)
            elif odd < 0.7:
                raws[where] = rng.choice(HOSTILE_LINES)
            elif odd < 0.85:
                raws[where] = raws[rng.randrange(size)]  # an identical duplicate
            else:
                raws[where] = raws[where].replace(b"vib", b"temp")  # a key twice in one message
        offsets = list(range(1000, 1000 + size))
        reference = reference_run(raws, offsets)
        cleared_runs += reading._cleared_run(raws) is not None
        got = reading.decode_run(raws, offsets)
        columns = [list(c) for c in reading.table_columns(got.readings)]
        assert (columns, got.counts, [(i, exc.reason) for i, exc in got.invalid]) == reference, raws
        assert got.readings.schema == reading.ARROW_SCHEMA
    assert 50 < cleared_runs < 250  # both paths exercised


def test_readings_table_round_trip() -> None:
    raws = [encode("L1-M01", 1_764_291_600_000 + i, [GOOD, dict(GOOD, sensor_id="vib")]) for i in range(40)]
    decoded = decode_many(raws)
    table = reading.readings_table(decoded.columns)
    assert [list(c) for c in reading.table_columns(table)] == [list(c) for c in decoded.columns]
    assert reading._cleared_run(raws).readings.equals(table)


def test_decode_run_clears_messages_sharing_an_instant_when_no_key_repeats() -> None:
    """Two messages of one machine at one instant (other sensors, or other seqs) have no key twice: the whole-run
    path takes them (each reading's key compared); a reading sent twice, identical or not, goes the slow way."""
    size = 40
    raws = [encode("L1-M01", 1_764_291_600_000 + i // 2, [dict(GOOD, sensor_id=("temp", "vib")[i % 2], seq=i)])
            for i in range(size)]  # fmt: skip
    offsets = list(range(size))
    decode_many(raws)
    assert reading._cleared_run(raws) is not None
    same_seq = [*raws[:-1], encode("L1-M01", 1_764_291_600_000, [dict(GOOD, seq=0)])]  # message 0's reading again
    assert reading._cleared_run(same_seq) is None
    for run in (raws, same_seq):
        got = reading.decode_run(run, offsets)
        assert ([list(c) for c in reading.table_columns(got.readings)], got.counts,
                [(i, exc.reason) for i, exc in got.invalid]) == reference_run(run, offsets)  # fmt: skip
