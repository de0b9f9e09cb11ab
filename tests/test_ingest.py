"""The ingest app against the real stack: each test runs `python -m plantwatch.streams.ingest` as subprocesses on its
own topics and database (the `isolated` fixture) and looks at what a user sees: rows in ClickHouse, messages on the
dead-letter topic, /metrics, committed offsets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client.parser import text_string_to_metric_families
from quixstreams.models import Row

from plantwatch import warehouse
from plantwatch.metrics import free_port
from plantwatch.reading import MessageReadings, encode
from plantwatch.settings import PROJECT_ROOT, Settings
from plantwatch.streams import dead_letter
from plantwatch.streams.clickhouse_sink import ClickHouseSink
from plantwatch.streams.ingest import transient
from plantwatch.streams.message_batches import MessageRunApplication

SENSORS = [("temp", "temperature", "C"), ("vib", "vibration", "mm/s"), ("amps", "current", "A")] + [
    (f"t{i}", "temperature", "C") for i in range(5)
]
PER_MESSAGE = len(SENSORS)


def reading_message(i: int, now_ms: int) -> tuple[bytes, bytes]:
    machine = f"M{i % 10}"
    seq = i // 10
    readings = [
        {"sensor_id": s, "kind": k, "value": i + j / 10, "unit": u, "seq": seq} for j, (s, k, u) in enumerate(SENSORS)
    ]
    return machine.encode(), encode(machine, now_ms - 60_000 + seq, readings)


def good_messages(n: int, start: int = 0) -> list[tuple[bytes, bytes]]:
    now_ms = int(time.time() * 1000)
    return [reading_message(i, now_ms) for i in range(start, start + n)]


def produce(settings: Settings, messages: list[tuple[bytes | None, bytes | None]]) -> list[tuple[int, int]]:
    """Produce in order; returns each message's (partition, offset)."""
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 5})
    placed: dict[int, tuple[int, int]] = {}
    for n, (key, value) in enumerate(messages):
        producer.produce(
            settings.kafka.readings_topic,
            value,
            key,
            on_delivery=lambda err, msg, n=n: placed.__setitem__(n, (msg.partition(), msg.offset())),
        )
    assert producer.flush(30) == 0
    return [placed[n] for n in range(len(messages))]


class Ingest:
    """One `python -m plantwatch.streams.ingest` process, configured through PLANTWATCH_* variables."""

    def __init__(self, settings: Settings, group: str, log: Path, **ingest: object) -> None:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "PLANTWATCH_KAFKA__READINGS_TOPIC": settings.kafka.readings_topic,
            "PLANTWATCH_KAFKA__DEAD_LETTER_TOPIC": settings.kafka.dead_letter_topic,
            "PLANTWATCH_CLICKHOUSE__DATABASE": settings.clickhouse.database,
            "PLANTWATCH_INGEST__CONSUMER_GROUP": group,
            # The local stack grants the ingest user its rights on the configured database only, not on a test's.
            "PLANTWATCH_CLICKHOUSE__ROLES": "false",
            "PLANTWATCH_INGEST__METRICS_PORT": str(self.metrics_port),
            "PLANTWATCH_INGEST__LAG_REPORT_MS": "500",
            "PLANTWATCH_INGEST__FLUSH_INTERVAL_SECONDS": "0.5",
            "PLANTWATCH_INGEST__SESSION_TIMEOUT_MS": "6000",  # the broker's minimum: a killed process is noticed soon
            **{f"PLANTWATCH_INGEST__{k.upper()}": str(v) for k, v in ingest.items()},
        }
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "plantwatch.streams.ingest"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=-2,
        )

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """Samples of /metrics by (name, sorted labels); empty until the endpoint answers."""
        try:
            text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).read()
        except OSError:
            return {}
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text.decode())
            for s in family.samples
        }

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)


@pytest.fixture
def ingests(isolated: Settings, tmp_path: Path) -> Iterator[Callable[..., Ingest]]:
    """Start ingest processes (killed at the end if a test left them running); show their logs on failure."""
    started: list[Ingest] = []

    def start(group: str | None = None, **ingest: object) -> Ingest:
        log = tmp_path / f"ingest{len(started)}.log"
        process = Ingest(isolated, group or f"ingest-{uuid.uuid4().hex[:8]}", log, **ingest)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(10)
        print(f"--- {process.log.name}\n{process.log.read_text()[-3000:]}")


