"""A readings topic per ClickHouse shard (kafka.topic_per_shard): producers send each machine's readings to its
shard's topic, by the same hash as the Distributed tables' sharding key, and `plantwatch ingest --shard k` lands shard
k's topic in a consumer group of its own. The drill that shows a stopped shard no longer holds back the other is in
tests/test_cluster_stack.py; these tests run on the single-node stack."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter

import pytest
from confluent_kafka.admin import AdminClient

from plantwatch import warehouse
from plantwatch.producers.sdk_logger import SdkLogger
from plantwatch.settings import MACHINE_SHARDING_KEY, PROJECT_ROOT, Settings, environment
from plantwatch.stack.cluster import cluster_environment, local_cluster
from plantwatch.streams.ingest import IngestError, check_sharding, landing, landing_table
from plantwatch.topics import ensure_topics, readings_topic_of, readings_topics, topic_names
from tests.fixtures.kafka_topic import read_topic

MACHINES = [f"M-{i:03d}" for i in range(400)] + ["pump.7", "rig:2", "ÄÖ-unicode"]


def sharded(settings: Settings, shards: int = 2, *, topic_per_shard: bool = True, shard: int | None = None) -> Settings:
    clickhouse = settings.clickhouse.model_copy(update={"cluster": "plantwatch", "shards": shards})
    kafka = settings.kafka.model_copy(update={"topic_per_shard": topic_per_shard})
    ingest = settings.ingest.model_copy(update={"shard": shard})
    return settings.model_copy(update={"clickhouse": clickhouse, "kafka": kafka, "ingest": ingest})


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_a_machines_shard_is_the_one_clickhouse_puts_it_on(settings: Settings, stack: object, shards: int) -> None:
    """The producers' shard of a machine is the Distributed tables' sharding key modulo the shards, computed by
    ClickHouse itself."""
    ids = ", ".join(f"'{m}'" for m in MACHINES)
    rows = (
        warehouse.client(settings, database="default")
        .query(f"SELECT machine_id, {MACHINE_SHARDING_KEY} % {shards} FROM (SELECT arrayJoin([{ids}]) AS machine_id)")
        .result_rows
    )
    mine = sharded(settings, shards).clickhouse
    assert {m: s for m, s in rows} == {m: mine.machine_shard(m) for m in MACHINES}
    assert len(set(mine.machine_shard(m) for m in MACHINES)) == shards  # every shard gets machines


def test_one_topic_unless_topic_per_shard(settings: Settings) -> None:
    assert readings_topics(settings) == [settings.kafka.readings_topic]
    assert readings_topics(sharded(settings, topic_per_shard=False)) == [settings.kafka.readings_topic]
    per_shard = sharded(settings, 3)
    base = settings.kafka.readings_topic
    assert readings_topics(per_shard) == [f"{base}.shard0", f"{base}.shard1", f"{base}.shard2"]
    assert topic_names(per_shard) == [*readings_topics(per_shard), settings.kafka.dead_letter_topic]
    for machine in MACHINES[:50]:
        assert readings_topic_of(settings, machine) == base
        assert readings_topic_of(per_shard, machine) == f"{base}.shard{per_shard.clickhouse.machine_shard(machine)}"


def test_the_sdk_logger_sends_each_machine_to_its_shards_topic(
    settings: Settings, stack: object, kafka_admin: AdminClient
) -> None:
    mine = sharded(settings.scoped(f"test.{uuid.uuid4().hex[:10]}"), 2)
    created = ensure_topics(mine)
    try:
        assert sorted(created) == sorted(topic_names(mine))
        machines = MACHINES[:40]
        with SdkLogger(mine, archive=False) as logger:
            for seq in range(5):
                for machine in machines:
                    logger.log(machine, 1_700_000_000_000 + seq, [
                        {"sensor_id": "t", "kind": "temperature", "value": 1.0, "unit": "C", "seq": seq}
                    ])  # fmt: skip
        for shard, topic in enumerate(readings_topics(mine)):
            keys = Counter(record.key.decode() for record in read_topic(mine, topic))
            assert keys == {m: 5 for m in machines if mine.clickhouse.machine_shard(m) == shard}, topic
    finally:
        kafka_admin.delete_topics(topic_names(mine))


def test_an_ingest_per_shard_consumes_its_shards_topic_in_a_group_of_its_own(settings: Settings) -> None:
    base = sharded(settings, 2)
    for shard in (0, 1):
        land = landing(base.model_copy(update={"ingest": base.ingest.model_copy(update={"shard": shard})}))
        assert land.kafka.readings_topic == f"{settings.kafka.readings_topic}.shard{shard}"
        assert land.kafka.dead_letter_topic == settings.kafka.dead_letter_topic  # one dead-letter topic for all
        assert topic_names(land) == [land.kafka.readings_topic, settings.kafka.dead_letter_topic]
        assert land.ingest.consumer_group == f"{settings.ingest.consumer_group}.shard{shard}"
        # Inserts still go to the raw table on the configured node (the Distributed table, which puts them on the
        # local tables the transform's materialized views are attached to).
        assert land.clickhouse == base.clickhouse
        assert landing_table(base) == settings.clickhouse.raw_readings_table
    assert landing(settings) is settings  # without topic_per_shard: unchanged


def test_with_into_shard_an_ingest_per_shard_inserts_into_its_shards_local_table_on_its_node(
    settings: Settings,
) -> None:
    base = sharded(settings, 2)
    ch = base.clickhouse.model_copy(update={"replicated": False})
    base = base.model_copy(update={"clickhouse": ch, "ingest": base.ingest.model_copy(update={"into_shard": True})})
    assert landing_table(base) == f"{ch.raw_readings_table}{ch.local_suffix}"
    for shard in (0, 1):
        land = landing(base.model_copy(update={"ingest": base.ingest.model_copy(update={"shard": shard})}))
        assert land.kafka.readings_topic == f"{settings.kafka.readings_topic}.shard{shard}"
        assert (land.clickhouse.http_port, land.clickhouse.tcp_port) == ch.node_ports(shard)
        # the Distributed table's name stays configured: check_sharding reads its engine on the shard's node
        assert land.clickhouse.raw_readings_table == ch.raw_readings_table
    without_topics = base.model_copy(update={"kafka": base.kafka.model_copy(update={"topic_per_shard": False})})
    assert landing_table(without_topics) == ch.raw_readings_table  # one ingest for all: the Distributed table


def test_into_shard_is_the_local_clusters_default_and_needs_a_cluster_without_replicas() -> None:
    cluster = local_cluster(Settings(), brokers=1, shards=2)
    assert cluster_environment(cluster)["PLANTWATCH_INGEST__INTO_SHARD"] == "true"
    for clickhouse in ({}, {"cluster": "plantwatch"}):  # no cluster; a replicated one (the default)
        with pytest.raises(ValueError, match=r"ingest\.into_shard needs a cluster without replicas"):
            Settings(ingest={"into_shard": True}, clickhouse=clickhouse)
    assert Settings(ingest={"into_shard": True}, clickhouse={"cluster": "plantwatch", "replicated": False})


@pytest.mark.parametrize(
    ("topic_per_shard", "shard", "message"),
    [
        (True, None, r"run one ingest per shard, `plantwatch ingest --shard K` with K in 0\.\.1$"),
        (True, 2, r"with K in 0\.\.1 \(not 2\)"),
        (False, 0, "--shard needs kafka.topic_per_shard"),
    ],
)
def test_a_wrong_shard_is_one_clear_error(
    settings: Settings, topic_per_shard: bool, shard: int | None, message: str
) -> None:
    with pytest.raises(IngestError, match=message):
        landing(sharded(settings, 2, topic_per_shard=topic_per_shard, shard=shard))


def test_plantwatch_ingest_shard_without_topic_per_shard_says_so(settings: Settings) -> None:
    result = subprocess.run([sys.executable, "-m", "plantwatch.cli", "ingest", "--shard", "1"], cwd=PROJECT_ROOT,
                            env={**os.environ, **environment(settings)}, capture_output=True, text=True, timeout=60,
                            check=False)  # fmt: skip
    assert result.returncode == 2, result
    assert result.stderr.strip().splitlines()[-1] == (
        "error: --shard needs kafka.topic_per_shard (a readings topic per ClickHouse shard)"
    )


def test_an_ingest_per_shard_refuses_a_raw_table_sharded_otherwise(isolated: Settings) -> None:
    """A cluster whose raw table is not sharded by the producers' key (made before the key was CRC32, or by hand)
    would put other shards' machines in each shard's topic: the per-shard ingest says so and does not start. (The
    matching case is every per-shard drill in tests/test_cluster_stack.py.)"""
    clustered = isolated.model_copy(
        update={"clickhouse": isolated.clickhouse.model_copy(update={"cluster": "plantwatch", "shards": 2})}
    )
    with pytest.raises(IngestError, match=r"is ReplacingMergeTree.*not sharded by CRC32\(machine_id\)"):
        check_sharding(clustered)
    check_sharding(isolated)  # one node: nothing to check
