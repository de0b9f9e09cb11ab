"""Dead letters: messages that fail validation, kept byte for byte with why and where they came from.

A dead letter on the dead-letter topic (``kafka.dead_letter_topic``) is the original message, value and key
unchanged (a null value stays null), with these headers (UTF-8 strings):

=========================== ======================================================================
``plantwatch.reason``        the ``InvalidMessage`` reason code: oversized, not_json, wrong_type,
                             unknown_schema_version, missing_field, not_finite, bad_identifier,
                             undecodable (the decoder itself failed on the message),
                             conflicting_duplicate (a reading with the key of another one earlier in
                             the run, but another value, kind or unit: see
                             ``plantwatch.reading.without_conflicts``)
``plantwatch.detail``        what was wrong, for people (truncated)
``plantwatch.source.topic``  where the message was read ...
``plantwatch.source.partition``
``plantwatch.source.offset``
=========================== ======================================================================

A message too large for the dead-letter topic (it passed the readings topic compressed, or that topic allows more)
would fail its own dead letter, and the ingest would stop on it at every restart. A value larger than
``ingest.dead_letter_max_bytes`` (a key larger than ``DEAD_LETTER_MAX_KEY_BYTES``) is cut to that size, and the dead
letter says so in three more headers:

=============================== ==================================================================
``plantwatch.truncated``         ``value`` or ``key`` or ``value,key``: what was cut
``plantwatch.original.bytes``    the value's size as read, in bytes
``plantwatch.original.sha256``   hex SHA-256 of the whole value, to match it against the producer's archive
=============================== ==================================================================

If the broker still refuses a dead letter as too large (a dead-letter topic whose ``max.message.bytes`` is lower
than the setting), it is sent again on its own, and if refused again, with an empty value and those headers.

Dead letters go through their own producer; the sink flushes it before each ClickHouse write, so a checkpoint's
offsets are committed only after its dead letters too are acknowledged (at-least-once, like the readings).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter

from confluent_kafka import KafkaError, KafkaException, Message
from quixstreams.kafka import Producer
from quixstreams.models import HeadersTuples

from plantwatch.reading import InvalidMessage, decode_run
from plantwatch.streams.message_batches import RunReadings
from plantwatch.streams.metrics import DEAD_LETTERED

REASON, DETAIL = "plantwatch.reason", "plantwatch.detail"
SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET = (
    "plantwatch.source.topic",
    "plantwatch.source.partition",
    "plantwatch.source.offset",
)
TRUNCATED, ORIGINAL_BYTES, ORIGINAL_SHA256 = (
    "plantwatch.truncated",
    "plantwatch.original.bytes",
    "plantwatch.original.sha256",
)
DEAD_LETTER_MAX_KEY_BYTES = 1024
CONFLICT = "conflicting_duplicate"
logger = logging.getLogger(__name__)
FLUSH_TIMEOUT_SECONDS = 30


class DeadLetterQueue:
    def __init__(self, producer: Producer, topic: str, max_bytes: int = 512 * 1024) -> None:
        """``max_bytes``: the largest value a dead letter carries (the rest is cut, see the module's docstring)."""
        self._producer = producer
        self._topic = topic
        self._max_bytes = max_bytes
        self._pending: Counter[str] = Counter()
        self._too_large: list[tuple[bytes, bytes | None, HeadersTuples]] = []
        self._failed: list[KafkaError] = []

    def readings_or_dead_letter(self, run: list[Message]) -> RunReadings:
        """The run's valid readings; each invalid message is dead-lettered (and gives no readings), and so is each
        message contradicting a reading earlier in the run (logged too: it is a producer's fault, not a format's)."""
        raws = [message.value() or b"" for message in run]
        offsets = [message.offset() for message in run]
        decoded = decode_run(raws, offsets)
        for index, exc in decoded.invalid:
            if exc.reason == CONFLICT:
                message = run[index]
                logger.warning("dead-lettered %s[%d]@%d: %s", message.topic(), message.partition(), offsets[index], exc)
            self.send(run[index], exc)
        return RunReadings(decoded.readings, decoded.counts, offsets, raws)

    def send(self, message: Message, exc: InvalidMessage) -> None:
        headers: HeadersTuples = [
            (REASON, exc.reason),
            (DETAIL, str(exc)[:500]),
            (SOURCE_TOPIC, message.topic()),
            (SOURCE_PARTITION, str(message.partition())),
            (SOURCE_OFFSET, str(message.offset())),
        ]
        value, key = message.value(), message.key()
        cut = []
        if value is not None and len(value) > self._max_bytes:
            cut.append("value")
        if key is not None and len(key) > DEAD_LETTER_MAX_KEY_BYTES:
            cut.append("key")
            key = key[:DEAD_LETTER_MAX_KEY_BYTES]
        if cut:
            headers += _original(value, cut)
            value = value[: self._max_bytes] if value is not None else None
        self._produce(value, key, headers)
        self._pending[exc.reason] += 1

    def _produce(self, value: bytes | None, key: bytes | None, headers: HeadersTuples, alone: bool = False) -> None:
        """Produce one dead letter. Refused as too large (by the client's message.max.bytes now, or by the broker's
        max.message.bytes on delivery, which refuses a whole batch of letters), it is kept for flush() to send
        again on its own, and if refused on its own too, without its value."""

        def delivered(error: KafkaError | None, _: Message | None = None) -> None:
            if error is None:
                return
            if error.code() == KafkaError.MSG_SIZE_TOO_LARGE and value:
                if not alone:
                    self._too_large.append((value, key, headers))
                elif any(name == TRUNCATED for name, _ in headers):  # the headers describe the original already
                    self._too_large.append((b"", key, headers))
                else:
                    self._too_large.append((b"", key, headers + _original(value, ["value"])))
            else:
                self._failed.append(error)

        try:
            self._producer.produce(self._topic, value=value, key=key, headers=headers, on_delivery=delivered)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.MSG_SIZE_TOO_LARGE:
                raise
            delivered(exc.args[0])

    def _delivered_all(self) -> None:
        if self._producer.flush(timeout=FLUSH_TIMEOUT_SECONDS) > 0:
            raise RuntimeError(f"dead letters not acknowledged by Kafka within {FLUSH_TIMEOUT_SECONDS} s")

    def flush(self) -> None:
        """Wait until every dead letter is acknowledged (raises if one cannot be delivered). Those refused as too
        large are sent again one at a time (cut to nothing if need be)."""
        if not self._pending:
            return
        self._delivered_all()
        while self._too_large:
            retry, self._too_large = self._too_large, []
            for value, key, headers in retry:
                self._produce(value, key, headers, alone=True)
                self._delivered_all()
        if self._failed:
            failed, self._failed = self._failed, []
            raise RuntimeError(f"dead letters refused by Kafka: {failed[0]}")
        for reason, count in self._pending.items():
            DEAD_LETTERED.labels(reason).inc(count)
        self._pending.clear()


def _original(value: bytes | None, cut: list[str]) -> HeadersTuples:
    """The headers that describe a value as read, before it was cut."""
    value = value or b""
    return [(TRUNCATED, ",".join(cut)), (ORIGINAL_BYTES, str(len(value))),
            (ORIGINAL_SHA256, hashlib.sha256(value).hexdigest())]  # fmt: skip
