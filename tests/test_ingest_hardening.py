"""Hardening of the ingest (issue 17) on the real stack: no message stops it, no topic incarnation collides with
another in ClickHouse's deduplication, memory stays bounded, and it starts sanely when ClickHouse or a topic is
missing. Each test runs `python -m plantwatch.streams.ingest` as a subprocess on its own topics and database."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest
from confluent_kafka import Consumer, Message, Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from plantwatch.metrics import free_port
from plantwatch.settings import PROJECT_ROOT, Settings
from plantwatch.streams import dead_letter
from tests import test_ingest
from tests.test_ingest import PER_MESSAGE, Ingest, committed, count, end_offsets, good_messages, produce, wait_for

ingests = test_ingest.ingests  # the fixture: ingest processes on the test's topics and database


def dead_letters(settings: Settings, expected: int, timeout: float = 30) -> list[Message]:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"dlq-{uuid.uuid4().hex[:6]}",
                         "auto.offset.reset": "earliest"})  # fmt: skip
    consumer.subscribe([settings.kafka.dead_letter_topic])
    letters: list[Message] = []
    deadline = time.monotonic() + timeout
    try:
        while len(letters) < expected and time.monotonic() < deadline:
            if (msg := consumer.poll(0.5)) is not None and not msg.error():
                letters.append(msg)
    finally:
        consumer.close()
    return letters


def everything_committed(settings: Settings, group: str) -> Callable[[], bool]:
    ends = end_offsets(settings)
    return lambda: committed(settings, group) == ends


def nested(depth: int) -> bytes:
    """A valid message with an extra field nested `depth` deep (the wire format ignores unknown fields)."""
    good = good_messages(1, start=999)[0][1]
    return good[:-1] + b',"extra":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"


def test_deeply_nested_message_never_stops_the_ingest(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    """1,000 deep: msgspec's decoder raised RecursionError and the ingest exited, at every restart. Now a message the
    JSON parser takes (1,000 levels) lands; one it refuses (5,000) is a dead letter; the rest lands and commits."""
    messages: list[tuple[bytes | None, bytes | None]] = list(good_messages(30))
    messages.insert(3, (b"deep1000", nested(1_000)))
    messages.insert(17, (b"deep5000", nested(5_000)))
    produce(isolated, messages)
    group = f"deep-{uuid.uuid4().hex[:6]}"
    ingest = ingests(group)
    wait_for("every valid reading", lambda: count(isolated, isolated.clickhouse.readings_view) == 31 * PER_MESSAGE)
    [letter] = dead_letters(isolated, 1)
    headers = {k: v.decode() for k, v in letter.headers()}
    assert letter.key() == b"deep5000" and headers[dead_letter.REASON] == "not_json"
    assert "depth" in headers[dead_letter.DETAIL]
    wait_for("the offsets committed", everything_committed(isolated, group), 30)
    assert ingest.proc.poll() is None
    assert ingest.stop() == 0


def set_max_message_bytes(settings: Settings, topic: str, limit: int) -> None:
    admin = AdminClient(settings.kafka.client_config())
    entry = ConfigEntry("max.message.bytes", str(limit), incremental_operation=AlterConfigOpType.SET)
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[entry])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(30)


@pytest.mark.parametrize("dead_letter_topic_limit", [None, 64 * 1024], ids=["cut", "refused-by-the-topic"])
def test_a_dead_letter_too_large_for_its_topic_is_cut(
    isolated: Settings, ingests: Callable[..., Ingest], dead_letter_topic_limit: int | None
) -> None:
    """A 1.9 MB message passes the readings topic (the local broker takes 2 MiB), but its dead letter failed with
    MSG_SIZE_TOO_LARGE and the ingest exited, at every restart. Now the dead letter carries the value cut to
    ingest.dead_letter_max_bytes (or nothing, where the dead-letter topic takes even less), with the original's
    size and checksum, and everything after it lands."""
    if dead_letter_topic_limit:
        set_max_message_bytes(isolated, isolated.kafka.dead_letter_topic, dead_letter_topic_limit)
    huge = os.urandom(1_900_000)  # incompressible
    producer = Producer({**isolated.kafka.client_config(), "message.max.bytes": 4_000_000})
    producer.produce(isolated.kafka.readings_topic, huge, b"huge", partition=0)
    assert producer.flush(30) == 0
    produce(isolated, good_messages(20))
    group = f"huge-{uuid.uuid4().hex[:6]}"
    ingest = ingests(group)
    wait_for("the valid readings", lambda: count(isolated, isolated.clickhouse.readings_view) == 20 * PER_MESSAGE)
    [letter] = dead_letters(isolated, 1)
    headers = {k: v.decode() for k, v in letter.headers()}
    assert headers[dead_letter.REASON] == "oversized"
    assert headers[dead_letter.TRUNCATED] == "value"
    assert int(headers[dead_letter.ORIGINAL_BYTES]) == len(huge)
    assert headers[dead_letter.ORIGINAL_SHA256] == hashlib.sha256(huge).hexdigest()
    limit = isolated.ingest.dead_letter_max_bytes
    assert letter.value() == (b"" if dead_letter_topic_limit else huge[:limit])
    wait_for("the offsets committed", everything_committed(isolated, group), 30)
    assert ingest.proc.poll() is None
    assert ingest.stop() == 0


def recreate_topic(settings: Settings, topic: str) -> None:
    admin = AdminClient(settings.kafka.client_config())
    admin.delete_topics([topic])[topic].result(30)
    deadline = time.monotonic() + 60
    while True:  # the delete settles in the background
        try:
            admin.create_topics([NewTopic(topic, settings.kafka.partitions, 1)])[topic].result(30)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_readings_land_after_the_topic_is_recreated(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    """Deleted and created again, a topic's offsets start from 0 again: the deduplication token was topic/partition/
    offsets, so ClickHouse dropped the new incarnation's inserts as duplicates (0 of 10 landed, nothing said)."""
    group = f"reborn-{uuid.uuid4().hex[:6]}"
    view = isolated.clickhouse.readings_view
    produce(isolated, good_messages(10))
    first = ingests(group)
    wait_for("the first incarnation's readings", lambda: count(isolated, view) == 10 * PER_MESSAGE)
    wait_for("its offsets committed", everything_committed(isolated, group), 30)
    assert first.stop() == 0

    recreate_topic(isolated, isolated.kafka.readings_topic)
    produce(isolated, good_messages(10, start=10))  # other readings, at the same keys, partitions and offsets
    second = ingests(group)
    wait_for("the second incarnation's readings", lambda: count(isolated, view) == 20 * PER_MESSAGE, 30)
    assert second.stop() == 0


