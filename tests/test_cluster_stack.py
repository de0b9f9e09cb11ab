"""The local cluster really runs: a 3-node KRaft Kafka (replication factor 3, min.insync.replicas 2) and two
chdb-served ClickHouse shards, at their own ports and state folder (never the single-node stack's).

Readings of several machines are produced, `python -m plantwatch.streams.ingest` lands them through the Distributed
table, and each reading must be on the shard its machine hashes to, exactly once, with `count()` through the Distributed
table equal to what was produced. The transform runs per shard and its marts read across the shards. Then
bench/scale.py's drills, shortened: the active KRaft controller's node killed mid-stream, and the second shard stopped
for 10 s (a readings topic and an ingest per shard, kafka.topic_per_shard: the first shard must keep landing); each
must lose and duplicate nothing. What this test started it stops. Marked slow; about two minutes (15-30 s of it the
cluster's start-up).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from plantwatch import baseline, warehouse
from plantwatch.expectations.check import check_once
from plantwatch.reading import COLUMN_NAMES, encode
from plantwatch.settings import MACHINE_SHARDING_KEY, PROJECT_ROOT, Settings, environment
from plantwatch.stack import Stack
from plantwatch.stack.cluster import local_cluster
from plantwatch.topics import ensure_topics, topic_names
from plantwatch.transform import Transformer

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from scale import (  # bench/scale.py: its drills, shortened, and its transform process per shard
    broker_drill,
    shard_drill,
    transform_per_shard_processes,
    with_topic_per_shard,
)

pytestmark = pytest.mark.slow

SINGLE_NODE_PORTS = {9092, 9093, 8123, 9000, 9090, 9095}
MACHINES = [f"CM{i:02d}" for i in range(12)]
SENSORS = ["t0", "t1", "t2", "t3"]
MESSAGES_PER_MACHINE = 50
DEADLINE_SECONDS = 110


@contextmanager
def own_topics_and_database(settings: Settings) -> Iterator[Settings]:
    """Topics and a database on every shard for ``settings`` (a scoped name), deleted afterwards."""
    ensure_topics(settings)
    warehouse.migrate(settings)
    try:
        yield settings
    finally:
        AdminClient(settings.kafka.client_config()).delete_topics(topic_names(settings))
        for shard in range(settings.clickhouse.shards):
            node = warehouse.node_settings(settings, shard)
            warehouse.client(node, database="default").command(
                f"DROP DATABASE IF EXISTS {settings.clickhouse.database}"
            )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Settings]:
    """The local cluster (3 brokers, 2 shards) with topics and a database of this test's own."""
    base = local_cluster(Settings(), brokers=3, shards=2)
    mine = base.scoped(f"test-cluster.{uuid.uuid4().hex[:8]}")
    stack = Stack(mine)
    ports = {port for service in stack.services for port in service.ports.values()}
    assert not ports & SINGLE_NODE_PORTS
    assert mine.state_dir == Settings().state_dir / "cluster"
    started = stack.up(timeout=90)
    try:
        with own_topics_and_database(mine):
            yield mine
    finally:
        Stack(mine, started).down()


def test_topics_are_replicated_three_ways_with_min_isr_two(cluster: Settings) -> None:
    admin = AdminClient(cluster.kafka.client_config())
    metadata = admin.list_topics(cluster.kafka.readings_topic, timeout=10)
    assert len(metadata.brokers) == 3
    partitions = metadata.topics[cluster.kafka.readings_topic].partitions
    assert len(partitions) == cluster.kafka.partitions
    assert all(len(p.replicas) == 3 and len(p.isrs) == 3 for p in partitions.values())
    resource = ConfigResource("topic", cluster.kafka.readings_topic)
    config = admin.describe_configs([resource])[resource].result(timeout=10)
    assert config["min.insync.replicas"].value == "2"


def produce(settings: Settings) -> int:
    """Readings of every machine, keyed by machine; returns the readings produced."""
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 5, "acks": "all"})
    now_ms = int(time.time() * 1000)
    produced = 0
    for seq in range(MESSAGES_PER_MACHINE):
        for machine in MACHINES:
            readings = [
                {"sensor_id": s, "kind": "temperature", "value": seq + j / 10, "unit": "C", "seq": seq}
                for j, s in enumerate(SENSORS)
            ]
            producer.produce(settings.kafka.readings_topic, encode(machine, now_ms - 60_000 + seq, readings),
                             machine.encode())  # fmt: skip
            produced += len(readings)
    assert producer.flush(30) == 0
    return produced


