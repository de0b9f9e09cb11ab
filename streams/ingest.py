"""`plantwatch ingest`: readings from Kafka, validated, into ClickHouse; anything invalid to the dead-letter topic.

    readings topic ──► readings_or_dead_letter ──► [enrich] ──► ClickHouseSink (columnar batch per partition)
                              └──► dead-letter topic (original bytes + reason + source offset)

Each row through the pipeline is a run of up to ``ingest.poll_messages`` consecutive messages of one partition
(plantwatch.streams.message_batches: Quix Streams' per-message loop would cost more than the work). Quix Streams
checkpoints every ``ingest.flush_interval_seconds``: the sink inserts its batches, then the offsets are committed
(at-least-once; see clickhouse_sink for why a redelivered batch does not show twice). SIGTERM stops the loop,
flushes the open batch and commits. Several processes in one consumer group share the partitions. At start both
topics must exist (a missing one is one line naming the command that creates it, exit 2) and ClickHouse is waited
for. Run it with ``python -m plantwatch.streams.ingest`` or ``plantwatch ingest``.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import time
from collections.abc import Callable

import pyarrow as pa
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from confluent_kafka import KafkaException
from quixstreams.checkpointing.exceptions import CheckpointConsumerCommitError
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig

from plantwatch import warehouse
from plantwatch.metrics import serve_metrics
from plantwatch.reading import MessageReadings
from plantwatch.settings import MACHINE_SHARDING_KEY, Settings, get_settings
from plantwatch.streams.clickhouse_sink import ClickHouseSink
from plantwatch.streams.dead_letter import DeadLetterQueue
from plantwatch.streams.message_batches import MessageRunApplication, RunReadings
from plantwatch.streams.metrics import record_lag
from plantwatch.topics import (
    CREATED_BY,
    missing_topics,
    shard_consumer_group,
    shard_readings_topic,
    transient_kafka_error,
)

logger = logging.getLogger(__name__)
Enrich = Callable[[MessageReadings], MessageReadings | None]


def make_app(settings: Settings) -> MessageRunApplication:
    kafka, ingest = settings.kafka, settings.ingest
    # Quix Streams makes <state_dir>/<group> unless it exists: two replicas starting together on one disk raced
    # (FileExistsError). The app keeps no state there.
    (settings.state_dir / "quixstreams" / ingest.consumer_group).mkdir(parents=True, exist_ok=True)
    return MessageRunApplication(
        max_messages=ingest.poll_messages,
        consumer_poll_timeout=ingest.poll_seconds,
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka.client_config()),
        consumer_group=ingest.consumer_group,
        auto_offset_reset=ingest.auto_offset_reset,
        commit_interval=ingest.flush_interval_seconds,
        consumer_extra_config={
            "statistics.interval.ms": ingest.lag_report_ms,
            "stats_cb": record_lag,
            "session.timeout.ms": ingest.session_timeout_ms,
            "queued.max.messages.kbytes": ingest.consumer_queue_kbytes,
            "fetch.max.bytes": ingest.fetch_max_bytes,
        },
        auto_create_topics=False,  # topics belong to the deployment (partitions, retention), not to one app
        use_changelog_topics=False,  # stateless
        state_dir=settings.state_dir / "quixstreams",
    )


def enrich_each(enrich: Enrich) -> Callable[[RunReadings], RunReadings]:
    """The user's enrich hook, applied to each valid message of a run."""

    def enrich_run(run: RunReadings) -> RunReadings:
        return run.per_message(enrich)

    return enrich_run


def build_pipeline(
    app: MessageRunApplication, settings: Settings, dead_letters: DeadLetterQueue, sink: ClickHouseSink
) -> None:
    readings = app.topic(settings.kafka.readings_topic, value_deserializer="bytes", key_deserializer="bytes")
    sdf: StreamingDataFrame = app.dataframe(readings)
    sdf = sdf.apply(dead_letters.readings_or_dead_letter)
    if settings.ingest.enrich is not None:
        sdf = sdf.apply(enrich_each(settings.ingest.enrich))
    sdf.sink(sink)


