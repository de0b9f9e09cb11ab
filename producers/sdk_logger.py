"""The SDK logger: dual logging of readings to the local archive and to Kafka, with nothing lost in between.

Every message goes to the archive first (plantwatch.producers.archive), then to Kafka through an idempotent producer
(``acks=all``, ``enable.idempotence=true``, key = machine id, value = plantwatch.reading.encode). librdkafka retries
for as long as the broker is away (``message.timeout.ms=0``) and queues meanwhile; once its queue is full the
logger stops handing it new messages and keeps only archiving them. The messages not yet handed over are the
*backlog*: when Kafka takes messages again it is read back from the archive and sent, per machine in archive
order, before anything newer, so each machine's order holds and nothing is sent twice.

The cursor file (``<archive>/cursor.json``) records, per machine, the archive position of the first message Kafka
has not acknowledged. It is rewritten (atomically) every ``cursor_flush_seconds`` and on close, so a restarted
process publishes what an earlier one archived but never got acknowledged.

A client that holds messages and reports no delivery for ``stall_seconds`` while Kafka answers a client of its
own (asked from a thread, so that logging goes on) is replaced: its messages are purged, a new client is made, and
everything not acknowledged is sent again from the archive. Once, in CI, a client stopped sending after a broker
restart without reporting any error, and ``message.timeout.ms=0`` would have it wait for ever. A message the old
client had in flight may have reached Kafka: it arrives twice (downstream folds duplicates). While Kafka does not
answer, it is an outage, which the client waits out as it is.

Guarantees: across broker outages, exactly once and in order; across a graceful stop, the same; across a crash, at
least once (what was acknowledged after the last cursor write is sent again, downstream folds duplicates) and at
most the last unwritten block (``archive_block_bytes`` or ``archive_flush_seconds``) is lost from the archive,
though it may be in Kafka.

Without an archive (``archive=False``) the backlog can only live in librdkafka's queue: when it is full, ``log``
waits for room (back-pressure) instead.

Usable from a user's own gateway code::

    with SdkLogger(settings) as logger:
        logger.log("L1-pump01", ts_ms, [{"sensor_id": "temp", "kind": "temperature", "value": 71.3,
                                         "unit": "C", "seq": 42}])
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType

import orjson
from confluent_kafka import KafkaError, KafkaException, Message, Producer
from prometheus_client import Counter, Gauge

from plantwatch.producers.archive import MachineArchive, Position, iter_range
from plantwatch.reading import IDENTIFIER, encode
from plantwatch.settings import Settings
from plantwatch.topics import admin_client, readings_topic_of

log = logging.getLogger(__name__)

READINGS = Counter("plantwatch_producer_readings", "Readings accepted by the SDK logger")
MESSAGES = Counter("plantwatch_producer_messages", "Messages (one machine, one instant) accepted")
DELIVERED = Counter("plantwatch_producer_delivered_messages", "Messages Kafka acknowledged")
SEND_ERRORS = Counter("plantwatch_producer_send_errors", "Failed deliveries and client errors reported by Kafka")
CLIENT_REPLACEMENTS = Counter(
    "plantwatch_producer_client_replacements", "Kafka clients replaced after stall_seconds without a delivery report"
)
BACKLOG = Gauge("plantwatch_producer_backlog_messages", "Messages accepted but not yet acknowledged by Kafka")
ARCHIVE_BYTES = Counter("plantwatch_producer_archive_bytes", "Compressed bytes written to the archive")

CURSOR_FILE = "cursor.json"
# Housekeeping (poll, flush by age, drain, cursor) runs every SERVICE_EVERY messages or SERVICE_SECONDS, whichever
# comes first; a caller that may stay silent for long should call service() now and then itself.
SERVICE_EVERY = 256
SERVICE_SECONDS = 0.1
PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)


@dataclass(slots=True)
class _Stream:
    """One machine's flow: ``sent`` messages handed to librdkafka, the first ``acked`` of them acknowledged.

    Kafka reports one partition's deliveries in order and a machine's messages share a partition, so counting
    successful reports gives ``acked``. After a failed delivery the reports still in flight (``inflight``) are let
    through uncounted, then sending resumes from ``acked``: at least once rather than a gap.
    """

    machine_id: str
    key: bytes
    topic: str
    archive: MachineArchive | None
    sent: int = 0
    acked: int = 0
    inflight: int = 0
    draining: bool = False  # the backlog is being read back from the archive; new messages wait behind it
    failed: bool = False


@dataclass(slots=True)
class LoggerStats:
    readings: int = 0
    messages: int = 0
    delivered: int = 0
    send_errors: int = 0
    client_replacements: int = 0
    archive_bytes: int = 0
    backlog: int = 0


def producer_config(settings: Settings) -> dict[str, object]:
    p = settings.producer
    return {
        **settings.kafka.client_config(),
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": 0,  # never give up on a message: outages are waited out, not turned into losses
        # Metadata again every 10 s, not librdkafka's 300 s: once, right after a broker restart, the producer took a
        # partition's leader as "-1, not found in cache" and sent nothing more until well past a 60 s flush (CI, the
        # broker-restart drill); a periodic refresh bounds such a stall.
        "topic.metadata.refresh.interval.ms": 10_000,
        "linger.ms": p.linger_ms,
        "batch.size": p.batch_bytes,
        "compression.type": p.compression,
        "queue.buffering.max.messages": p.queue_max_messages,
        "queue.buffering.max.kbytes": p.queue_max_kbytes,
    }


def kafka_answers(settings: Settings, timeout: float = 5.0) -> bool:
    """Whether the cluster answers a metadata request from a client of its own within the timeout."""
    try:
        admin_client(settings).list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def archive_root(settings: Settings) -> Path:
    return settings.state_dir / settings.producer.archive_dir


def republish(
    settings: Settings, topic: str | None, from_ms: int, to_ms: int, machines: set[str] | None = None
) -> tuple[int, int]:
    """The archived messages of an event-time range published to `topic` (None: each machine's readings topic) again
    (downstream folds the duplicates); returns (messages sent, messages not delivered within a minute)."""
    producer = Producer(producer_config(settings))
    sent = 0
    for machine_id, payload in iter_range(archive_root(settings), from_ms, to_ms, machines):
        while True:
            try:
                producer.produce(topic or readings_topic_of(settings, machine_id), payload, machine_id.encode())
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
    return sent, producer.flush(60)


class SdkLogger:
    def __init__(self, settings: Settings, *, archive: bool = True, topic: str | None = None) -> None:
        self.settings = settings
        self.topic = topic  # None: each machine's readings topic (its shard's, with kafka.topic_per_shard)
        self.stats = LoggerStats()
        self._reported = LoggerStats()
        self._streams: dict[str, _Stream] = {}
        self._draining: list[_Stream] = []
        self._since_service = 0
        self._next_service = time.monotonic() + SERVICE_SECONDS
        self._last_cursor = time.monotonic()
        self._last_age_flush = time.monotonic()
        self._by_key: dict[bytes, _Stream] = {}
        self._last_report = time.monotonic()  # the last delivery report
        self._holding_since: float | None = None  # since when the client has held messages (None: it holds none)
        self._prober = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-probe")
        self._probe: Future[bool] | None = None  # is Kafka answering? (asked once the client looks stalled)
        self._producer = self._new_client()
        self._lock_file = None
        self.root: Path | None = None
        if archive:
            self.root = archive_root(settings)
            self.root.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.root / ".lock", "w")  # noqa: SIM115 - held for the logger's lifetime
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RuntimeError(f"another process is logging to the archive {self.root}") from None
            self._recover()

    # -- the hot path --------------------------------------------------------------------------------------------

    def log(self, machine_id: str, ts_ms: int, readings: list[dict]) -> None:
        """Accept the readings of one machine at one instant (dicts: sensor_id, kind, value, unit, seq)."""
        self.log_message(machine_id, ts_ms, encode(machine_id, ts_ms, readings), len(readings))

    def log_message(self, machine_id: str, ts_ms: int, payload: bytes, readings: int) -> None:
        """Accept an already encoded message (``plantwatch.reading.encode``) carrying ``readings`` readings."""
        stream = self._streams.get(machine_id) or self._open(machine_id)
        stats = self.stats
        stats.readings += readings
        stats.messages += 1
        if stream.archive is None:
            self._send_waiting(stream, payload)
        else:
            stats.archive_bytes += stream.archive.append(ts_ms, payload)
            if not stream.draining:
                try:
                    self._producer.produce(stream.topic, payload, stream.key)
                    stream.sent += 1
                    stream.inflight += 1
                except BufferError:
                    self._start_draining(stream)
        self._since_service += 1
        if self._since_service >= SERVICE_EVERY or time.monotonic() >= self._next_service:
            self.service()

    def _send(self, stream: _Stream, payload: bytes) -> None:
        self._producer.produce(stream.topic, payload, stream.key)
        stream.sent += 1
        stream.inflight += 1

    def _send_waiting(self, stream: _Stream, payload: bytes) -> None:
        while True:
            try:
                return self._send(stream, payload)
            except BufferError:
                self._producer.poll(0.05)

    def _new_client(self) -> Producer:
        return Producer(
            {**producer_config(self.settings), "error_cb": self._on_error, "on_delivery": self._on_delivery}
        )

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        self._last_report = time.monotonic()
        stream = self._by_key[msg.key()]
        stream.inflight -= 1
        if err is None:
            if not stream.failed:
                stream.acked += 1
                self.stats.delivered += 1
        elif err.code() not in PURGED:  # close() or a client replacement took it back; the archive has it
            self.stats.send_errors += 1
            if stream.archive is None:
                log.warning("delivery to Kafka failed for %s (%s); no archive to resend from", stream.machine_id, err)
            elif not stream.failed:
                log.warning("delivery to Kafka failed for %s (%s); resending from the archive", stream.machine_id, err)
                stream.failed = True
                self._start_draining(stream)

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.stats.send_errors += 1
            log.error("fatal Kafka producer error: %s", err)
        else:
            log.debug("Kafka client: %s", err)

    # -- housekeeping --------------------------------------------------------------------------------------------

    def service(self) -> None:
        """Serve delivery reports, write aged archive blocks, send backlog while Kafka takes it, save the cursor."""
        self._since_service = 0
        self._producer.poll(0)
        now = time.monotonic()
        self._next_service = now + SERVICE_SECONDS
        if self.root is not None:
            self._watch_client(now)
            if now - self._last_age_flush >= self.settings.producer.archive_flush_seconds:
                self._last_age_flush = now
                for stream in self._streams.values():
                    self.stats.archive_bytes += stream.archive.flush()
            for stream in list(self._draining):
                if stream.failed:
                    if stream.inflight:
                        continue
                    stream.failed = False
                    stream.sent = stream.acked
                self._drain(stream)
            if now - self._last_cursor >= self.settings.producer.cursor_flush_seconds:
                self.save_cursor()
        self._report_metrics()

    def _watch_client(self, now: float) -> None:
        """Replace the client once it has held messages for stall_seconds without reporting a delivery, if Kafka
        answers another client meanwhile. Counted from when it began holding them, not from its last report: a
        logger called once a minute hands an idle client a message, and that client is not stalled."""
        if not len(self._producer):
            self._holding_since = self._probe = None  # (a probe's answer is about a stall that is over)
            return
        if self._holding_since is None:
            self._holding_since = now
        if now - max(self._holding_since, self._last_report) < self.settings.producer.stall_seconds:
            self._probe = None
            return
        if self._probe is None:
            self._probe = self._prober.submit(kafka_answers, self.settings)
        elif self._probe.done():
            answers, self._probe = self._probe.result(), None
            if answers:
                self._replace_client()
            else:  # an outage: the client waits it out; asked again after another stall_seconds
                self._holding_since = now

    def _replace_client(self) -> None:
        """A new Kafka client for one that made no progress: the old one's messages are purged (their reports served,
        so that what it did deliver counts), and each machine resends from its first unacknowledged message."""
        held = len(self._producer)
        log.warning(
            "no delivery report from Kafka for %.0f s with %d messages in the client: replacing it, and sending "
            "what it held again from the archive", self.settings.producer.stall_seconds, held
        )  # fmt: skip
        self.stats.client_replacements += 1
        old = self._producer
        old.purge(in_queue=True, in_flight=True)
        deadline = time.monotonic() + 5
        while len(old) and time.monotonic() < deadline:
            old.poll(0.05)
        old.poll(0)
        self._producer = self._new_client()
        del old  # destroyed here: nothing it still holds can be sent behind the new client's back
        for stream in self._streams.values():
            stream.sent, stream.inflight, stream.failed = stream.acked, 0, False
            if stream.archive is not None and stream.archive.appended > stream.acked:
                self._start_draining(stream)
        self._holding_since = None

    def _start_draining(self, stream: _Stream) -> None:
        if not stream.draining:
            stream.draining = True
            self._draining.append(stream)

    def _drain(self, stream: _Stream) -> None:
        while True:
            batch = stream.archive.read(stream.sent)
            if not batch:
                stream.draining = False
                self._draining.remove(stream)
                return
            for payload in batch:
                try:
                    self._send(stream, payload)
                except BufferError:
                    return

    def backlog(self) -> int:
        """Messages accepted (or recovered from the archive) that Kafka has not acknowledged yet; without an
        archive, those still in librdkafka (a failed one is gone)."""
        return sum(s.archive.appended - s.acked if s.archive else s.inflight for s in self._streams.values())

    def _report_metrics(self) -> None:
        now, before = self.stats, self._reported
        READINGS.inc(now.readings - before.readings)
        MESSAGES.inc(now.messages - before.messages)
        DELIVERED.inc(now.delivered - before.delivered)
        SEND_ERRORS.inc(now.send_errors - before.send_errors)
        CLIENT_REPLACEMENTS.inc(now.client_replacements - before.client_replacements)
        ARCHIVE_BYTES.inc(now.archive_bytes - before.archive_bytes)
        now.backlog = self.backlog()
        BACKLOG.set(now.backlog)
        self._reported = LoggerStats(**asdict(now))

    # -- machines, cursor, recovery ------------------------------------------------------------------------------

    def _open(self, machine_id: str, position: Position | None = None) -> _Stream:
        # The id names the machine's archive folder and Kafka key: a plain identifier only (no "/", no "..").
        if not IDENTIFIER.fullmatch(machine_id):
            raise ValueError(f"not a machine id: {machine_id[:80]!r} (letters, digits and _.:- only)")
        archive = None
        if self.root is not None:
            archive = MachineArchive(self.root, machine_id, self.settings.producer)
        topic = self.topic or readings_topic_of(self.settings, machine_id)
        stream = _Stream(machine_id, machine_id.encode(), topic, archive)
        self._streams[machine_id] = stream
        self._by_key[stream.key] = stream
        if archive is not None:
            if position is not None:
                stream.sent = stream.acked = archive.recover(position)
                if archive.appended > stream.sent:
                    log.info("%s: %d archived messages to publish", machine_id, archive.appended - stream.sent)
                    self._start_draining(stream)
            else:
                self.save_cursor()  # from now on a crash cannot hide this machine's archive from the next process
        return stream

    def _cursor_path(self) -> Path:
        return self.root / CURSOR_FILE

    def save_cursor(self) -> None:
        self._last_cursor = time.monotonic()
        cursor = {m: asdict(s.archive.position(s.acked)) for m, s in self._streams.items()}
        tmp = self._cursor_path().with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"machines": cursor}))
        os.replace(tmp, self._cursor_path())

    def _recover(self) -> None:
        path = self._cursor_path()
        if not path.exists():
            return
        for machine_id, pos in orjson.loads(path.read_bytes())["machines"].items():
            self._open(machine_id, Position(**pos))

    # -- ending --------------------------------------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> bool:
        """Write every archive block and wait until Kafka acknowledged everything; False if timed out."""
        deadline = time.monotonic() + timeout
        for stream in self._streams.values():
            if stream.archive is not None:
                self.stats.archive_bytes += stream.archive.flush()
        while True:
            self.service()
            if self.backlog() == 0 and not self._draining:
                break
            if time.monotonic() >= deadline:
                break
            self._producer.poll(0.05)
        self._producer.flush(max(0.0, min(1.0, deadline - time.monotonic())))
        self.service()
        if self.root is not None:
            self.save_cursor()
        return self.backlog() == 0

    def close(self, timeout: float = 30.0) -> bool:
        """Flush (up to timeout), save the cursor and let go of the archive; True if nothing is left undelivered.
        Whatever is left is published by the next logger on the same archive."""
        done = self.flush(timeout)
        if not done:
            self._producer.purge(in_queue=True)
            self._producer.poll(0)
        self._producer = None  # destroys the client, so nothing left in it is sent behind the next logger's back
        for stream in self._streams.values():
            if stream.archive is not None:
                stream.archive.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        self._prober.shutdown(wait=False, cancel_futures=True)
        return done

    def __enter__(self) -> SdkLogger:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
