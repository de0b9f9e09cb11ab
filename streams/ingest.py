"""`plantwatch ingest`: readings from Kafka, validated, into ClickHouse; anything invalid to the dead-letter topic.

    readings topic ──► rows_or_dead_letter ──► [enrich] ──► ClickHouseSink (columnar batch per partition)
                              └──► dead-letter topic (original bytes + reason + source offset)

Quix Streams checkpoints every ``ingest.batch_messages`` messages or ``ingest.flush_interval_seconds``: the sink
inserts its batches, then the offsets are committed (at-least-once; see clickhouse_sink for why a redelivered
batch does not show twice). SIGTERM stops the loop, flushes the open batch and commits. Several processes in one
consumer group share the partitions. Run it with ``python -m streams.ingest`` or ``plantwatch ingest``.
"""

from __future__ import annotations

import gc
import logging

from quixstreams import Application
from quixstreams.dataframe import StreamingDataFrame
from quixstreams.kafka.configuration import ConnectionConfig

from plantwatch.metrics import serve_metrics
from plantwatch.settings import Settings, get_settings
from streams.clickhouse_sink import ClickHouseSink
from streams.dead_letter import DeadLetterQueue
from streams.metrics import record_lag

logger = logging.getLogger(__name__)


def make_app(settings: Settings) -> Application:
    kafka, ingest = settings.kafka, settings.ingest
    return Application(
        broker_address=ConnectionConfig.from_librdkafka_dict(kafka.client_config()),
        consumer_group=ingest.consumer_group,
        auto_offset_reset=ingest.auto_offset_reset,
        commit_every=ingest.batch_messages,
        commit_interval=ingest.flush_interval_seconds,
        consumer_extra_config={
            "statistics.interval.ms": ingest.lag_report_ms,
            "stats_cb": record_lag,
            "session.timeout.ms": ingest.session_timeout_ms,
        },
        auto_create_topics=False,  # topics belong to the deployment (partitions, retention), not to one app
        use_changelog_topics=False,  # stateless
        state_dir=settings.state_dir / "quixstreams",
    )


def build_pipeline(app: Application, settings: Settings, dead_letters: DeadLetterQueue, sink: ClickHouseSink) -> None:
    readings = app.topic(settings.kafka.readings_topic, value_deserializer="bytes", key_deserializer="bytes")
    sdf: StreamingDataFrame = app.dataframe(readings)
    sdf = sdf.apply(dead_letters.rows_or_dead_letter, metadata=True)
    if settings.ingest.enrich is not None:
        sdf = sdf.apply(settings.ingest.enrich)
    sdf.sink(sink)


def tune_gc() -> None:
    """Collect young objects less often, and never rescan what start-up made.

    The hot loop allocates a couple of dozen short-lived objects per message; at the default threshold (700) the
    cyclic collector ran every few dozen messages (bench/ingest.py: 20-40% more readings/s with this).
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


def run(settings: Settings) -> None:
    """Serve /metrics and consume until SIGTERM or SIGINT."""
    port = serve_metrics(settings, "ingest", settings.ingest.metrics_port or None, settings.ingest.metrics_host)
    app = make_app(settings)
    dead_letters = DeadLetterQueue(app.get_producer(), settings.kafka.dead_letter_topic)
    sink = ClickHouseSink(settings, settings.ingest.insert_rows, flush_first=dead_letters.flush)
    build_pipeline(app, settings, dead_letters, sink)
    tune_gc()
    logger.info("ingest %s -> %s, metrics on :%d", settings.kafka.readings_topic, settings.clickhouse.database, port)
    app.run()


if __name__ == "__main__":
    run(get_settings())