def tune_gc() -> None:
    """Collect young objects less often, and never rescan what start-up made.

    Decoding allocates a dozen short-lived containers per message; at the default threshold (700) the cyclic
    collector ran many times per run of messages (bench/ingest.py: 20-40% more readings/s with this).
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def tune_memory() -> None:
    """Arrow's buffers (each run's columns, each insert's block) from the C library's malloc, not pyarrow's default
    mimalloc, which gave the pages of freed buffers back to the system at once for the next run to fault them in
    again (bench/ingest.py: ~15% more readings per CPU-second, half the insert thread's system time; jemalloc did
    less well). ARROW_DEFAULT_MEMORY_POOL, when set, still decides."""
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())


# Kafka unreachable, the group coordinator away, moving or loading, or this member dropped from the group after its
# session timed out (a broker restart or outage) ends Quix Streams' run loop with a failed offset commit, or fails
# the app's start with a metadata error (plantwatch.topics.transient_kafka_error): the app is built again and resumes
# from the last committed offsets after a pause that doubles up to the maximum (a redelivered batch lands once in the
# view, see clickhouse_sink). Other errors end the process.
RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS = 1.0, 30.0


def transient(exc: CheckpointConsumerCommitError | KafkaException) -> bool:
    return transient_kafka_error(exc.error if isinstance(exc, CheckpointConsumerCommitError) else exc.args[0])


class IngestError(Exception):
    """What the ingest cannot start with and waiting will not fix (a missing topic, a refused user): one line for
    its user (``plantwatch ingest`` prints it and exits 2)."""


def check_topics(settings: Settings) -> None:
    """Both topics must exist: the ingest does not create them (plantwatch.topics)."""
    if missing := missing_topics(settings):
        raise IngestError(
            f"{'topics' if len(missing) > 1 else 'topic'} {', '.join(map(repr, missing))} not found on Kafka at "
            f"{settings.kafka.bootstrap_servers}: create {'them' if len(missing) > 1 else 'it'} with {CREATED_BY}"
        )


def landing(settings: Settings) -> Settings:
    """These settings as this ingest uses them: the readings topic, or with kafka.topic_per_shard shard
    ``ingest.shard``'s topic in a consumer group of the shard's own, so that a shard that stops holds back its own
    machines only (their inserts fail and wait; the other shards' ingests never see them).

    Either way the rows go into the raw table, on a cluster its Distributed table on the configured node, which puts
    them on their shard - or with ingest.into_shard (the local cluster) straight into the shard's local table on
    the shard's own node (landing_table): the transform's materialized views, attached to the local tables, see
    every insert either way."""
    shard, shards = settings.ingest.shard, settings.clickhouse.shards
    if not settings.kafka.topic_per_shard:
        if shard is not None:
            raise IngestError("--shard needs kafka.topic_per_shard (a readings topic per ClickHouse shard)")
        return settings
    if shard is None or shard >= shards:
        raise IngestError(
            f"kafka.topic_per_shard is set: run one ingest per shard, `plantwatch ingest --shard K` with K in "
            f"0..{shards - 1}" + (f" (not {shard})" if shard is not None else "")
        )
    kafka = settings.kafka.model_copy(
        update={"readings_topic": shard_readings_topic(settings, shard), "topic_per_shard": False}
    )
    ingest = settings.ingest.model_copy(update={"consumer_group": shard_consumer_group(settings, shard)})
    landed = settings.model_copy(update={"kafka": kafka, "ingest": ingest})
    return warehouse.node_settings(landed, shard) if settings.ingest.into_shard else landed


def landing_table(settings: Settings) -> str:
    """The table the ingest (these settings, as configured: before landing) inserts into: the raw table, or with
    kafka.topic_per_shard and ingest.into_shard the shard's local table (on that shard's node: landing)."""
    ch = settings.clickhouse
    into_shard = settings.kafka.topic_per_shard and settings.ingest.into_shard
    return f"{ch.raw_readings_table}{ch.local_suffix}" if into_shard else ch.raw_readings_table


def check_sharding(settings: Settings) -> None:
    """With a topic per shard the producers pick each machine's topic by MACHINE_SHARDING_KEY: the raw table's
    Distributed engine must shard by the same key, or one shard's topic would carry other shards' machines and a
    stopped shard would hold them all back again (a cluster created before the key was CRC32 keeps its old one)."""
    if settings.clickhouse.cluster is None:
        return
    rows = (
        warehouse.client(settings, role="ingest")
        .query(
            warehouse.query_sql("table_engine"),
            parameters={"database": settings.clickhouse.database, "table": settings.clickhouse.raw_readings_table},
        )
        .result_rows
    )
    engine = rows[0][0] if rows else "no table"
    if not re.fullmatch(rf"Distributed\(.*, {re.escape(MACHINE_SHARDING_KEY)}\)", engine):
        raise IngestError(
            f"kafka.topic_per_shard: {settings.clickhouse.database}.{settings.clickhouse.raw_readings_table} is "
            f"{engine}, not sharded by {MACHINE_SHARDING_KEY} as the producers pick each machine's topic: recreate "
            "the cluster's tables (docs/scale-out.md) or turn kafka.topic_per_shard off"
        )


def wait_for_clickhouse(
    settings: Settings, first: float = RETRY_FIRST_SECONDS, most: float = RETRY_MAX_SECONDS
) -> None:
    """Return once ClickHouse answers as the ingest user, waiting (and saying so) while it does not, as the ingest
    does when ClickHouse goes away mid-run. A server that answers but refuses the user is an IngestError."""
    pause = first
    while True:
        try:
            warehouse.client(settings, role="ingest").close()
            return
        except OperationalError as exc:
            reason = str(exc).splitlines()[0][:200]
            logger.warning("waiting for ClickHouse at %s (%s); next try in %.0f s", settings.clickhouse.http_url,
                           reason, pause)  # fmt: skip
        except DatabaseError as exc:
            raise IngestError(f"ClickHouse at {settings.clickhouse.http_url} refused the ingest: "
                              f"{str(exc).splitlines()[0][:300]}") from exc  # fmt: skip
        time.sleep(pause)
        pause = min(2 * pause, most)


def run(settings: Settings) -> None:
    """Serve /metrics and consume until SIGTERM or SIGINT."""
    per_shard, table = settings.kafka.topic_per_shard, landing_table(settings)
    settings = landing(settings)
    try:
        check_topics(settings)  # before anything is said or served: a missing topic is the one line the user sees
    except KafkaException as exc:
        if not transient(exc):
            raise
    port = serve_metrics(settings, "ingest", settings.ingest.metrics_port or None, settings.ingest.metrics_host)
    logger.info("ingest %s -> %s.%s at %s, metrics on :%d", settings.kafka.readings_topic, settings.clickhouse.database,
                table, settings.clickhouse.http_url, port)  # fmt: skip
    pause = RETRY_FIRST_SECONDS
    while True:
        began = time.monotonic()
        try:
            check_topics(settings)
            wait_for_clickhouse(settings)
            if per_shard:
                check_sharding(settings)
            app = make_app(settings)
            dead_letters = DeadLetterQueue(
                app.get_producer(), settings.kafka.dead_letter_topic, settings.ingest.dead_letter_max_bytes
            )
            sink = ClickHouseSink(settings, table, settings.ingest.insert_rows, flush_first=dead_letters.flush)
            build_pipeline(app, settings, dead_letters, sink)
            tune_memory()
            tune_gc()
            app.run()
            return
        except (CheckpointConsumerCommitError, KafkaException) as exc:
            if not transient(exc):
                raise
            pause = RETRY_FIRST_SECONDS if time.monotonic() - began > RETRY_MAX_SECONDS else pause
            logger.warning("Kafka unavailable (%s); starting again from the last commit in %.0f s", exc, pause)
            time.sleep(pause)
            pause = min(2 * pause, RETRY_MAX_SECONDS)


def configure_logging() -> None:
    """Show this app's own lines (waiting, replaying) the way Quix Streams shows its own."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] [%(name)s] : %(message)s"))
    streams_logger = logging.getLogger("plantwatch.streams")
    if not streams_logger.handlers:
        streams_logger.addHandler(handler)
        streams_logger.setLevel(logging.INFO)


def main() -> None:
    """``python -m plantwatch.streams.ingest``: run, and end with one line and exit 2 on an IngestError."""
    configure_logging()
    try:
        run(get_settings())
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