def wait_for(what: str, predicate: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def query(settings: Settings, sql: str) -> list[tuple]:
    return warehouse.client(settings).query(sql).result_rows


def count(settings: Settings, table: str) -> int:
    return warehouse.client(settings).command(f"SELECT count() FROM {table}")


def committed(settings: Settings, group: str) -> dict[int, int]:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": group})
    try:
        parts = [TopicPartition(settings.kafka.readings_topic, p) for p in range(settings.kafka.partitions)]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def end_offsets(settings: Settings) -> dict[int, int]:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": "watermarks"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(settings.kafka.readings_topic, p), timeout=10)[1]
            for p in range(settings.kafka.partitions)
        }
    finally:
        consumer.close()


def test_readings_land_once_with_metrics(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    messages = good_messages(300)
    produce(isolated, messages)
    ingest = ingests()
    view = isolated.clickhouse.readings_view
    wait_for("all readings in the view", lambda: count(isolated, view) == 300 * PER_MESSAGE)

    # What went in comes out: values, event times and sequence numbers of one sensor of one machine.
    sent = [orjson.loads(value) for key, value in messages if key == b"M3"]
    rows = query(
        isolated,
        f"SELECT value, toUnixTimestamp64Milli(event_time), seq, sensor_kind, unit FROM {view} "
        "WHERE machine_id = 'M3' AND sensor_id = 'vib' ORDER BY seq",
    )
    expected = [(m["readings"][1]["value"], m["ts"], m["readings"][1]["seq"], "vibration", "mm/s") for m in sent]
    assert [tuple(r) for r in rows] == expected

    landed = {"topic": isolated.kafka.readings_topic}
    wait_for("the landed counter", lambda: ingest.metric("plantwatch_ingest_readings_landed_total", **landed) == 2400)
    metrics = ingest.metrics()
    assert metrics[("plantwatch_ingest_messages_consumed_total", ())] == 300
    assert metrics[("plantwatch_ingest_batch_insert_seconds_count", ())] >= 1
    wait_for(
        "zero lag on every partition",
        lambda: (
            sorted(
                (labels, v)
                for (name, labels), v in ingest.metrics().items()
                if name == "plantwatch_ingest_consumer_lag"
            )
            == [((("partition", str(p)), ("topic", isolated.kafka.readings_topic)), 0.0) for p in range(4)]
        ),
        timeout=30,
    )
    assert ingest.stop() == 0


BAD = {
    "not_json": b'{"v": 1, "machine_id": "M1", ',
    "wrong_type": orjson.dumps(
        {"v": 1, "machine_id": "M1", "ts": "yesterday", "readings": [{"sensor_id": "a", "kind": "temperature"}]}
    ),
    "not_finite": json.dumps(
        {
            "v": 1,
            "machine_id": "M1",
            "ts": 1,
            "readings": [{"sensor_id": "a", "kind": "k", "value": float("nan"), "unit": "C", "seq": 1}],
        }
    ).encode(),
    "missing_field": orjson.dumps({"v": 1, "machine_id": "M1", "readings": []}),
    "unknown_schema_version": orjson.dumps({"v": 2, "machine_id": "M1", "ts": 1, "readings": []}),
    "oversized": b" " * 70_000 + good_messages(1)[0][1],
    "bad_identifier": encode(
        "M 1; DROP TABLE", 1, [{"sensor_id": "a", "kind": "k", "value": 1.0, "unit": "C", "seq": 1}]
    ),
}


def test_bad_messages_are_dead_lettered_and_good_ones_land(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    good = good_messages(40)
    bad: list[tuple[str, bytes | None]] = [*BAD.items(), ("not_json", None)]  # a null value (tombstone) too
    messages: list[tuple[bytes | None, bytes | None]] = list(good)
    for n, (_, value) in enumerate(bad):  # spread among the good ones, all partitions
        messages.insert(n * 5 + 1, (f"bad{n}".encode(), value))
    placed = produce(isolated, messages)
    where = {messages[n][0]: placed[n] for n in range(len(messages))}

    ingest = ingests()
    wait_for("good readings", lambda: count(isolated, isolated.clickhouse.readings_view) == 40 * PER_MESSAGE)

    consumer = Consumer(
        {**isolated.kafka.client_config(), "group.id": f"dlq-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([isolated.kafka.dead_letter_topic])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < len(bad) and time.monotonic() < deadline:
        if (msg := consumer.poll(0.5)) is not None and not msg.error():
            letters.append(msg)
    consumer.close()

    assert len(letters) == len(bad)
    got = {}
    for msg in letters:
        headers = {k: v.decode() for k, v in msg.headers()}
        got[msg.key()] = (headers[dead_letter.REASON], msg.value())
        assert headers[dead_letter.SOURCE_TOPIC] == isolated.kafka.readings_topic
        partition, offset = where[msg.key()]
        assert (int(headers[dead_letter.SOURCE_PARTITION]), int(headers[dead_letter.SOURCE_OFFSET])) == (
            partition,
            offset,
        )
        assert headers[dead_letter.DETAIL]
    assert got == {f"bad{n}".encode(): (reason, value) for n, (reason, value) in enumerate(bad)}

    assert ingest.proc.poll() is None, "the app must not stop on bad input"
    wait_for(
        "dead-letter counter", lambda: ingest.metric("plantwatch_ingest_dead_lettered_total", reason="not_json") == 2
    )
    for reason in BAD:
        if reason != "not_json":
            assert ingest.metric("plantwatch_ingest_dead_lettered_total", reason=reason) == 1, reason
    assert ingest.stop() == 0


def dead_letters(settings: Settings) -> list[Message]:
    """Every message on the dead-letter topic now (read up to each partition's high watermark)."""
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"dlq-{uuid.uuid4().hex[:6]}"})
    try:
        topic = settings.kafka.dead_letter_topic
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        letters: list[Message] = []
        deadline = time.monotonic() + 30
        while len(letters) < sum(ends.values()) and time.monotonic() < deadline:
            if (msg := consumer.poll(0.5)) is not None and not msg.error():
                letters.append(msg)
        return letters
    finally:
        consumer.close()


def test_conflicting_duplicate_is_dead_lettered_and_identical_one_folds(
    isolated: Settings, ingests: Callable[..., Ingest]
) -> None:
    """Three readings with one key (machine, sensor, event time, seq), values 1.0, 2.0, 1.0: the first lands, the
    2.0 is a dead letter naming the key and both values (the raw table would have folded it away without a word),
    the identical third one folds into the first, silently."""
    ts = int(time.time() * 1000) - 60_000

    def message(value: float) -> tuple[bytes, bytes]:
        return b"M1", encode("M1", ts, [{"sensor_id": "temp", "kind": "temperature", "value": value, "unit": "C",
                                         "seq": 7}])  # fmt: skip

    messages = [message(1.0), message(2.0), message(1.0)]
    placed = produce(isolated, messages)
    group = f"conflict-{uuid.uuid4().hex[:6]}"
    ingest = ingests(group)
    partition = placed[0][0]
    wait_for("the commit of all three", lambda: committed(isolated, group)[partition] == placed[2][1] + 1)

    view = isolated.clickhouse.readings_view
    assert query(isolated, f"SELECT machine_id, sensor_id, seq, value FROM {view}") == [("M1", "temp", 7, 1.0)]

    letters = dead_letters(isolated)  # all of them: a checkpoint's are acknowledged before its commit
    assert len(letters) == 1
    headers = {k: v.decode() for k, v in letters[0].headers()}
    assert headers[dead_letter.REASON] == "conflicting_duplicate"
    assert (int(headers[dead_letter.SOURCE_PARTITION]), int(headers[dead_letter.SOURCE_OFFSET])) == placed[1]
    assert letters[0].value() == messages[1][1]
    detail = headers[dead_letter.DETAIL]
    assert all(part in detail for part in ("machine_id=M1", "sensor_id=temp", f"ts={ts}", "seq=7", "2.0", "1.0"))

    wait_for(
        "the conflict counter",
        lambda: ingest.metric("plantwatch_ingest_dead_lettered_total", reason="conflicting_duplicate") == 1,
    )
    landed = ingest.metric("plantwatch_ingest_readings_landed_total", topic=isolated.kafka.readings_topic)
    assert landed == 2  # the identical one lands and folds
    assert ingest.stop() == 0
    assert "conflicting_duplicate" in ingest.log.read_text()


def test_batch_redelivered_after_a_crash_lands_once(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    """Kill the app after its inserts, before any commit: the replay's inserts carry the same tokens and are dropped.

    Batches are cut every 3 messages of a partition however the consumer's runs fall: 2 messages at a time in the
    first run, as many as there are in the replay.
    """
    placed = produce(isolated, good_messages(40))
    per_partition = Counter(partition for partition, _ in placed)
    cut = 3
    group = f"crash-{uuid.uuid4().hex[:6]}"
    raw, view = isolated.clickhouse.raw_readings_table, isolated.clickhouse.readings_view
    # Inserts of 3 messages each, the checkpoint far away.
    first = ingests(group, insert_rows=cut * PER_MESSAGE, flush_interval_seconds=600, poll_messages=2)
    inserted = sum(n // cut * cut for n in per_partition.values()) * PER_MESSAGE
    wait_for("the first run's inserts", lambda: count(isolated, raw) == inserted)
    time.sleep(1)  # and nothing more: the rest of each partition waits in its open batch
    assert count(isolated, raw) == inserted
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert all(offset < 0 for offset in committed(isolated, group).values()), "nothing may be committed yet"

    second = ingests(group, insert_rows=cut * PER_MESSAGE, flush_interval_seconds=0.5)
    ends = end_offsets(isolated)
    wait_for("the replay's commit", lambda: committed(isolated, group) == ends)
    assert second.stop() == 0
    # Dropped by ClickHouse (insert_deduplication_token): not even the raw table holds a second copy.
    assert count(isolated, raw) == 40 * PER_MESSAGE
    assert query(isolated, f"SELECT count(), uniqExact(machine_id, sensor_id, seq) FROM {view}") == [(320, 320)]


def test_replay_cut_differently_shows_once_in_the_view(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    """Batches cut differently on replay are not dropped by token; the ReplacingMergeTree view still shows one copy."""
    produce(isolated, good_messages(40))
    group = f"recut-{uuid.uuid4().hex[:6]}"
    raw, view = isolated.clickhouse.raw_readings_table, isolated.clickhouse.readings_view
    first = ingests(group, insert_rows=PER_MESSAGE, flush_interval_seconds=600)
    wait_for("the first run's inserts", lambda: count(isolated, raw) == 320)
    first.stop(signal.SIGKILL)
    second = ingests(group)  # one insert per partition this time: other tokens
    ends = end_offsets(isolated)
    wait_for("the replay's commit", lambda: committed(isolated, group) == ends)
    assert second.stop() == 0
    assert query(isolated, f"SELECT count(), uniqExact(machine_id, sensor_id, seq) FROM {view}") == [(320, 320)]


def test_backpressure_replays_every_run_not_yet_committed(isolated: Settings, tmp_path: Path) -> None:
    """On backpressure the run consumer seeks each partition back to what it has not had committed: the first
    message of its first run handed out, and the runs consumed but not handed out yet (another partition's)."""
    topic = isolated.kafka.readings_topic
    producer = Producer(isolated.kafka.client_config())
    for partition in (0, 1):
        for n in range(20):
            producer.produce(topic, good_messages(1, start=n)[0][1], partition=partition)
    assert producer.flush(30) == 0
    app = MessageRunApplication(
        max_messages=1_000,
        broker_address=isolated.kafka.bootstrap_servers,
        consumer_group=f"runs-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        use_changelog_topics=False,
        state_dir=tmp_path / "state",
    )
    consumer = app._consumer  # the app's own consumer, driven by hand as the app's loop would
    consumer.subscribe([app.topic(topic, value_deserializer="bytes")])

    def next_row() -> Row:
        deadline = time.monotonic() + 30
        while (row := consumer.poll_row(timeout=2.0)) is None:
            assert time.monotonic() < deadline, "no messages"
        return row

    def offsets(row: Row) -> tuple[int, list[int]]:
        return row.partition, [message.offset() for message in row.value]

    try:
        first = next_row()
        assert len(consumer._runs) == 1, "both partitions' messages come in one consume()"
        partition, handed_out = offsets(first)
        assert handed_out == list(range(20))
        # The checkpoint processed the first run (it stores the run's last offset) and is backpressured.
        consumer.trigger_backpressure({(topic, partition): handed_out[-1]}, resume_after=0)
        consumer.resume_backpressured()
        replayed = dict(offsets(next_row()) for _ in range(2))
        assert replayed == {0: list(range(20)), 1: list(range(20))}
    finally:
        consumer.close()


def test_two_processes_share_the_partitions(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    group = f"pair-{uuid.uuid4().hex[:6]}"
    pair = [ingests(group), ingests(group)]
    view = isolated.clickhouse.readings_view

    def consumed(p: Ingest) -> float:
        return p.metric("plantwatch_ingest_messages_consumed_total")

    sent = 0
    deadline = time.monotonic() + 60
    while not all(consumed(p) > 0 for p in pair):  # produce in waves until both have had a share
        assert time.monotonic() < deadline, [consumed(p) for p in pair]
        produce(isolated, good_messages(200, start=sent))
        sent += 200
        time.sleep(1)
    wait_for("every reading", lambda: count(isolated, view) == sent * PER_MESSAGE)
    total = sent * PER_MESSAGE
    assert query(isolated, f"SELECT count(), uniqExact(machine_id, sensor_id, seq) FROM {view}") == [(total, total)]
    assert [p.stop() for p in pair] == [0, 0]


def assigned(settings: Settings, group: str) -> int:
    """How many partitions the group's members hold now (none while its coordinator is still loading)."""
    admin = AdminClient(settings.kafka.client_config())
    try:
        description = admin.describe_consumer_groups([group])[group].result(10)
    except KafkaException as exc:
        if not transient(exc):
            raise
        return 0
    return sum(len(member.assignment.topic_partitions) for member in description.members)


def test_sigterm_flushes_the_open_batch_and_commits(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    group = f"term-{uuid.uuid4().hex[:6]}"
    raw, view = isolated.clickhouse.raw_readings_table, isolated.clickhouse.readings_view
    # No insert before a checkpoint, and the checkpoint in 10 minutes: everything read waits in the open batches.
    ingest = ingests(group, flush_interval_seconds=600, insert_rows=1_000_000)
    wait_for("the app to hold every partition", lambda: assigned(isolated, group) == isolated.kafka.partitions)
    produce(isolated, good_messages(15))
    wait_for("the 15 messages read", lambda: ingest.metric("plantwatch_ingest_messages_consumed_total") == 15)
    assert count(isolated, raw) == 0
    assert ingest.stop(signal.SIGTERM) == 0
    assert count(isolated, view) == 15 * PER_MESSAGE
    assert committed(isolated, group) == end_offsets(isolated)


def calibrate_temperatures(readings: MessageReadings) -> MessageReadings | None:
    """An enrich hook as a user would write one: drop machine M9, add 100 to every temperature."""
    if readings.machine_id == "M9":
        return None
    values = [v + 100 if k == "temperature" else v for v, k in zip(readings.values, readings.kinds, strict=True)]
    return readings._replace(values=values)


def test_enrich_hook_from_settings(isolated: Settings, ingests: Callable[..., Ingest]) -> None:
    messages = good_messages(100)
    produce(isolated, messages)
    ingest = ingests(enrich=f"{__name__}.calibrate_temperatures")
    view = isolated.clickhouse.readings_view
    wait_for("the enriched readings", lambda: count(isolated, view) == 90 * PER_MESSAGE)
    assert ingest.stop() == 0
    assert count(isolated, view) == 90 * PER_MESSAGE  # M9's ten messages dropped by the hook
    sent = {
        (m["machine_id"], r["sensor_id"], r["seq"]): (r["kind"], r["value"])
        for m in map(orjson.loads, (v for _, v in messages))
        for r in m["readings"]
    }
    for machine_id, sensor_id, seq, value in query(isolated, f"SELECT machine_id, sensor_id, seq, value FROM {view}"):
        kind, original = sent[(machine_id, sensor_id, seq)]
        assert value == (original + 100 if kind == "temperature" else original)


def test_sink_connects_as_the_ingest_user(settings: Settings, stack: object) -> None:
    warehouse.migrate(settings)  # the configured database, the one the ingest user is granted on
    sink = ClickHouseSink(settings, settings.clickhouse.raw_readings_table)
    sink.setup()
    assert sink._client.command("SELECT currentUser()") == settings.clickhouse.ingest_user
