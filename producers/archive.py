"""The local archive: every wire message as a JSON line, zstd-compressed, partitioned by event date and machine.

Layout: ``<archive>/date=YYYY-MM-DD/machine=<id>/part-<n>.jsonl.zst`` with ``n`` counting up per machine across
dates. A segment holds independent zstd frames (one block of lines each, written with a single write), so
``zstdcat`` reads it, a reader can start at any frame, and a crash can at worst cut off the last frame. A new
segment begins at each new event date, past ``archive_segment_bytes``, and for each new process (a process never
appends to a file an earlier one may have left half-written). Segments older than ``archive_retention_days`` (by
event date) are deleted at rotation, except those Kafka may still need.

Each :class:`MachineArchive` also keeps its *ledger*: the frames written since the first message Kafka has not yet
acknowledged, with the index of their first message. The SDK logger reads its backlog back through it and turns
"delivered up to message i" into a position (segment, frame offset, lines to skip) that it persists as its cursor.
"""

from __future__ import annotations

import logging
import os
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import orjson

from plantwatch.settings import ProducerSettings

try:
    from compression import zstd  # Python 3.14+
except ImportError:
    from backports import zstd

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
SEGMENT = re.compile(r"part-(\d+)\.jsonl\.zst")


@dataclass(frozen=True, slots=True)
class Position:
    """Where a machine's undelivered messages begin: the frame at ``offset`` of its segment number ``part``, after
    ``skip`` of its lines."""

    part: int
    offset: int
    skip: int


@dataclass(frozen=True, slots=True)
class Frame:
    segment: Path
    offset: int
    length: int
    first: int  # the machine's message index of the frame's first line (counted in this process)
    count: int


