"""The ingest's Prometheus metrics (served on /metrics by plantwatch.metrics.serve_metrics).

Counters move once per batch, not per message: a Prometheus counter takes a lock, and the
per-message path is where the ingest's time goes. Consumer lag comes from librdkafka's own statistics (the
``consumer_lag`` of each assigned partition), reported every ``ingest.lag_report_ms``.
"""

from __future__ import annotations

import orjson
from prometheus_client import Counter, Gauge, Histogram

MESSAGES_CONSUMED = Counter(
    "plantwatch_ingest_messages_consumed", "Kafka messages the ingest has read (replays read again included)."
)
# By the topic they were read from: with a topic per shard (kafka.topic_per_shard) a stalled shard shows as one topic
# whose readings wait while the others land (prometheus/rules/pipeline.yml, PlantwatchTopicStalled).
READINGS_LANDED = Counter(
    "plantwatch_ingest_readings_landed", "Readings inserted into the ClickHouse raw table, by topic.", ["topic"]
)
DEAD_LETTERED = Counter(
    "plantwatch_ingest_dead_lettered", "Messages sent to the dead-letter topic, by reason.", ["reason"]
)
BATCH_INSERT_SECONDS = Histogram(
    "plantwatch_ingest_batch_insert_seconds",
    "Time for ClickHouse to acknowledge one batch insert.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CONSUMER_LAG = Gauge(
    "plantwatch_ingest_consumer_lag", "Messages not yet consumed, per partition.", ["topic", "partition"]
)


def record_lag(stats_json: str) -> None:
    """librdkafka ``stats_cb``: the gauge becomes the lag of each partition assigned to this process now.

    librdkafka's ``consumer_lag`` is the high watermark minus the committed offset, the lag KEDA scales on; -1
    means not known (nothing committed yet, or the partition is not ours).
    """
    stats = orjson.loads(stats_json)
    lags = {
        (topic, partition): p["consumer_lag"]
        for topic, info in stats.get("topics", {}).items()
        for partition, p in info.get("partitions", {}).items()
        if partition != "-1" and p.get("consumer_lag", -1) >= 0
    }
    CONSUMER_LAG.clear()  # partitions moved to another process by a rebalance must not linger
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic, partition).set(lag)