def rss_mb(ingest: Ingest) -> float:
    return psutil.Process(ingest.proc.pid).memory_info().rss / 2**20


def test_ingest_memory_stays_flat_across_rounds(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    """Three rounds of 40k messages (320k readings) through one ingest process: RSS after the third round within
    1.5x of the first. Every insert's data stayed in memory (a reference cycle in clickhouse-connect's insert
    context, which the ingest's rare cyclic collections never freed): 1.1 -> 1.9 -> 2.7 GB in bench/ingest_memory.py."""
    per_round = 40_000
    ingest = ingests(insert_rows=20_000)
    figures = []
    for n in range(3):
        produce(isolated, good_messages(per_round, start=n * per_round))
        landed = (n + 1) * per_round * PER_MESSAGE
        wait_for(
            f"round {n + 1}", lambda landed=landed: count(isolated, isolated.clickhouse.raw_readings_table) == landed
        )
        figures.append(rss_mb(ingest))
    print(f"ingest RSS after each round (MiB): {figures}")
    assert figures[2] <= 1.5 * figures[0], figures
    assert ingest.stop() == 0


def ingest_command(settings: Settings, **variables: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "PLANTWATCH_KAFKA__READINGS_TOPIC": settings.kafka.readings_topic,
        "PLANTWATCH_KAFKA__DEAD_LETTER_TOPIC": settings.kafka.dead_letter_topic,
        "PLANTWATCH_CLICKHOUSE__DATABASE": settings.clickhouse.database,
        "PLANTWATCH_CLICKHOUSE__ROLES": "false",
        "PLANTWATCH_INGEST__METRICS_PORT": str(free_port()),
        **variables,
    }
    return subprocess.Popen([sys.executable, "-m", "plantwatch.cli", "ingest"], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip


def test_ingest_waits_for_clickhouse_at_start(isolated: Settings, tmp_path: Path) -> None:
    """ClickHouse not answering at start (a port where nothing listens): the ingest says it waits, and waits,
    instead of a 500-line traceback."""
    process = ingest_command(isolated, PLANTWATCH_CLICKHOUSE__HTTP_PORT=str(free_port()))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
    reader.start()  # counted as they come: on a loaded machine the imports alone may take several seconds

    def waits() -> int:
        return sum("waiting for ClickHouse" in line for line in lines)

    wait_for("two tries", lambda: waits() >= 2 or process.poll() is not None, timeout=60)  # the pause doubles
    assert process.poll() is None and waits() >= 2, "".join(lines)
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    reader.join(30)
    assert "Traceback" not in "".join(lines)


def test_ingest_on_a_missing_topic_names_the_command_that_creates_it(isolated: Settings) -> None:
    missing = f"test.{uuid.uuid4().hex[:8]}.nothing"
    process = ingest_command(isolated, PLANTWATCH_KAFKA__READINGS_TOPIC=missing)
    output = process.communicate(timeout=60)[0]
    assert process.returncode == 2, output
    [line] = [line for line in output.splitlines() if line.strip() and "Warning" not in line and "httpx" not in line]
    assert line.startswith("error: ") and missing in line and "plantwatch db migrate" in line