def day_of(ts_ms: int) -> date:
    return datetime.fromtimestamp(ts_ms // DAY_MS * 86_400, UTC).date()


def machine_dirs(root: Path, machine_id: str) -> list[Path]:
    return sorted(root.glob(f"date=*/machine={machine_id}"))


def segments(root: Path, machine_id: str) -> list[Path]:
    """A machine's segment files, oldest first."""
    found = [p for d in machine_dirs(root, machine_id) for p in d.iterdir() if SEGMENT.fullmatch(p.name)]
    return sorted(found, key=_part)


def read_frames(path: Path, offset: int = 0) -> Iterator[tuple[int, int, list[bytes]]]:
    """(offset, length, lines) of each complete frame of a segment from offset on; stops at a cut-off frame."""
    data = memoryview(path.read_bytes())  # slices of a view do not copy
    while offset < len(data):
        try:
            length = zstd.get_frame_size(data[offset:])
            lines = zstd.decompress(data[offset : offset + length]).splitlines()
        except (zstd.ZstdError, ValueError):
            log.warning("%s: unreadable frame at byte %d (cut off by a crash?); the rest is skipped", path, offset)
            return
        yield offset, length, lines
        offset += length


def iter_segment(path: Path) -> Iterator[bytes]:
    for _, _, lines in read_frames(path):
        yield from lines


class MachineArchive:
    """One machine's archive stream, written in blocks; also the ledger of frames not yet known delivered."""

    def __init__(self, root: Path, machine_id: str, config: ProducerSettings) -> None:
        self.root = root
        self.machine_id = machine_id
        self.block_bytes = config.archive_block_bytes
        self.segment_bytes = config.archive_segment_bytes
        self.level = config.archive_zstd_level
        self.retention_days = config.archive_retention_days
        self.buffer: list[bytes] = []
        self.buffer_bytes = 0
        self.buffer_day = -1
        self.appended = 0  # messages appended (flushed or not)
        self.flushed = 0  # messages written to disk
        self.frames: deque[Frame] = deque()
        existing = segments(root, machine_id)
        self.next_part = _part(existing[-1]) + 1 if existing else 1
        self.segment: Path | None = None
        self.segment_day = -1
        self.file = None
        self.size = 0
        self._cache: tuple[Frame, list[bytes]] | None = None

    def recover(self, position: Position) -> int:
        """Take into the ledger what earlier processes archived from ``position`` on, and return how many of
        those messages to skip (already delivered). Call before appending anything."""
        todo = [p for p in segments(self.root, self.machine_id) if _part(p) >= position.part]
        skip = 0
        for path in todo:
            first = _part(path) == position.part
            for frame_offset, length, lines in read_frames(path, position.offset if first else 0):
                if first and frame_offset == position.offset:
                    skip = min(position.skip, len(lines))
                self.frames.append(Frame(path, frame_offset, length, self.appended, len(lines)))
                self.appended += len(lines)
        self.flushed = self.appended
        return skip

    def append(self, ts_ms: int, payload: bytes) -> int:
        """Archive one message (it becomes message number ``appended - 1``); returns the bytes written to disk."""
        written = 0
        if ts_ms // DAY_MS != self.buffer_day:
            written = self.flush()
            self.buffer_day = ts_ms // DAY_MS
        self.buffer.append(payload)
        self.buffer_bytes += len(payload) + 1
        self.appended += 1
        if self.buffer_bytes >= self.block_bytes:
            written += self.flush()
        return written

    def flush(self) -> int:
        """Compress the buffered lines into one frame and write it; returns the bytes written."""
        if not self.buffer:
            return 0
        frame = zstd.compress(b"\n".join(self.buffer) + b"\n", self.level)
        if self.file is None or self.buffer_day != self.segment_day or self.size + len(frame) > self.segment_bytes:
            self._rotate()
        self.file.write(frame)
        self.file.flush()
        self.frames.append(Frame(self.segment, self.size, len(frame), self.flushed, len(self.buffer)))
        self.size += len(frame)
        self.flushed += len(self.buffer)
        self.buffer = []
        self.buffer_bytes = 0
        return len(frame)

    def _rotate(self) -> None:
        self.close()
        day = datetime.fromtimestamp(self.buffer_day * 86_400, UTC).date()
        folder = self.root / f"date={day.isoformat()}" / f"machine={self.machine_id}"
        folder.mkdir(parents=True, exist_ok=True)
        self.segment = folder / f"part-{self.next_part:08d}.jsonl.zst"
        self.next_part += 1
        self.segment_day = self.buffer_day
        self.file = open(self.segment, "ab")  # noqa: SIM115 - kept open across calls, closed by close()
        self.size = 0
        if self.retention_days is not None:
            self._prune(self.segment_day - self.retention_days)

    def _prune(self, before_day: int) -> None:
        """Delete segments of event days before ``before_day`` (days since 1970) unless Kafka may still need them:
        those from the oldest frame in the ledger on are kept whatever their age."""
        needed = _part(self.frames[0].segment) if self.frames else _part(self.segment)
        for path in segments(self.root, self.machine_id):
            day = date.fromisoformat(path.parent.parent.name.removeprefix("date=")).toordinal() - EPOCH_ORDINAL
            if day < before_day and _part(path) < needed:
                path.unlink()
                log.info("archive retention: removed %s", path)
                for folder in (path.parent, path.parent.parent):
                    if not any(folder.iterdir()):
                        folder.rmdir()

    def read(self, index: int) -> list[bytes]:
        """Archived messages from ``index`` on: the rest of the frame holding it, or the buffered lines."""
        if index >= self.flushed:
            return self.buffer[index - self.flushed :]
        for frame in self.frames:
            if frame.first <= index < frame.first + frame.count:
                if self._cache is None or self._cache[0] is not frame:
                    with open(frame.segment, "rb") as f:
                        f.seek(frame.offset)
                        self._cache = (frame, zstd.decompress(f.read(frame.length)).splitlines())
                return self._cache[1][index - frame.first :]
        raise LookupError(f"{self.machine_id}: message {index} is no longer in the ledger")

    def position(self, delivered: int) -> Position:
        """The cursor after ``delivered`` messages; drops the frames before it from the ledger."""
        while self.frames and self.frames[0].first + self.frames[0].count <= delivered:
            self.frames.popleft()
        if self.frames:
            frame = self.frames[0]
            return Position(_part(frame.segment), frame.offset, delivered - frame.first)
        if self.segment is None:  # nothing written by this process yet: its first frame starts the next part
            return Position(self.next_part, 0, delivered - self.flushed)
        return Position(_part(self.segment), self.size, delivered - self.flushed)

    def close(self) -> None:
        if self.file is not None:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.file = None


def _part(path: Path) -> int:
    return int(SEGMENT.fullmatch(path.name).group(1))


def iter_range(root: Path, from_ms: int, to_ms: int, machines: set[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """(machine id, message) for every archived message with from_ms <= ts < to_ms, in order per machine."""
    first, last = day_of(from_ms), day_of(to_ms - 1)
    found = sorted({d.name.removeprefix("machine=") for d in root.glob("date=*/machine=*")})
    for machine_id in found:
        if machines is not None and machine_id not in machines:
            continue
        for path in segments(root, machine_id):
            day = date.fromisoformat(path.parent.parent.name.removeprefix("date="))
            if not first <= day <= last:
                continue
            for line in iter_segment(path):
                if from_ms <= orjson.loads(line)["ts"] < to_ms:
                    yield machine_id, line
