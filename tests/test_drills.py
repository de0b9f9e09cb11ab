"""Fault drills: the whole pipeline (simulator or SDK logger -> Kafka -> `python -m plantwatch.streams.ingest` ->
ClickHouse -> dbt) on a private stack (own ports and state folder, started once for the module) that the drills
break on purpose.

Every drill streams readings at a steady rate, does its damage, and ends the same way (Drill.finish): wait until
the deduplicated view holds every reading, run dbt, then compare what was produced with what ClickHouse holds:
the view (none lost, none twice) and the derived tables (per-minute states, rolling aggregates), and print
``DRILL <name>: produced=... landed=... duplicates=... dead_lettered=...`` (also a junit property).
"""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import psutil
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from plantwatch import warehouse
from plantwatch.access import pinned
from plantwatch.expectations import RAW
from plantwatch.expectations.check import check_once
from plantwatch.producers.archive import iter_range
from plantwatch.producers.faults import NO_FAULTS
from plantwatch.producers.plant import Plant, load_plant
from plantwatch.producers.sdk_logger import SdkLogger, archive_root
from plantwatch.producers.simulator import Message, RunResult, Simulation, run_simulation
from plantwatch.reading import encode
from plantwatch.settings import Settings
from plantwatch.stack import Stack
from plantwatch.streams import dead_letter
from plantwatch.transform import Transformer
from tests.conftest import create_topics
from tests.fixtures.kafka_topic import read_topic
from tests.fixtures.pipeline import (
    IngestProcess,
    derived_mismatches,
    landed,
    private_settings,
    query_file,
    uncommitted,
    wait_for,
)

pytestmark = pytest.mark.slow

RATE = 3_000  # readings/s, wall clock
SECOND_MS = 1000


