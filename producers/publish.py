"""Publishing a run of messages through the SDK logger: what the simulator and the CSV replay share.

:func:`publish_run` opens the logger, paces the messages in wall-clock time (serving the logger while it waits),
stops at a reading limit or when told to, and closes the logger (its last block written, the rest delivered, its
cursor saved); :func:`save_labels` records a run's ground-truth labels.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from plantwatch.producers.faults import FaultLabel
from plantwatch.producers.labels import labels_path, record_labels
from plantwatch.producers.sdk_logger import SdkLogger
from plantwatch.settings import Settings

Message = tuple[str, int, list[dict]]  # (machine_id, ts_ms, readings)
# Given a message's event time and the readings published before it: how many seconds after the run began it is
# due, or None to send it at once.
Pace = Callable[[int, int], float | None]


@dataclass(frozen=True)
class Published:
    readings: int
    messages: int
    seconds: float  # wall clock, the logger's close included
    delivered: bool  # everything acknowledged by Kafka when the logger closed


def publish_run(
    settings: Settings,
    messages: Iterable[Message],
    *,
    archive: bool = True,
    pace: Pace | None = None,
    limit: float = math.inf,
    stop: threading.Event | None = None,
    flush_timeout: float = 60.0,
) -> Published:
    """Every message through a new SDK logger, at most ``limit`` readings (the last message cut to fit), until
    ``stop`` is set (a SIGTERM: the logger is then closed between two messages, never inside its bookkeeping)."""
    began = time.monotonic()
    logger = SdkLogger(settings, archive=archive)
    try:
        for machine_id, ts, readings in messages:
            if pace is not None and (due := pace(ts, logger.stats.readings)) is not None:
                while (wait := due - (time.monotonic() - began)) > 0 and not (stop and stop.is_set()):
                    time.sleep(min(wait, 0.1))
                    logger.service()
            if stop is not None and stop.is_set():
                break
            room = limit - logger.stats.readings
            if len(readings) >= room:
                logger.log(machine_id, ts, readings[: int(room)])
                break
            logger.log(machine_id, ts, readings)
    finally:
        delivered = logger.close(flush_timeout)
    return Published(logger.stats.readings, logger.stats.messages, time.monotonic() - began, delivered)


def save_labels(settings: Settings, run_id: str, labels: Sequence[FaultLabel]) -> tuple[Path, bool]:
    """A run's labels to their file and ClickHouse: the file, and whether ClickHouse took them."""
    path = labels_path(settings, run_id)
    return path, record_labels(settings, labels, path)
