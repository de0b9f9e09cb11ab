"""The Kafka topics plantwatch reads and writes: the readings topic (or one per ClickHouse shard) and the dead-letter
topic, from the settings.

They belong to the deployment, not to one app (the ingest never creates them: partitions and retention are the
operator's choice), so they are created by ``plantwatch stack up`` and ``plantwatch db migrate``, with
``kafka.partitions`` partitions; creating them again is a no-op.
"""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch.settings import Settings

CREATED_BY = "`plantwatch db migrate` (or `plantwatch stack up` for the local stack)"
# A group's coordinator away, moving to another broker or loading the group, or the request to it timed out: what
# a commit gets for a few seconds after the coordinator's broker died, while the member is still in its group.
COORDINATOR_MOVING = frozenset({
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR,
    KafkaError._WAIT_COORD, KafkaError.REQUEST_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
})  # fmt: skip
# That, Kafka unreachable, or a member dropped from its group after its session timed out: what a broker restart or
# outage causes, and a client waits out.
TRANSIENT_KAFKA_ERRORS = COORDINATOR_MOVING | {
    KafkaError._ALL_BROKERS_DOWN, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.ILLEGAL_GENERATION,
    KafkaError.REBALANCE_IN_PROGRESS,
}  # fmt: skip


def transient_kafka_error(error: object) -> bool:
    """Whether an error (a KafkaException's KafkaError) is one of those a client retries after a pause."""
    return isinstance(error, KafkaError) and error.code() in TRANSIENT_KAFKA_ERRORS


def shard_readings_topic(settings: Settings, shard: int) -> str:
    """Shard ``shard``'s readings topic (kafka.topic_per_shard)."""
    return f"{settings.kafka.readings_topic}.shard{shard}"


def shard_consumer_group(settings: Settings, shard: int) -> str:
    """The consumer group of shard ``shard``'s ingests (kafka.topic_per_shard)."""
    return f"{settings.ingest.consumer_group}.shard{shard}"


def readings_topics(settings: Settings) -> list[str]:
    """The readings topics: one, or one per ClickHouse shard (kafka.topic_per_shard)."""
    if not settings.kafka.topic_per_shard:
        return [settings.kafka.readings_topic]
    return [shard_readings_topic(settings, shard) for shard in range(settings.clickhouse.shards)]


def readings_topic_of(settings: Settings, machine_id: str) -> str:
    """The topic a machine's readings are published to: its shard's with kafka.topic_per_shard."""
    if not settings.kafka.topic_per_shard:
        return settings.kafka.readings_topic
    return shard_readings_topic(settings, settings.clickhouse.machine_shard(machine_id))


def topic_names(settings: Settings) -> list[str]:
    return [*readings_topics(settings), settings.kafka.dead_letter_topic]


def admin_client(settings: Settings) -> AdminClient:
    """An admin client that logs librdkafka's warnings and errors, not its informational lines (`BGQUEUE: Purging
    1 unserved events` on every close, printed over the CLI's output)."""
    return AdminClient({**settings.kafka.client_config(), "log_level": 4})


def missing_topics(settings: Settings, timeout: float = 10.0) -> list[str]:
    """The configured topics the cluster does not have (raises KafkaException when Kafka does not answer)."""
    existing = admin_client(settings).list_topics(timeout=timeout).topics
    return [name for name in topic_names(settings) if name not in existing]


def ensure_topics(settings: Settings, timeout: float = 30.0) -> list[str]:
    """Create the configured topics that are missing; returns the names created (none when all exist)."""
    admin = admin_client(settings)
    existing = admin.list_topics(timeout=timeout).topics
    kafka = settings.kafka
    # A cluster's replication factor and min.insync.replicas (unset: the brokers' defaults, -1 and no config).
    replication = {"replication_factor": kafka.replication_factor or -1}
    if kafka.min_insync_replicas is not None:
        replication["config"] = {"min.insync.replicas": str(kafka.min_insync_replicas)}
    wanted = [
        NewTopic(name, num_partitions=kafka.partitions, **replication)  # type: ignore[arg-type]
        for name in topic_names(settings)
        if name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # created meanwhile by someone else: fine
                raise
    return created
