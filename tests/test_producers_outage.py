"""Kafka away mid-run, and the logger's process restarted meanwhile: every reading arrives once Kafka is back,
in order per machine, none twice. Runs against a private single-broker Kafka (own ports, own state folder) that the
test stops and starts; the shared stack's Kafka is never touched."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from prometheus_client import REGISTRY

from plantwatch.metrics import free_port
from plantwatch.producers.plant import load_plant
from plantwatch.producers.sdk_logger import SdkLogger
from plantwatch.producers.simulator import simulate
from plantwatch.settings import Settings
from plantwatch.stack import Stack
from tests.conftest import create_topics
from tests.fixtures.kafka_topic import read_topic

START_MS = 1_764_288_000_000
QUEUE = 500  # librdkafka's queue, kept small so the outage's backlog has to come back from the archive


@pytest.fixture(scope="module")
def private_kafka(stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A broker of its own; the shared stack is only asked for first so that the Kafka jars are in its cache."""
    state = tmp_path_factory.mktemp("private-kafka")
    jars = settings.state_dir / "cache" / f"kafka-{settings.kafka.version}"
    if (jars / ".complete").exists():  # reuse the jars already fetched (read only) rather than fetch them again
        (state / "cache").mkdir()
        (state / "cache" / jars.name).symlink_to(jars)
    own = Settings(
        state_dir=state,
        kafka={"port": free_port(), "controller_port": free_port(), "readings_topic": "outage.readings"},
    )
    stack = Stack(own, ["kafka"])
    stack.up(timeout=180)
    try:
        create_topics(AdminClient(own.kafka.client_config()), [own.kafka.readings_topic], own.kafka.partitions)
        yield own
    finally:
        stack.down()


def test_outage_and_restart_lose_nothing_and_duplicate_nothing(private_kafka: Settings, tmp_path: Path) -> None:
    producer = private_kafka.producer.model_copy(
        update={"queue_max_messages": QUEUE, "archive_block_bytes": 32 << 10, "cursor_flush_seconds": 0.2}
    )
    settings = private_kafka.model_copy(update={"state_dir": tmp_path, "producer": producer})
    kafka = Stack(private_kafka, ["kafka"])
    plant = load_plant(settings.producer.plant_file)
    messages = list(simulate(plant, seed=4, start_ms=START_MS, duration_s=400))
    quarter = len(messages) // 4
    parts = [messages[i * quarter : (i + 1) * quarter] for i in range(3)] + [messages[3 * quarter :]]

    first = SdkLogger(settings)
    for machine_id, ts, readings in parts[0]:
        first.log(machine_id, ts, readings)
    assert first.flush(timeout=60)

    assert kafka.down() == ["kafka"]
    for machine_id, ts, readings in parts[1]:  # Kafka is away: accepted and archived all the same
        first.log(machine_id, ts, readings)
    first.service()
    assert first.backlog() == len(parts[1]) > QUEUE
    assert REGISTRY.get_sample_value("plantwatch_producer_backlog_messages") == len(parts[1])
    assert not first.close(timeout=1)  # the process stops while Kafka is still away

    # Meanwhile a logger whose client looks stalled after a second asks Kafka, gets no answer and keeps its client:
    # an outage is waited out, not met with new clients (each would resend, and may duplicate, what the last held).
    watched = SdkLogger(
        settings.model_copy(
            update={"state_dir": tmp_path / "watched", "producer": producer.model_copy(update={"stall_seconds": 1.0})}
        )
    )
    for machine_id, ts, readings in parts[1][:10]:
        watched.log(machine_id, ts, readings)
    for _ in range(80):  # 8 s: a stall, a probe that times out (5 s), and the next stall
        watched.service()
        time.sleep(0.1)
    assert watched.stats.client_replacements == 0
    assert not watched.close(timeout=0)

    second = SdkLogger(settings)  # ... and starts again: it finds the backlog through its cursor
    assert second.backlog() == len(parts[1])
    for machine_id, ts, readings in parts[2]:
        second.log(machine_id, ts, readings)
    assert second.backlog() == len(parts[1]) + len(parts[2])

    assert kafka.up(timeout=180) == ["kafka"]
    for machine_id, ts, readings in parts[3]:
        second.log(machine_id, ts, readings)
    assert second.close(timeout=90)
    assert second.backlog() == 0

    arrived = defaultdict(list)
    for record in read_topic(settings):
        readings = record.readings()
        arrived[record.key.decode()].append((readings[0].ts_ms, [(r.sensor_id, r.value, r.seq) for r in readings]))
    expected = defaultdict(list)
    for machine_id, ts, readings in messages:
        expected[machine_id].append((ts, [(r["sensor_id"], r["value"], r["seq"]) for r in readings]))
    assert sum(len(v) for v in arrived.values()) == len(messages)  # none lost, none twice
    assert arrived == expected  # and in order per machine