@pytest.fixture(scope="module")
def private(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Kafka and ClickHouse of our own for the module: the drills stop and start them."""
    own = private_settings(settings, tmp_path_factory.mktemp("drills"))
    stack = Stack(own, ["kafka", "clickhouse"])
    stack.up(timeout=240)
    try:
        yield own
    finally:
        stack.down()


@pytest.fixture(scope="module")
def plant(private: Settings) -> Plant:
    return load_plant(private.producer.plant_file)


def paced(messages: Iterable[Message], rate: float) -> Iterator[Message]:
    """The messages at `rate` readings per second of wall-clock time."""
    began, readings = time.monotonic(), 0
    for message in messages:
        yield message
        readings += len(message[2])
        if (wait := readings / rate - (time.monotonic() - began)) > 0:
            time.sleep(wait)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Drill:
    name: str
    settings: Settings  # this drill's topics, database, consumer group and state folder on the private stack
    private: Settings  # the private stack itself
    plant: Plant
    logs: Path
    record: Callable[[str, object], None]
    transformer: Transformer
    ingests: list[IngestProcess] = field(default_factory=list)
    background: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))

    def service(self, name: str) -> Stack:
        return Stack(self.private, [name])

    def ingest(self, **overrides: object) -> IngestProcess:
        process = IngestProcess(self.settings, self.logs / f"ingest{len(self.ingests)}.log", **overrides)
        self.ingests.append(process)
        return process

    def start_ms(self, readings: int) -> int:
        """A simulation start such that `readings` readings of the plant end about now (event time)."""
        seconds = readings // self.plant.sensor_count
        return (now_ms() // SECOND_MS - seconds) * SECOND_MS

    def simulate(self, readings: int, rate: float = RATE, **producer: object) -> Future[RunResult]:
        """run_simulation (the SDK logger with its archive) in the background, event time ending about now."""
        settings = self.settings.model_copy(update={"producer": self.settings.producer.model_copy(update=producer)})
        start_ms = self.start_ms(readings)
        return self.background.submit(
            run_simulation, settings, self.plant, NO_FAULTS, seed=7, start_ms=start_ms, count=readings, rate=rate,
            flush_timeout=180,
        )  # fmt: skip

    def wait_landed(self, produced: int, timeout: float = 120) -> None:
        seen = [0]

        def arrived() -> bool:
            seen[0] = landed(self.settings).rows
            return seen[0] >= produced

        try:
            wait_for(f"{produced} readings in the view", arrived, timeout, 0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc} ({seen[0]} there)") from None

    def finish(self, produced: int, dead_lettered: int = 0, timeout: float = 120) -> None:
        """Every reading once in the view and in the derived tables; the counts printed and recorded."""
        self.wait_landed(produced, timeout)
        self.transformer.build()
        result = landed(self.settings)
        mismatches = derived_mismatches(self.settings)
        # Readings the per-minute states count more (or fewer, negative) times than the view holds them.
        states_excess = sum(derived - view for kind, *_, view, derived, _, _ in mismatches if kind == "states")
        line = (
            f"DRILL {self.name}: produced={produced} landed={result.rows} duplicates={result.duplicates} "
            f"dead_lettered={dead_lettered} derived_windows_off={len(mismatches)} "
            f"derived_extra_readings={states_excess} raw_rows={result.raw_rows}"
        )
        print(line)
        self.record(f"drill_{self.name}", line)
        assert result.rows == produced, f"lost {produced - result.rows} readings"
        assert result.duplicates == 0 and result.distinct == produced
        assert mismatches == [], f"derived tables disagree with the view in {len(mismatches)} windows: {mismatches[:4]}"
        for process in self.ingests:
            if process.alive:
                assert process.stop() == 0, process.log_text()[-2000:]


@pytest.fixture(scope="module")
def transformer(private: Settings) -> Transformer:
    """One for every drill: they make the same database anew as the same users, so dbt parses the project once."""
    return Transformer(pinned(private))


@pytest.fixture
def drill(
    private: Settings, plant: Plant, transformer: Transformer, request: pytest.FixtureRequest, tmp_path: Path,
    record_property: Callable[[str, object], None],
) -> Iterator[Drill]:  # fmt: skip
    """Fresh topics, consumer group and state folder for one drill, and the private stack's database made anew
    (migrated and built by dbt, so the materialized views see every insert). Components connect as their own
    least-privileged users, granted on that database; their passwords (and the admin's) are handed to the drill's
    processes."""
    scoped = pinned(private.scoped(f"drill.{uuid.uuid4().hex[:8]}", database=private.clickhouse.database))
    settings = scoped.model_copy(
        update={
            "state_dir": tmp_path / "state",
            "ingest": scoped.ingest.model_copy(update={"session_timeout_ms": 6000, "lag_report_ms": 500}),
        }
    )
    create_topics(
        AdminClient(settings.kafka.client_config()),
        [settings.kafka.readings_topic, settings.kafka.dead_letter_topic],
        settings.kafka.partitions,
    )
    warehouse.client(settings, database="default").command(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")
    warehouse.migrate(settings)
    name = request.node.name.removeprefix("test_")
    this = Drill(name, settings, private, plant, tmp_path, record_property, transformer)
    this.transformer.build()
    yield this
    this.background.shutdown(wait=True, cancel_futures=True)
    for process in this.ingests:
        if process.alive:
            process.stop(signal.SIGKILL)
        print(f"--- {process.log.name} (last lines)\n{process.log_text()[-1500:]}")


def test_kafka_broker_restarted_mid_stream(drill: Drill) -> None:
    ingest = drill.ingest()
    run = drill.simulate(RATE * 24)
    drill.wait_landed(1)
    kafka = drill.service("kafka")
    assert kafka.down() == ["kafka"]
    assert kafka.up(timeout=120) == ["kafka"]
    assert not run.done(), "the stream must still be running when the broker is back"
    result = run.result()
    assert result.delivered
    assert ingest.alive, ingest.log_text()[-2000:]
    drill.finish(result.readings)


def test_clickhouse_stopped_for_20s(drill: Drill) -> None:
    """The ingest pauses and retries while ClickHouse is away, its memory stays bounded, and it catches up."""
    ingest = drill.ingest()
    run = drill.simulate(RATE * 30)
    drill.wait_landed(1)
    before_mib = ingest.rss_mib()
    clickhouse = drill.service("clickhouse")
    assert clickhouse.down() == ["clickhouse"]
    away_until = time.monotonic() + 20
    peak_mib = before_mib
    while time.monotonic() < away_until:
        assert ingest.alive, ingest.log_text()[-2000:]
        peak_mib = max(peak_mib, ingest.rss_mib())
        time.sleep(0.5)
    assert clickhouse.up(timeout=120) == ["clickhouse"]
    result = run.result()
    assert result.delivered
    drill.finish(result.readings)
    retries = ingest.log_text().count("Backpressure")
    print(f"ingest RSS {before_mib:.0f} MiB before, {peak_mib:.0f} MiB at most while ClickHouse was away; "
          f"{retries} paused retries")  # fmt: skip
    assert retries >= 2, "the ingest should have paused and retried more than once in 20 s"
    assert peak_mib < before_mib + 200, "the ingest's memory grew while ClickHouse was away"


def test_clickhouse_hung_for_10s(drill: Drill) -> None:
    """ClickHouse frozen (SIGSTOP) rather than gone: an insert with no answer times out and is replayed, once."""
    ingest = drill.ingest(insert_timeout_seconds=2)
    run = drill.simulate(RATE * 20)
    drill.wait_landed(1)
    [clickhouse] = drill.service("clickhouse").status()
    server = psutil.Process(clickhouse.pid)
    server.suspend()
    try:
        time.sleep(10)
        assert ingest.alive, ingest.log_text()[-2000:]
    finally:
        server.resume()
    result = run.result()
    assert result.delivered
    drill.finish(result.readings)
    assert "Backpressure" in ingest.log_text(), "an insert should have timed out while ClickHouse was frozen"


def test_clickhouse_refusing_inserts_for_10s(drill: Drill) -> None:
    """ClickHouse up but pushing back (TOO_MANY_PARTS): the ingest pauses and replays until it takes inserts again."""
    ingest = drill.ingest()
    run = drill.simulate(RATE * 20)
    drill.wait_landed(1)
    admin, raw = warehouse.client(drill.settings), drill.settings.clickhouse.raw_readings_table
    # Merges stopped, so parts pile up past a limit of one: every insert is refused until the limit goes.
    admin.command(f"SYSTEM STOP MERGES {raw}")
    admin.command(f"ALTER TABLE {raw} MODIFY SETTING parts_to_throw_insert = 1")
    try:
        time.sleep(10)
        assert ingest.alive, ingest.log_text()[-2000:]
    finally:
        admin.command(f"ALTER TABLE {raw} RESET SETTING parts_to_throw_insert")
        admin.command(f"SYSTEM START MERGES {raw}")
    result = run.result()
    assert result.delivered
    drill.finish(result.readings)
    assert "TOO_MANY_PARTS" in ingest.log_text(), "ClickHouse should have refused inserts while the limit held"


def test_ingest_killed_mid_batch(drill: Drill) -> None:
    """SIGKILL one of two ingest processes of a group while its batch is open; the other takes its partitions."""
    # Inserts of 2,000 rows inside a 3 s checkpoint: a killed process has rows in ClickHouse it never committed.
    batching = {"insert_rows": 2_000, "flush_interval_seconds": 3}
    victim, survivor = drill.ingest(**batching), drill.ingest(**batching)
    run = drill.simulate(RATE * 24)

    def consumed(process: IngestProcess) -> float:
        return process.metric("plantwatch_ingest_messages_consumed_total")

    wait_for("both processes to land readings", lambda: consumed(victim) > 0 and consumed(survivor) > 0, 60)
    assert victim.stop(signal.SIGKILL) == -signal.SIGKILL
    pending = uncommitted(drill.settings)
    before = consumed(survivor)
    result = run.result()
    assert result.delivered
    # Only the survivor is left to commit: every partition committed to its end means it took them all over.
    wait_for("every partition committed by the survivor", lambda: uncommitted(drill.settings) == 0, 60)
    print(f"killed with {pending} messages uncommitted; the survivor then processed {consumed(survivor) - before:.0f}")
    assert pending > 0
    drill.finish(result.readings)


HOSTILE_IDS = ("x'; DROP TABLE readings; --", "../../etc/passwd", "L1-pump01\nINSERT", "🙂", "a" * 200)


def poison(n: int, ts_ms: int) -> tuple[str, bytes | None]:
    """The n-th poison message, cycling through every kind: (expected dead-letter reason, value)."""
    reading = {"sensor_id": "current", "kind": "current", "value": 40.0, "unit": "A", "seq": n}
    hostile = HOSTILE_IDS[n % len(HOSTILE_IDS)]
    kinds: list[tuple[str, bytes | None]] = [
        ("not_json", b"<readings><current>40</current></readings>"),
        ("not_json", None),
        ("wrong_type", orjson.dumps({"v": 1, "machine_id": "L1-pump01", "ts": str(ts_ms), "readings": [reading]})),
        ("wrong_type", encode("L1-pump01", ts_ms, [{**reading, "value": "40.0"}])),
        (
            "not_finite",
            json.dumps(
                {"v": 1, "machine_id": "L1-pump01", "ts": ts_ms, "readings": [{**reading, "value": float("nan")}]}
            ).encode(),
        ),
        ("oversized", encode("L1-pump01", ts_ms, [{**reading, "unit": "A" * 70_000}])),
        (
            "unknown_schema_version",
            orjson.dumps({"v": 2, "machine_id": "L1-pump01", "ts": ts_ms, "readings": [reading]}),
        ),
        ("missing_field", orjson.dumps({"v": 1, "machine_id": "L1-pump01", "readings": [reading]})),
        ("bad_identifier", encode(hostile, ts_ms, [reading])),
        ("bad_identifier", encode("L1-pump01", ts_ms, [{**reading, "sensor_id": hostile}])),
    ]
    return kinds[n % len(kinds)]


def test_poison_messages(drill: Drill) -> None:
    """1% poison of every kind among good readings: each dead-lettered with its reason, every good one landed."""
    tables_before = query_file(drill.settings, "tables")
    ingest = drill.ingest()
    sim = Simulation(drill.plant, seed=11, start_ms=drill.start_ms(RATE * 8))
    bad = Producer(drill.settings.kafka.client_config())  # a device that bypasses the SDK logger
    logger = SdkLogger(drill.settings)
    expected: dict[bytes, str] = {}
    for n, (machine_id, ts, readings) in enumerate(paced(sim.messages(RATE * 8 // drill.plant.sensor_count), RATE)):
        logger.log(machine_id, ts, readings)
        if n % 100 == 99:
            reason, value = poison(len(expected), ts)
            key = f"poison-{len(expected)}".encode()
            bad.produce(drill.settings.kafka.readings_topic, value, key)
            expected[key] = reason
    assert logger.close(60)
    assert bad.flush(30) == 0
    produced = logger.stats.readings

    drill.wait_landed(produced)
    wait_for(
        "every dead letter",
        lambda: len(read_topic(drill.settings, drill.settings.kafka.dead_letter_topic)) >= len(expected),
        60,
    )
    letters = read_topic(drill.settings, drill.settings.kafka.dead_letter_topic)
    reasons = {record.key: dict(record.headers)[dead_letter.REASON].decode() for record in letters}
    print("dead letters by reason:", dict(Counter(reasons.values())))
    assert reasons == expected
    assert all(dict(record.headers)[dead_letter.DETAIL] for record in letters)
    assert ingest.alive
    assert query_file(drill.settings, "tables") == tables_before, "a table changed"
    drill.finish(produced, dead_lettered=len(letters))


LATE_MACHINES = ("L1-pump01", "L2-pump01")
BREACH_VALUE = 90.0  # current above the pump's upper spec limit (75 A), below its physical range (120 A)


def test_late_and_out_of_order_readings(drill: Drill) -> None:
    """Two machines' readings of two minutes arrive minutes late, shuffled, after a dbt run; the next run folds
    them into the aggregates, and the spec breaches among them are flagged."""
    ticks = 11 * 60
    start_ms = (now_ms() // 60_000 - 11) * 60_000
    late_from, late_to = start_ms + 7 * 60_000, start_ms + 9 * 60_000  # 2 to 4 minutes behind the stream's end
    breach_from, breach_to = start_ms + 7 * 60_000 + 30_000, start_ms + 8 * 60_000
    on_time: list[Message] = []
    late: list[Message] = []
    for machine_id, ts, readings in Simulation(drill.plant, seed=5, start_ms=start_ms).messages(ticks):
        if machine_id in LATE_MACHINES and late_from <= ts < late_to:
            if machine_id == LATE_MACHINES[0] and breach_from <= ts < breach_to:
                readings = [{**r, "value": BREACH_VALUE + (ts - breach_from) / 1e5} if r["sensor_id"] == "current"
                            else r for r in readings]  # fmt: skip
            late.append((machine_id, ts, readings))
        else:
            on_time.append((machine_id, ts, readings))
    random.Random(3).shuffle(late)

    drill.ingest()
    with SdkLogger(drill.settings) as logger:  # how fast they are sent does not matter here: 4x the drills' pace
        for machine_id, ts, readings in paced(on_time, 4 * RATE):
            logger.log(machine_id, ts, readings)
    on_time_readings = sum(len(m[2]) for m in on_time)
    drill.wait_landed(on_time_readings)
    drill.transformer.build()
    assert spec_breach_windows(drill.settings) == set()

    with SdkLogger(drill.settings) as logger:
        for machine_id, ts, readings in paced(late, 4 * RATE):
            logger.log(machine_id, ts, readings)
    drill.finish(on_time_readings + sum(len(m[2]) for m in late))
    expected = {datetime.fromtimestamp(ms / 1000, UTC) for ms in range(breach_from, breach_to, 10_000)}
    assert spec_breach_windows(drill.settings) == {(LATE_MACHINES[0], "current", w) for w in expected}


def spec_breach_windows(settings: Settings) -> set[tuple[str, str, datetime]]:
    rows = query_file(settings, "spec_breach_flags")
    return {(machine, sensor, start.replace(tzinfo=UTC)) for machine, sensor, start in rows}


SKEWED = "L1-pump02"
SKEW_MS = 10 * 60_000


def test_future_timestamps_fail_the_quality_check(drill: Drill) -> None:
    """A machine whose clock runs ten minutes ahead: its readings land, and the checkpoint names them."""
    readings = RATE * 6
    skewed_from = now_ms() - 30_000
    drill.ingest()
    skewed = 0
    with SdkLogger(drill.settings) as logger:
        messages = Simulation(drill.plant, seed=9, start_ms=drill.start_ms(readings))
        for machine_id, ts, batch in paced(messages.messages(readings // drill.plant.sensor_count), RATE):
            if machine_id == SKEWED and ts >= skewed_from:
                ts += SKEW_MS
                skewed += len(batch)
            logger.log(machine_id, ts, batch)
    produced = logger.stats.readings
    drill.finish(produced)
    assert skewed > 0

    run = check_once(drill.settings, (RAW,))
    failed = {f"{o.suite}.{o.expectation}": o.observed for o in run.failures}
    print(f"quality check: {skewed} skewed readings; failed: {failed}")
    assert not run.success
    assert failed == {"readings.readings_not_in_future": f"{skewed} unexpected rows"}


def test_producer_broker_gone_for_a_minute(drill: Drill) -> None:
    """Kafka away for 60 s while the SDK logger keeps logging: the archive holds everything, all of it arrives."""
    drill.ingest()
    # A small librdkafka queue: the minute's backlog must come back from the archive, not from memory.
    run = drill.simulate(2_000 * 90, rate=2_000, queue_max_messages=1_000)
    drill.wait_landed(1)
    kafka = drill.service("kafka")
    assert kafka.down() == ["kafka"]
    time.sleep(60)  # the outage itself: nothing to poll for
    assert not run.done(), "the logger must still be logging when the broker comes back"
    assert kafka.up(timeout=120) == ["kafka"]
    result = run.result()
    assert result.delivered
    archived = sum(1 for _ in iter_range(archive_root(drill.settings), 0, now_ms() + 86_400_000))
    print(f"archive: {archived} messages of {result.messages} logged")
    assert archived == result.messages
    drill.finish(result.readings)
