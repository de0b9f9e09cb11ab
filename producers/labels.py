"""Ground-truth fault labels: written to a JSON-lines file and to ClickHouse's fault_labels table."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import orjson

from plantwatch import warehouse
from plantwatch.producers.faults import FaultLabel
from plantwatch.settings import Settings

log = logging.getLogger(__name__)

# fault_labels columns we fill (plantwatch/sql/030_fault_labels.sql; recorded_at is ClickHouse's default).
LABEL_COLUMNS = ("run_id", "machine_id", "sensor_ids", "fault_kind", "severity", "start_time", "end_time", "source")


def labels_path(settings: Settings, run_id: str) -> Path:
    return settings.state_dir / settings.producer.labels_dir / f"{run_id}.jsonl"


def write_labels_file(path: Path, labels: Sequence[FaultLabel]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(asdict(label)) + b"\n" for label in labels))


def read_labels_file(path: Path) -> list[FaultLabel]:
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [FaultLabel(**{**row, "sensor_ids": tuple(row["sensor_ids"])}) for row in rows]


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def insert_labels(settings: Settings, labels: Sequence[FaultLabel]) -> None:
    if not labels:
        return
    rows = [
        [lb.run_id, lb.machine_id, list(lb.sensor_ids), lb.fault_kind, lb.severity, _utc(lb.start_ms),
         _utc(lb.end_ms), lb.source]
        for lb in labels
    ]  # fmt: skip
    client = warehouse.client(settings, role="ingest")  # producers append labels as the ingest user
    client.insert(settings.clickhouse.fault_labels_table, rows, column_names=LABEL_COLUMNS)


def record_labels(settings: Settings, labels: Sequence[FaultLabel], path: Path) -> bool:
    """The labels file first (it needs nothing running), then ClickHouse; False if ClickHouse failed.

    A warehouse that is down does not stop the readings: the file keeps the ground truth, to load later with
    ``insert_labels(settings, read_labels_file(path))``.
    """
    write_labels_file(path, labels)
    try:
        insert_labels(settings, labels)
    except Exception as exc:  # clickhouse-connect raises several kinds (connection, database, HTTP)
        log.warning("fault labels not written to ClickHouse (%s); they are in %s", exc, path)
        return False
    return True