def test_each_machine_lands_once_on_its_shard_through_the_distributed_table(cluster: Settings, tmp_path: Path) -> None:
    began = time.monotonic()
    produced = produce(cluster)
    env = {
        **os.environ,
        **environment(cluster),
        "PLANTWATCH_INGEST__CONSUMER_GROUP": f"{cluster.kafka.readings_topic}.ingest",
        "PLANTWATCH_INGEST__FLUSH_INTERVAL_SECONDS": "0.5",
        "PLANTWATCH_INGEST__SESSION_TIMEOUT_MS": "6000",
    }
    log = tmp_path / "ingest.log"
    ingest = subprocess.Popen([sys.executable, "-m", "plantwatch.streams.ingest"], cwd=PROJECT_ROOT, env=env,
                              stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip
    admin = warehouse.client(cluster)
    try:
        landed = 0
        while time.monotonic() - began < DEADLINE_SECONDS:
            landed = admin.query("SELECT count() FROM readings_raw").result_rows[0][0]
            if landed >= produced or ingest.poll() is not None:
                break
            time.sleep(0.5)
        assert landed == produced, log.read_text()[-3000:]
    finally:
        ingest.terminate()
        ingest.wait(30)

    # Through the Distributed table: everything once, the view too.
    assert admin.query("SELECT count() FROM readings").result_rows[0][0] == produced
    # On each shard: only the machines that hash to it, each reading once.
    expected = {m: len(SENSORS) * MESSAGES_PER_MACHINE for m in MACHINES}
    everywhere: Counter[str] = Counter()
    for shard in range(cluster.clickhouse.shards):
        node = warehouse.client(warehouse.node_settings(cluster, shard))
        rows = node.query(
            "SELECT machine_id, count(), uniqExact(machine_id, sensor_id, event_time, seq), "
            f"any({MACHINE_SHARDING_KEY} % 2) FROM readings_raw_local GROUP BY machine_id"
        ).result_rows
        for machine, count, unique, hashed_shard in rows:
            assert hashed_shard == shard == cluster.clickhouse.machine_shard(machine), f"{machine} on shard {shard}"
            assert count == unique == expected[machine]
            everywhere[machine] += count
    assert everywhere == expected  # every machine on exactly one shard, all of its readings
    assert all(n for n in everywhere.values())
    assert time.monotonic() - began < DEADLINE_SECONDS


PER_SHARD_MACHINES = ["L1-pump01", "L1-pump02", "L1-pump04", "L2-pump01", "unknown-7", "unknown-8"]
PER_SHARD_SENSORS = {"temp": ("temperature", "C", 60.0), "vib": ("vibration", "mm/s", 2.0),
                     "amps": ("current", "A", 40.0), "pres": ("pressure", "bar", 6.0)}  # fmt: skip
BREACHING = "L1-pump04"  # its temperature over the pump's spec limit (90 C) for a minute


def insert_readings(settings: Settings, start: datetime, seconds: int, *, breach: bool = True) -> None:
    """One reading per sensor and second of every PER_SHARD_MACHINES machine, through the Distributed table (with
    BREACHING's minute over its limit half-way, if ``breach``)."""
    rng = np.random.default_rng(int(start.timestamp()))
    rows = []
    for machine in PER_SHARD_MACHINES:
        for sensor, (kind, unit, level) in PER_SHARD_SENSORS.items():
            values = level + rng.normal(0, level / 50, seconds)
            if breach and machine == BREACHING and kind == "temperature":
                values[seconds // 2 : seconds // 2 + 60] = 95 + rng.normal(0, 1, 60)
            rows += [[machine, sensor, kind, float(v), unit, start + timedelta(seconds=i), i, 1]
                     for i, v in enumerate(values)]  # fmt: skip
    warehouse.client(settings).insert(settings.clickhouse.raw_readings_table, rows, column_names=list(COLUMN_NAMES))


def test_the_transform_runs_on_each_shard_and_the_marts_read_across_them(cluster: Settings) -> None:
    """transform.per_shard (the local cluster's default): dbt on each shard over its own machines' local tables;
    through the Distributed tables of the models' names every machine shows once, with the same windows and alerts
    as one dbt run over the whole cluster, and the data-quality checks pass; an incremental refresh lands the new
    windows on their shards, and a commissioning fit lands on its machine's shard and scores the next pass."""
    mine = cluster.scoped(f"{cluster.kafka.readings_topic}.per-shard")
    ch = mine.clickhouse
    assert mine.transform.per_shard and ch.shard_database == f"{ch.database}_local"
    whole = cluster.scoped(f"{cluster.kafka.readings_topic}.whole")  # the same readings, one dbt run over all
    whole.transform = whole.transform.model_copy(update={"per_shard": False})
    nodes = [warehouse.node_settings(mine, shard) for shard in range(ch.shards)]
    warehouse.migrate(mine)
    warehouse.migrate(whole)
    try:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=8)
        insert_readings(mine, start, 360)
        insert_readings(whole, start, 360)
        transformer = Transformer(mine)
        transformer.build()

        for shard, node in enumerate(nodes):
            local = warehouse.client(node, database=ch.shard_database)
            windowed = {m for (m,) in local.query("SELECT DISTINCT machine_id FROM int_sensor_windows").result_rows}
            assert windowed == {m for m in PER_SHARD_MACHINES if ch.machine_shard(m) == shard}, shard
            assert windowed, f"shard {shard} holds none of the machines"

        reads = warehouse.client(mine)
        health = Counter(m for (m,) in reads.query("SELECT machine_id FROM machine_health").result_rows)
        assert set(PER_SHARD_MACHINES) <= set(health) and set(health.values()) == {1}, health
        alerts = reads.query("SELECT machine_id, sensor_id, kind FROM alerts").result_rows
        assert alerts == [(BREACHING, "temp", "spec_breach")]
        # a mart over all machines merges the shards: one row a minute, every reading counted once
        per_minute = reads.query("SELECT count(), uniqExact(minute), sum(readings) FROM pipeline_stats").result_rows
        raw = reads.query("SELECT count() FROM readings_raw").result_rows[0][0]
        assert per_minute[0][0] == per_minute[0][1] and per_minute[0][2] == raw, (per_minute, raw)
        # the data-quality checks run unchanged, through the Distributed tables
        run = check_once(mine)
        assert run.outcomes and not run.failures, run.failures

        Transformer(whole).build()
        windows = "SELECT machine_id, sensor_id, window_start, reading_count FROM int_sensor_windows FINAL ORDER BY ALL"
        assert reads.query(windows).result_rows == warehouse.client(whole).query(windows).result_rows
        episodes = "SELECT machine_id, sensor_id, kind, started_at, ended_at FROM alerts ORDER BY ALL"
        assert reads.query(episodes).result_rows == warehouse.client(whole).query(episodes).result_rows

        # a transform process per shard (`plantwatch transform --shard k`, both at once) lands the new windows
        insert_readings(mine, start + timedelta(seconds=360), 60, breach=False)
        for output in transform_per_shard_processes(mine):  # raises if one fails
            assert "dbt build:" in output, output
        latest = reads.query(
            "SELECT machine_id, toUnixTimestamp(max(window_end)) FROM int_sensor_windows GROUP BY ALL"
        ).result_rows
        assert {m for m, _ in latest} == set(PER_SHARD_MACHINES)
        assert all(end > start.timestamp() + 370 for _, end in latest), (start, latest)

        # a commissioning fit reads the windows across the shards and lands on its machine's shard: the next pass
        # scores that machine against it
        fitted = baseline.fit(mine, "L1-pump02", start, start + timedelta(seconds=300), transformer=transformer)
        assert fitted.machine_id == "L1-pump02"
        transformer.refresh(force=True)
        scored = "SELECT count() FROM int_machine_window_scores FINAL WHERE baseline_kind = 'commissioning'"
        assert reads.query(scored).result_rows[0][0] > 0
        home = warehouse.client(nodes[ch.machine_shard("L1-pump02")])
        assert home.query(f"SELECT count() FROM {ch.baselines_table}_local").result_rows[0][0] > 0
    finally:
        for node in nodes:
            admin = warehouse.client(node, database="default")
            for database in (ch.database, ch.shard_database, whole.clickhouse.database):
                admin.command(f"DROP DATABASE IF EXISTS {database}")


def test_a_shard_may_connect_but_still_not_start_programs(tmp_path: Path) -> None:
    """A shard's seccomp filter (--allow-connect) forbids starting programs only: it must reach the other shard."""
    code = (
        "import os, socket\n"
        "from plantwatch.stack.sandbox import forbid_exec_and_connect\n"
        "server = socket.socket(); server.bind(('127.0.0.1', 0)); server.listen()\n"
        "assert forbid_exec_and_connect(connect=False)\n"
        "socket.create_connection(server.getsockname(), timeout=2).close()\n"
        "try:\n"
        "    os.execv('/bin/true', ['true'])\n"
        "except PermissionError:\n"
        "    print('refused', end='')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
                            timeout=30, check=False)  # fmt: skip
    assert result.stdout == "refused", result.stderr


def test_on_each_shard_the_ingest_user_appends_to_the_local_raw_table_and_the_transform_user_may_not(
    cluster: Settings,
) -> None:
    """The component users' rights on a shard's own node (the local cluster itself connects as its admin): the
    ingest user appends to the shard's local raw table, as a per-shard ingest (`ingest.into_shard`) with component
    users does; the transform user, which may write every derived table, may not write raw readings there either."""
    ch = cluster.clickhouse
    with_roles = cluster.model_copy(update={"clickhouse": ch.model_copy(update={"roles": True})})
    table = f"{ch.database}.{ch.raw_readings_table}{ch.local_suffix}"
    for shard in range(ch.shards):
        machine = next(f"rights-{i}" for i in range(100) if ch.machine_shard(f"rights-{i}") == shard)
        row = [machine, "t0", "temperature", 21.5, "C", datetime.now(UTC), 0, 1]
        node = warehouse.node_settings(with_roles, shard)
        with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
            warehouse.client(node, role="transform").insert(table, [row], column_names=list(COLUMN_NAMES))
        warehouse.client(node, role="ingest").insert(table, [row], column_names=list(COLUMN_NAMES))
        admin = warehouse.client(warehouse.node_settings(cluster, shard))
        assert admin.command(f"SELECT count() FROM {table} WHERE machine_id = '{machine}'") == 1
        admin.command(f"DELETE FROM {table} WHERE machine_id = '{machine}'")  # the other tests count every row


@pytest.mark.parametrize("fault", ["broker", "shard"])
def test_a_drill_on_the_cluster_loses_and_duplicates_nothing(cluster: Settings, fault: str) -> None:
    """A paced producer (8,000 readings/s, idempotent, acks=all) and the ingest, while the active controller's node
    is SIGKILLed for 10 s (one ingest), or while shard 2 is stopped for 10 s (a topic and an ingest per shard): every
    acknowledged reading lands, once (distinct in the readings view == acknowledged; none shown twice); in the broker
    drill no reading waits longer than the ingest's session timeout (the group rides out the coordinator's failover),
    and in the shard drill shard 1 keeps landing its machines meanwhile."""
    stack = Stack(cluster)
    scoped = cluster.scoped(f"{cluster.kafka.readings_topic}.drill-{fault}")
    with own_topics_and_database(with_topic_per_shard(scoped, fault == "shard")) as mine:
        if fault == "broker":
            result = broker_drill(mine, stack, seconds=20, down=10)
        else:
            result = shard_drill(mine, stack, seconds=20, outage=10)
    print(result)
    assert "gave up" not in result.notes, result
    assert result.produced >= 20 * 8_000 * 0.9, result  # the producer kept going through the fault
    assert (result.lost, result.duplicated) == (0, 0), result
    if fault == "broker":
        assert result.longest_stall < mine.ingest.session_timeout_ms / 1000, result
    if fault == "shard":
        # shard 1 holds about half the machines: ~4,000 readings/s of them, ~40,000 in the 10 s outage
        assert (result.healthy_shard_landed or 0) >= 10_000, result
