"""The ingest's hot path, plantwatch.reading.decode_columns, agrees with the reading-by-reading checks: whatever its
whole-column checks clear, the slow path accepts with the same columns; whatever the slow path rejects, they do
not clear. Randomised messages, fixed seed."""

from __future__ import annotations

import random

import pytest

from plantwatch import reading
from plantwatch.reading import InvalidMessage, decode, decode_columns, encode

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
