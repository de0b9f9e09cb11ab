"""A Quix Streams sink that lands readings in the ClickHouse raw table, in columnar inserts.

Each run of messages' readings (``streams.message_batches.RunReadings``) is appended to its partition's open batch,
as columns. Once a batch holds ``insert_rows`` rows it is handed to a background thread that inserts it (columnar,
through clickhouse-connect) while consumption goes on; at each Quix Streams checkpoint ``flush()`` inserts the open
batches of all partitions together and waits for every insert to be acknowledged, and only then are the offsets
committed (at-least-once). The overlap matters: half of an insert's time is ClickHouse working, and the consumer
loop need not wait for it.

A redelivered batch (the app died after an insert, before the commit) is dropped twice over:
- every insert carries ``insert_deduplication_token`` = topic/partition/first-last offset/checksum of the
  messages' bytes of each batch in it, and the raw table keeps a ``non_replicated_deduplication_window``: a retried
  insert of the same messages is dropped by ClickHouse (batches are cut at the same offsets again when the same
  messages are replayed from the same committed offset). The checksum is what tells a topic deleted and created
  again (offsets from 0 again, other messages) from a redelivery: offsets alone repeated, and ClickHouse dropped
  the new readings as duplicates, silently;
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
from itertools import accumulate, chain
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from clickhouse_connect.driver.insert import InsertContext
from quixstreams.models import HeadersTuples
from quixstreams.sinks import BatchingSink, SinkBackpressureError
from quixstreams.sinks.base import SinkBatch

from plantwatch import warehouse
from plantwatch.reading import COLUMN_NAMES, COLUMNS
from plantwatch.settings import Settings
from streams.message_batches import RunReadings
from streams.metrics import BATCH_INSERT_SECONDS, MESSAGES_CONSUMED, READINGS_LANDED

logger = logging.getLogger(__name__)
COLUMN_TYPES = [c.clickhouse_type for c in COLUMNS]
RETRY_AFTER_SECONDS = 5.0
# ClickHouse up but pushing back, or unsure whether an insert landed: worth a pause and a replay, like an outage.
# Anything else (access denied, a missing table or column) is a configuration error, and stops the app.
RETRYABLE_SERVER_ERRORS = frozenset({
    "TOO_MANY_PARTS", "MEMORY_LIMIT_EXCEEDED", "TOO_MANY_SIMULTANEOUS_QUERIES", "TIMEOUT_EXCEEDED", "SOCKET_TIMEOUT",
    "NETWORK_ERROR", "TABLE_IS_READ_ONLY", "UNKNOWN_STATUS_OF_INSERT", "SESSION_IS_LOCKED",
})  # fmt: skip


class ColumnBatch(SinkBatch):
    """One partition's readings from a run of consecutive offsets, as columns (COLUMNS order)."""

    def __init__(self, topic: str, partition: int, first_offset: int) -> None:
        super().__init__(topic, partition)
        self.columns: list[list[Any]] = [[] for _ in COLUMNS]
        self.first_offset = first_offset
        self.last_offset = first_offset
        self.messages = 0
        self._checksum = hashlib.blake2b(digest_size=16)

    @property
    def size(self) -> int:
        return self.messages

    @property
    def start_offset(self) -> int:
        return self.first_offset

    def empty(self) -> bool:
        return self.messages == 0

    @property
    def rows(self) -> int:
        return len(self.columns[0])

    def extend(self, run: RunReadings, messages: slice, readings: slice) -> None:
        """Append a slice of a run: its messages (for the offsets) and their readings (columns)."""
        for column, values in zip(self.columns, run.columns, strict=True):
            column.extend(values[readings])
        offsets = run.offsets[messages]
        self.last_offset = offsets[-1]
        self.messages += len(offsets)
        self._checksum.update(b"".join(run.raws[messages]))

    @property
    def deduplication_token(self) -> str:
        """Where the batch's messages were read and a checksum of their bytes: the same for the same messages
        read again, different for other messages at the same offsets (a topic deleted and created again)."""
        return f"{self.topic}/{self.partition}/{self.first_offset}-{self.last_offset}/{self._checksum.hexdigest()}"


class ClickHouseSink(BatchingSink):
    def __init__(
        self, settings: Settings, insert_rows: int = 100_000, flush_first: Callable[[], None] | None = None
    ) -> None:
        """``flush_first`` runs at each checkpoint before the last inserts (the dead-letter producer's flush)."""
        super().__init__()
        self._settings = settings
        self._table = settings.clickhouse.raw_readings_table
        self._insert_rows = insert_rows
        self._flush_first = flush_first
        self._client: Client | None = None
        self._context: InsertContext | None = None
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
        # One insert context for every insert: clickhouse-connect's context refers to itself (a bound method kept as
        # an attribute) and to the last data inserted through it, so a context per insert is freed only by Python's
        # cyclic collector, which the ingest runs rarely (streams.ingest.tune_gc): every batch inserted stayed in
        # memory (1.1 -> 1.9 -> 2.7 GB over three rounds of bench/ingest_memory.py). Reused, it holds one batch.
        self._context = self._client.create_insert_context(
            self._table, column_names=COLUMN_NAMES, column_type_names=COLUMN_TYPES, column_oriented=True
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
        """Called once per run of messages (streams.message_batches), the hot path.

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
                batch.extend(value, slice(first_message, None), slice(first_reading, None))
                return
            batch.extend(value, slice(first_message, last + 1), slice(first_reading, ends[last]))
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
        self._batches.clear()
        for insert in self._inserts:
            insert.exception()  # wait; what it carried will be replayed
        self._inserts = []

    def write(self, batches: list[ColumnBatch]) -> None:  # type: ignore[override]
        """Insert the batches as one block, deduplicated by the offsets they hold."""
        rows = sum(batch.rows for batch in batches)
        if rows:
            columns = (
                batches[0].columns
                if len(batches) == 1
                else [list(chain(*c)) for c in zip(*(b.columns for b in batches), strict=True)]
            )
            started = time.perf_counter()
            self._context.settings["insert_deduplication_token"] = ",".join(b.deduplication_token for b in batches)
            self._client.insert(data=columns, context=self._context)
            BATCH_INSERT_SECONDS.observe(time.perf_counter() - started)
            READINGS_LANDED.inc(rows)
