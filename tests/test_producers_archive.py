"""The archive on its own (files only): retention keeps what Kafka still needs, recovery skips what it has, and a
frame cut off by a crash costs only that frame."""

from __future__ import annotations

from pathlib import Path

import orjson

from plantwatch.producers.archive import DAY_MS, MachineArchive, iter_segment, segments
from plantwatch.settings import ProducerSettings

DAY0 = 20_000 * DAY_MS  # 2024-10-04


def message(ts_ms: int, n: int) -> bytes:
    return orjson.dumps({"ts": ts_ms, "n": n})


def days(root: Path, machine_id: str) -> list[str]:
    return [p.parent.parent.name for p in segments(root, machine_id)]


def test_retention_removes_old_delivered_segments_only(tmp_path: Path) -> None:
    config = ProducerSettings(archive_block_bytes=1, archive_retention_days=1)  # every message its own frame
    archive = MachineArchive(tmp_path, "M1", config)
    for day in range(3):
        for n in range(2):
            archive.append(DAY0 + day * DAY_MS + n, message(DAY0 + day * DAY_MS, n))
    assert days(tmp_path, "M1") == ["date=2024-10-04", "date=2024-10-05", "date=2024-10-06"]
    archive.position(3)  # Kafka acknowledged day 0 and half of day 1
    archive.append(DAY0 + 3 * DAY_MS, message(DAY0 + 3 * DAY_MS, 0))  # a new day: rotation, retention
    # Day 0 is old and delivered: gone. Day 1 is old but not all delivered: kept. Day 2 is recent.
    assert days(tmp_path, "M1") == ["date=2024-10-05", "date=2024-10-06", "date=2024-10-07"]
    assert not (tmp_path / "date=2024-10-04").exists()
    archive.close()


def test_recovery_skips_what_was_delivered_and_survives_a_cut_frame(tmp_path: Path) -> None:
    config = ProducerSettings(archive_block_bytes=100)
    first = MachineArchive(tmp_path, "M1", config)
    sent = [message(DAY0 + i, i) for i in range(40)]
    for i, payload in enumerate(sent):
        first.append(DAY0 + i, payload)
    first.flush()
    cursor = first.position(25)
    first.close()
    (segment,) = segments(tmp_path, "M1")
    with segment.open("ab") as f:
        f.write(b"\x28\xb5\x2f\xfd-a-frame-cut-off-by-a-crash")

    second = MachineArchive(tmp_path, "M1", config)
    skip = second.recover(cursor)  # the messages from the cursor's frame on, and how many of them were delivered
    assert second.appended - skip == len(sent) - 25
    rest: list[bytes] = []
    while skip + len(rest) < second.appended:
        rest += second.read(skip + len(rest))
    assert rest == sent[25:]
    assert list(iter_segment(segment)) == sent  # readers stop at the cut frame
    # A new process never appends to an old segment.
    second.append(DAY0 + 99, message(DAY0 + 99, 99))
    second.flush()
    assert len(segments(tmp_path, "M1")) == 2
    second.close()
