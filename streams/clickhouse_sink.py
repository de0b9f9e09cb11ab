"""A Quix Streams sink that lands readings in the ClickHouse raw table, in columnar inserts (Arrow format).

Each run of messages' readings (``plantwatch.streams.message_batches.RunReadings``, an Arrow table) is appended to its
partition's open batch as a slice of that table (no copy). Once a batch holds ``insert_rows`` rows it is handed to a
background thread that inserts it while consumption goes on; at each Quix Streams checkpoint ``flush()`` inserts the
open batches of all partitions together and waits for every insert to be acknowledged, and only then are the offsets
committed (at-least-once). An insert is its batches' slices made one Arrow record batch, sent as an Arrow stream:
nothing is converted value by value (clickhouse-connect's Native format from Python lists cost ~7x the CPU,
bench/ingest.py --profile). The overlap matters: half of an insert's time is ClickHouse working, and the consumer
loop need not wait for it.

A redelivered batch (the app died after an insert, before the commit) is dropped twice over:
- every insert carries ``insert_deduplication_token`` = topic/partition/first-last offset/checksum (128 bits of
  SHA-1, twice as fast as BLAKE2b here) of the messages' bytes of each batch in it, and the raw table keeps a
  ``non_replicated_deduplication_window``: a retried insert of the same messages is dropped by ClickHouse (batches
  are cut at the same offsets again when the same messages are replayed from the same committed offset). The
  checksum is what tells a topic deleted and created again (offsets from 0 again, other messages) from a
  redelivery: offsets alone repeated, and ClickHouse dropped the new readings as duplicates, silently;
- a batch cut differently on redelivery still carries readings with the same sort key, which the
  ReplacingMergeTree folds away; the ``readings`` view (``FINAL``) shows them once even before a merge.
"""

from __future__ import annotations

import hashlib
import logging
import time
from bisect import bisect_left
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import accumulate
from typing import Any

import pyarrow as pa
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from quixstreams.models import HeadersTuples
from quixstreams.sinks import BaseSink, SinkBackpressureError

from plantwatch import warehouse
from plantwatch.reading import ARROW_SCHEMA, COLUMN_NAMES
from plantwatch.settings import Settings
from plantwatch.streams.message_batches import RunReadings
from plantwatch.streams.metrics import BATCH_INSERT_SECONDS, MESSAGES_CONSUMED, READINGS_LANDED

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5.0
# ClickHouse up but pushing back, or unsure whether an insert landed: worth a pause and a replay, like an outage.
# Anything else (access denied, a missing table or column) is a configuration error, and stops the app.
RETRYABLE_SERVER_ERRORS = frozenset({
    "TOO_MANY_PARTS", "MEMORY_LIMIT_EXCEEDED", "TOO_MANY_SIMULTANEOUS_QUERIES", "TIMEOUT_EXCEEDED", "SOCKET_TIMEOUT",
    "NETWORK_ERROR", "TABLE_IS_READ_ONLY", "UNKNOWN_STATUS_OF_INSERT", "SESSION_IS_LOCKED",
    "ALL_CONNECTION_TRIES_FAILED",  # a cluster's shard down: the Distributed insert could not reach it
    # ... or it went down during the insert (its connection closed under the Distributed table's send)
    "ATTEMPT_TO_READ_AFTER_EOF", "CANNOT_READ_FROM_SOCKET", "CANNOT_WRITE_TO_SOCKET",
})  # fmt: skip


class ColumnBatch:
    """One partition's readings from a run of consecutive offsets, as slices of the runs' Arrow tables."""

    def __init__(self, topic: str, partition: int, first_offset: int) -> None:
        self.topic = topic
        self.partition = partition
        self.tables: list[pa.Table] = []
        self._rows = 0
        self.first_offset = first_offset
        self.last_offset = first_offset
        self.messages = 0
        self._checksum = hashlib.sha1(usedforsecurity=False)

    @property
    def rows(self) -> int:
        return self._rows

    def extend(self, run: RunReadings, messages: slice, first_reading: int, end_reading: int) -> None:
        """Append a slice of a run: its messages (for the offsets) and their readings."""
        if end_reading > first_reading:
            self.tables.append(run.readings.slice(first_reading, end_reading - first_reading))
            self._rows += end_reading - first_reading
        offsets = run.offsets[messages]
        self.last_offset = offsets[-1]
        self.messages += len(offsets)
        self._checksum.update(b"".join(run.raws[messages]))

    @property
    def deduplication_token(self) -> str:
        """Where the batch's messages were read and a checksum of their bytes: the same for the same messages
        read again, different for other messages at the same offsets (a topic deleted and created again)."""
        checksum = self._checksum.hexdigest()[:32]
        return f"{self.topic}/{self.partition}/{self.first_offset}-{self.last_offset}/{checksum}"


