"""Runs of messages through a Quix Streams app: one row per run of one partition's consecutive messages.

Quix Streams runs its loop (poll, deserialize, a context per row, the dataframe, offset store, checkpoint checks)
once per Kafka message: about 17 µs of CPU a message on this project's 2-core machines, more than decoding and
inserting the message's readings together (bench/ingest.py). ``MessageRunApplication`` is an ``Application`` whose
consumer takes up to ``max_messages`` messages from librdkafka at once (``consume()``) and hands each run of
consecutive messages from one partition to the dataframe as one row, so the loop's cost is paid once per run.

The row's value is the run (a list of ``confluent_kafka.Message``); its context is the run's last message, so the
offset Quix Streams stores and commits after the run is the last one's. Everything else is Quix Streams' own:
checkpoints, sinks, rebalancing, backpressure. Two things need the run's first offset instead, and get it here:
- when a sink asks for backpressure, the checkpoint seeks each partition back to the first offset it processed,
  which for a run would be its last message: ``trigger_backpressure`` seeks to the first message of the first run
  handed out since the last commit instead;
- runs consumed but not handed out yet are dropped when partitions are paused, and their partitions sought back
  to them too.
Runs are cut from one ``consume()`` and handed out before the next one, and librdkafka serves rebalance callbacks
only inside ``consume()``: no run outlives its partition's assignment.

This reaches into Quix Streams' internals (``Application._get_internal_consumer``, ``InternalConsumer.poll_row``),
which is why quixstreams is pinned to one release in pyproject.toml; tests/test_ingest*.py and the drills cover the
behaviour that depends on it (commits, redelivery, backpressure, rebalancing).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from itertools import groupby
from typing import Any, NamedTuple

import pyarrow as pa
from confluent_kafka import KafkaError, KafkaException, Message, TopicPartition
from quixstreams import Application
from quixstreams.exceptions import PartitionAssignmentError
from quixstreams.internal_consumer import InternalConsumer
from quixstreams.kafka.exceptions import KafkaConsumerException
from quixstreams.models import MessageContext, Row

from plantwatch.reading import MessageReadings, readings_table, table_columns
from plantwatch.topics import COORDINATOR_MOVING

logger = logging.getLogger(__name__)


# A commit refused while the group's coordinator moves (plantwatch.topics.COORDINATOR_MOVING) is tried again: the
# member is still in its group. Stopping the app instead (as Quix Streams does on a failed commit) would start a new
# member, which gets no partitions until the old member's session has expired, a stall of the whole session timeout
# (seen: 38 s with a 30 s session on the 3-broker cluster).
COMMIT_RETRY_FIRST_SECONDS = 0.25
COMMIT_RETRY_MAX_SECONDS = 2.0


def _coordinator_moving(error: object) -> bool:
    return isinstance(error, KafkaError) and error.code() in COORDINATOR_MOVING


def _partition(message: Message) -> tuple[str, int]:
    return message.topic(), message.partition()


class MessageRunConsumer(InternalConsumer):
    """An InternalConsumer whose rows are runs of one partition's consecutive messages."""

    def __init__(self, *args: Any, max_messages: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._max_messages = max_messages
        self._session_timeout = kwargs.get("extra_config", {}).get("session.timeout.ms", 45_000) / 1000
        self._runs: deque[list[Message]] = deque()
        self._checkpoint_starts: dict[tuple[str, int], int] = {}

    def poll_row(self, timeout: float | None = None, buffered: bool = False) -> Row | None:
        if not self._runs:
            self._runs.extend(list(run) for _, run in groupby(self._consumed(timeout), key=_partition))
            if not self._runs:
                return None
        run = self._runs.popleft()
        first, last = run[0], run[-1]
        topic, partition = _partition(last)
        self._checkpoint_starts.setdefault((topic, partition), first.offset())
        context = MessageContext(
            topic=topic, partition=partition, offset=last.offset(), size=len(run), leader_epoch=last.leader_epoch()
        )
        return Row(value=run, key=None, timestamp=last.timestamp()[1], context=context, headers=None)

    def _consumed(self, timeout: float | None) -> list[Message]:
        """The next messages. Errors go to ``on_consumer_error`` and are skipped, as in Quix Streams' own poll:
        librdkafka reports a broker going away as an error event and recovers by itself."""
        try:
            messages = self.consume(num_messages=self._max_messages, timeout=timeout)
        except PartitionAssignmentError:
            raise
        except Exception as exc:
            self._on_error(exc, None, logger)
            return []
        valid = []
        for message in messages:
            if message.error() is None:
                valid.append(message)
            else:
                self._on_error(KafkaConsumerException(error=message.error()), message, logger)
        return valid

    def trigger_backpressure(self, offsets_to_seek: dict[tuple[str, int], int], resume_after: float) -> None:
        """Seek back to the first message of each partition's first run since the last commit, and to the first
        message of each run consumed but not handed out yet, which is dropped (its partition may have had no run in
        this checkpoint, and librdkafka's position is past it)."""
        seek = {tp: self._checkpoint_starts.get(tp, offset) for tp, offset in offsets_to_seek.items()}
        for run in self._runs:
            seek.setdefault(_partition(run[0]), run[0].offset())
        self._runs.clear()
        self._checkpoint_starts.clear()
        super().trigger_backpressure(seek, resume_after)

    def commit(self, *args: Any, **kwargs: Any) -> list[TopicPartition] | None:
        """Commit; a synchronous commit the group coordinator refuses while it moves (COORDINATOR_MOVING) is tried
        again, with growing pauses, for up to the session timeout before it fails as before."""
        retry_until = time.monotonic() + self._session_timeout if kwargs.get("asynchronous") is False else 0.0
        pause = COMMIT_RETRY_FIRST_SECONDS
        while True:
            failure: KafkaException | None = None
            try:
                committed = super().commit(*args, **kwargs)
                error = next((tp.error for tp in committed or [] if tp.error), None)
            except KafkaException as exc:
                committed, error, failure = None, exc.args[0], exc
            if error is None or not _coordinator_moving(error) or time.monotonic() >= retry_until:
                if failure is not None:
                    raise failure
                break
            logger.warning("commit refused while the group coordinator moves (%s); again in %.2f s", error, pause)
            time.sleep(pause)
            pause = min(2 * pause, COMMIT_RETRY_MAX_SECONDS)
        self._checkpoint_starts.clear()
        return committed


class MessageRunApplication(Application):
    """A Quix Streams Application that processes runs of up to ``max_messages`` messages as single rows."""

    def __init__(self, *args: Any, max_messages: int = 5_000, **kwargs: Any) -> None:
        self._max_messages = max_messages  # read by _get_internal_consumer, which Application.__init__ calls
        super().__init__(*args, **kwargs)

    def _get_internal_consumer(
        self, on_error: Any = None, extra_config_overrides: dict | None = None
    ) -> MessageRunConsumer:
        config = self._config
        return MessageRunConsumer(
            broker_address=config.broker_address,
            consumer_group=config.consumer_group,
            auto_offset_reset=config.auto_offset_reset,
            auto_commit_enable=False,
            extra_config={**config.consumer_extra_config, **(extra_config_overrides or {})},
            on_error=on_error,
            max_messages=self._max_messages,
        )


class RunReadings(NamedTuple):
    """A run's valid readings as an Arrow table (``plantwatch.reading.ARROW_SCHEMA``), with each message's offset,
    how many readings it gave (0: dead-lettered or dropped) and its bytes as read (what the sink's deduplication
    tokens are checksums of), in offset order."""

    readings: pa.Table
    counts: list[int]
    offsets: list[int]
    raws: list[bytes]

    def per_message(self, change: Callable[[MessageReadings], MessageReadings | None]) -> RunReadings:
        """The run with ``change`` applied to each message's readings (None drops the message's readings)."""
        mine = table_columns(self.readings)
        columns: tuple[list, ...] = tuple([] for _ in mine)
        counts, start = [], 0
        for count in self.counts:
            changed = None
            if count:
                machine_ids, sensor_ids, kinds, values, units, times, seqs, versions = (
                    column[start : start + count] for column in mine
                )
                readings = MessageReadings(
                    machine_ids[0], times[0], versions[0], sensor_ids, kinds, values, units, seqs
                )
                changed = change(readings)
                start += count
            if changed is None:
                counts.append(0)
                continue
            for column, values in zip(columns, changed.columns(), strict=True):
                column.extend(values)
            counts.append(len(changed.values))
        return RunReadings(readings_table(columns), counts, self.offsets, self.raws)
