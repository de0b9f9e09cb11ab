"""Dead letters: messages that fail validation, kept byte for byte with why and where they came from.

A dead letter on the dead-letter topic (``kafka.dead_letter_topic``) is the original message, value and key
unchanged (a null value stays null), with these headers (UTF-8 strings):

=========================== ======================================================================
``plantwatch.reason``        the ``InvalidMessage`` reason code: oversized, not_json, wrong_type,
                             unknown_schema_version, missing_field, not_finite, bad_identifier
``plantwatch.detail``        what was wrong, for people (truncated)
``plantwatch.source.topic``  where the message was read ...
``plantwatch.source.partition``
``plantwatch.source.offset``
=========================== ======================================================================

Dead letters go through their own producer; the sink flushes it before each ClickHouse write, so a checkpoint's
offsets are committed only after its dead letters too are acknowledged (at-least-once, like the readings).
"""

from __future__ import annotations

from collections import Counter

from confluent_kafka import Message
from quixstreams.kafka import Producer
from quixstreams.models import HeadersTuples

from plantwatch.reading import InvalidMessage, decode_many
from streams.message_batches import RunReadings
from streams.metrics import DEAD_LETTERED

REASON, DETAIL = "plantwatch.reason", "plantwatch.detail"
SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET = (
    "plantwatch.source.topic",
    "plantwatch.source.partition",
    "plantwatch.source.offset",
)


class DeadLetterQueue:
    def __init__(self, producer: Producer, topic: str) -> None:
        self._producer = producer
        self._topic = topic
        self._pending: Counter[str] = Counter()

    def readings_or_dead_letter(self, run: list[Message]) -> RunReadings:
        """The run's valid readings; each invalid message is dead-lettered (and gives no readings)."""
        decoded = decode_many([message.value() or b"" for message in run])
        for index, exc in decoded.invalid:
            self.send(run[index], exc)
        return RunReadings(decoded.columns, decoded.counts, [message.offset() for message in run])

    def send(self, message: Message, exc: InvalidMessage) -> None:
        headers: HeadersTuples = [
            (REASON, exc.reason),
            (DETAIL, str(exc)[:500]),
            (SOURCE_TOPIC, message.topic()),
            (SOURCE_PARTITION, str(message.partition())),
            (SOURCE_OFFSET, str(message.offset())),
        ]
        self._producer.produce(self._topic, value=message.value(), key=message.key(), headers=headers)
        self._pending[exc.reason] += 1

    def flush(self) -> None:
        """Wait until every dead letter is acknowledged (raises if one cannot be delivered)."""
        if self._pending:
            if self._producer.flush(timeout=30) > 0:
                raise RuntimeError("dead letters not acknowledged by Kafka within 30 s")
            for reason, count in self._pending.items():
                DEAD_LETTERED.labels(reason).inc(count)
            self._pending.clear()