class ClickHouseSink(BaseSink):
    """Quix Streams' sink interface (add, flush, on_paused) over batches of its own: Arrow slices cut at
    ``insert_rows`` rows, inserted in the background, and awaited at each checkpoint (Quix Streams' BatchingSink
    keeps every message and writes at the checkpoint only)."""

    def __init__(
        self,
        settings: Settings,
        table: str,
        insert_rows: int = 100_000,
        flush_first: Callable[[], None] | None = None,
    ) -> None:
        """``table``: the raw table, or a shard's local table (streams/ingest.py, landing_table). ``flush_first``
        runs at each checkpoint before the last inserts (the dead-letter producer's flush)."""
        super().__init__()
        self._batches: dict[tuple[str, int], ColumnBatch] = {}  # each partition's open batch
        self._settings = settings
        self._table = table
        self._insert_rows = insert_rows
        self._flush_first = flush_first
        self._client: Client | None = None
        # One thread: inserts stay in order and the client is never shared between threads.
        self._inserter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clickhouse-insert")
        self._inserts: list[Future[None]] = []

    def setup(self) -> None:
        """Connect (failing fast when ClickHouse is unreachable) as the ingest user: INSERT on the raw table only."""
        self._client = warehouse.client(
            self._settings,
            role="ingest",
            compress=False,
            send_receive_timeout=self._settings.ingest.insert_timeout_seconds,
            # No HTTP session: an insert abandoned on timeout would keep the session locked on the server, and the
            # replay would fail with SESSION_IS_LOCKED instead of landing.
            autogenerate_session_id=False,
        )

    def add(
        self,
        value: RunReadings,
        key: Any,
        timestamp: int,
        headers: HeadersTuples,
        topic: str,
        partition: int,
        offset: int,
    ) -> None:
        """Called once per run of messages (plantwatch.streams.message_batches), the hot path.

        A batch is cut right after the message that brings it to ``insert_rows`` rows, wherever the runs begin and
        end: the same messages replayed from the same committed offset are cut into the same batches again, with
        the same deduplication tokens.
        """
        MESSAGES_CONSUMED.inc(len(value.offsets))
        ends = list(accumulate(value.counts))  # the reading index after each message
        first_message, first_reading = 0, 0
        while first_message < len(ends):
            batch = self._batches.get((topic, partition))
            if batch is None:
                batch = self._batches[(topic, partition)] = ColumnBatch(topic, partition, value.offsets[first_message])
            last = bisect_left(ends, first_reading + self._insert_rows - batch.rows, lo=first_message)
            if last >= len(ends):  # the batch takes the rest of the run and stays open
                batch.extend(value, slice(first_message, None), first_reading, ends[-1])
                return
            batch.extend(value, slice(first_message, last + 1), first_reading, ends[last])
            del self._batches[(topic, partition)]
            self._inserts.append(self._inserter.submit(self.write, [batch]))
            first_message, first_reading = last + 1, ends[last]

    def flush(self) -> None:
        """Insert the open batches and wait until ClickHouse acknowledged every insert since the last checkpoint."""
        if self._flush_first is not None:
            self._flush_first()
        if self._batches:
            # One insert for every partition's open batch: a checkpoint waits for one round trip, not one a partition.
            self._inserts.append(self._inserter.submit(self.write, list(self._batches.values())))
            self._batches.clear()
        inserts, self._inserts = self._inserts, []
        try:
            for insert in inserts:
                insert.result()
        except DatabaseError as exc:
            # ClickHouse unreachable, silent or pushing back: Quix Streams pauses, seeks back to the last commit and
            # replays.
            if not isinstance(exc, OperationalError) and exc.name not in RETRYABLE_SERVER_ERRORS:
                raise
            logger.warning("insert failed (%s); replaying from the last commit in %.0f s", exc, RETRY_AFTER_SECONDS)
            raise SinkBackpressureError(retry_after=RETRY_AFTER_SECONDS) from exc

    def on_paused(self) -> None:
        """The checkpoint failed (backpressure): drop the open batches and wait for the inserts under way; Quix
        Streams seeks back to the last commit and replays all of it."""
        self._batches.clear()
        for insert in self._inserts:
            insert.exception()  # wait; what it carried will be replayed
        self._inserts = []

    def write(self, batches: list[ColumnBatch]) -> None:
        """Insert the batches as one block, deduplicated by the offsets they hold (on the inserter thread)."""
        rows = sum(batch.rows for batch in batches)
        if rows:
            started = time.perf_counter()
            self._client.raw_insert(
                self._table,
                COLUMN_NAMES,
                insert_block(batches),
                settings={"insert_deduplication_token": ",".join(b.deduplication_token for b in batches)},
                fmt="ArrowStream",
            )
            BATCH_INSERT_SECONDS.observe(time.perf_counter() - started)
            for batch in batches:
                READINGS_LANDED.labels(batch.topic).inc(batch.rows)


def insert_block(batches: list[ColumnBatch]) -> pa.Buffer:
    """The batches' readings as one Arrow record batch in an Arrow stream: ClickHouse's ArrowStream input. Sent as
    it is (bytes would be copied twice more: into bytes, then after the INSERT statement)."""
    table = pa.concat_tables([table for batch in batches for table in batch.tables]).combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, ARROW_SCHEMA) as stream:
        stream.write_table(table)
    return sink.getvalue()
