"""The SDK logger: the archive and Kafka hold the same messages, and `plantwatch archive replay` republishes a
time range from the archive."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY

from plantwatch.metrics import free_port
from plantwatch.producers.archive import iter_range, segments
from plantwatch.producers.faults import NO_FAULTS
from plantwatch.producers.plant import load_plant
from plantwatch.producers.sdk_logger import SdkLogger, archive_root, producer_config
from plantwatch.producers.simulator import run_simulation, simulate
from plantwatch.reading import decode, encode
from plantwatch.settings import Settings, environment
from tests.conftest import create_topics
from tests.fixtures.kafka_topic import read_topic

# Two minutes before midnight, so the run spans two date partitions.
START_MS = int(datetime(2026, 11, 27, 23, 58, tzinfo=UTC).timestamp() * 1000)
MIDNIGHT_MS = START_MS + 120_000
READINGS = 60_000


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def test_archive_and_kafka_hold_the_same_readings(isolated: Settings, kafka_admin: AdminClient, tmp_path: Path) -> None:
    producer = isolated.producer.model_copy(update={"archive_block_bytes": 16 << 10, "archive_segment_bytes": 8 << 10})
    settings = isolated.model_copy(update={"state_dir": tmp_path, "producer": producer})
    plant = load_plant(settings.producer.plant_file)
    readings_before, bytes_before = (
        metric("plantwatch_producer_readings_total"),
        metric("plantwatch_producer_archive_bytes_total"),
    )

    result = run_simulation(settings, plant, NO_FAULTS, seed=2, start_ms=START_MS, count=READINGS, rate=0)
    assert result.delivered and result.readings == READINGS

    root = archive_root(settings)
    archived = defaultdict(list)
    for machine_id, payload in iter_range(root, 0, 10**14):
        archived[machine_id].append(payload)
    in_kafka = defaultdict(list)
    for record in read_topic(settings):
        in_kafka[record.key.decode()].append(record.value)
    # Byte for byte the same messages, in the same order per machine.
    assert archived == in_kafka
    assert sum(len(decode(p)) for ps in archived.values() for p in ps) == READINGS
    # ... which are the simulator's readings.
    expected = defaultdict(list)
    for machine_id, ts, readings in simulate(plant, seed=2, start_ms=START_MS, duration_s=3600):
        expected[machine_id] += [(ts, r["sensor_id"], r["value"], r["seq"]) for r in readings]
    for machine_id, payloads in in_kafka.items():
        got = [(r.ts_ms, r.sensor_id, r.value, r.seq) for p in payloads for r in decode(p)]
        assert got == expected[machine_id][: len(got)]

    # Partitioned by date and machine, rotated by size, compressed.
    pump = segments(root, "L1-pump01")
    assert {p.parent.parent.name for p in pump} == {"date=2026-11-27", "date=2026-11-28"}
    assert len(pump) > 2
    files_bytes = sum(p.stat().st_size for p in root.rglob("*.jsonl.zst"))
    assert files_bytes < sum(len(p) for ps in archived.values() for p in ps) / 4
    assert metric("plantwatch_producer_readings_total") - readings_before == READINGS
    assert metric("plantwatch_producer_archive_bytes_total") - bytes_before == files_bytes

    # `plantwatch archive replay` republishes one time range (here: the first minute after midnight).
    again = f"{settings.kafka.readings_topic}.again"
    create_topics(kafka_admin, [again], settings.kafka.partitions)
    try:
        kafka = settings.kafka.model_copy(update={"readings_topic": again})
        env = {**os.environ, **environment(settings.model_copy(update={"kafka": kafka}))}
        cli = subprocess.run(
            [sys.executable, "-m", "plantwatch.cli", "archive", "replay", "--from", "2026-11-28T00:00:00",
             "--to", "2026-11-28T00:01:00"],
            capture_output=True, text=True, env=env, check=False, timeout=120,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        republished = [rec.readings() for rec in read_topic(settings, again)]
        window = [p for ps in archived.values() for p in ps if MIDNIGHT_MS <= decode(p)[0].ts_ms < MIDNIGHT_MS + 60_000]
        assert len(republished) == len(window) == 60 * len(plant.machines)
        assert sorted(r[0].ts_ms for r in republished) == sorted(decode(p)[0].ts_ms for p in window)
        assert f"republished {len(window)} messages" in cli.stderr
    finally:
        kafka_admin.delete_topics([again])


class WedgedFirstClient(SdkLogger):
    """A logger whose first Kafka client talks to a port where no broker listens: a client that holds messages and
    never reports a delivery, as one did after a broker restart in CI (without an error either)."""

    def _new_client(self) -> Producer:
        if getattr(self, "_wedged", False):
            return super()._new_client()
        self._wedged = True
        nowhere = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "on_delivery": self._on_delivery}
        return Producer({**producer_config(self.settings), **nowhere})


def test_a_client_without_progress_is_replaced_and_its_messages_resent(isolated: Settings, tmp_path: Path) -> None:
    producer = isolated.producer.model_copy(update={"stall_seconds": 2.0})
    settings = isolated.model_copy(update={"state_dir": tmp_path, "producer": producer})
    messages = list(simulate(load_plant(settings.producer.plant_file), seed=3, start_ms=START_MS, duration_s=30))
    replaced_before = metric("plantwatch_producer_client_replacements_total")

    logger = WedgedFirstClient(settings)
    for machine_id, ts, readings in messages:
        logger.log(machine_id, ts, readings)
    assert logger.close(timeout=30), "the backlog was not delivered after the client was replaced"

    assert logger.stats.client_replacements == 1
    assert metric("plantwatch_producer_client_replacements_total") == replaced_before + 1
    arrived = defaultdict(list)
    for record in read_topic(settings):
        arrived[record.key.decode()].append(record.value)
    expected = defaultdict(list)
    for machine_id, ts, readings in messages:
        expected[machine_id].append(encode(machine_id, ts, readings))
    assert arrived == expected  # every message once, in order per machine: the wedged client delivered none


def test_a_logger_called_now_and_then_keeps_its_client(isolated: Settings, tmp_path: Path) -> None:
    """Messages further apart than stall_seconds: in between, the client is idle, not stalled."""
    producer = isolated.producer.model_copy(update={"stall_seconds": 1.0})
    settings = isolated.model_copy(update={"state_dir": tmp_path, "producer": producer})
    messages = list(simulate(load_plant(settings.producer.plant_file), seed=5, start_ms=START_MS, duration_s=2))[:3]
    with SdkLogger(settings) as logger:
        for machine_id, ts, readings in messages:
            logger.log(machine_id, ts, readings)
            assert logger.flush(timeout=10)
            time.sleep(1.5)
        assert logger.stats.client_replacements == 0
    assert len(read_topic(settings)) == len(messages)
