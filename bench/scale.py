"""Scale-out on this machine: readings/s with 1 broker vs 3 (replication factor 3, min.insync.replicas 2, acks=all)
and 1 ClickHouse shard vs 2, measured in one run on the local cluster (plantwatch.stack.cluster).

For each configuration the local cluster is started fresh in a state folder of its own (ports 19092+, 18123/19000
and 28123/29000: never the single-node stack's), then:

- produce: one producer (acks=all, lz4, 8 readings a message, 200 machines) fills the readings topic; readings/s
  from the first message to the last acknowledgement;
- insert: one client inserts the same columns (100k-row columnar inserts, as the ingest does) through the
  Distributed table (distributed_foreground_insert = 1), and straight into each shard's local table (best of two
  rounds each, into a scratch database);
- ingest: one `python -m streams.ingest` process lands the produced readings through the Distributed table;
  steady readings/s between 20% and 95% of the rows (bench/ingest.py's method), and its readings per CPU-second;
- transform: the first `dbt build` (parse, seeds, every model and test) on shard 1 over the Distributed sources,
  over the readings just landed (the local cluster runs the transform on one node: docs/scale-out.md).

Everything shares this machine's cores (the brokers, the shards, the producer, the ingest, and whatever else runs):
a second shard or broker here adds work on the same CPUs, it does not add CPUs. docs/scale-out.md reads the
figures: what is measured here, what is extrapolated from them.

    .venv/bin/python bench/scale.py [--messages 60000] [--insert-rows 500000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
from confluent_kafka import Producer

sys.path.insert(0, str(Path(__file__).parent))
from ingest import MACHINES, SENSORS, landed_samples, message, steady  # bench/ingest.py: the same plant

from plantwatch import warehouse
from plantwatch.reading import COLUMN_NAMES, COLUMNS
from plantwatch.settings import PROJECT_ROOT, Settings, environment, get_settings
from plantwatch.stack import Stack
from plantwatch.stack.cluster import local_cluster
from plantwatch.topics import ensure_topics
from plantwatch.transform import Transformer

CONFIGURATIONS = [(1, 1), (3, 1), (3, 2)]  # (brokers, shards)
COLUMN_TYPES = [c.clickhouse_type for c in COLUMNS]
INSERT_ROWS = 100_000  # rows per insert, the ingest's default batch


@dataclass
class Figures:
    brokers: int
    shards: int
    produce_rate: float = 0.0
    distributed_insert_rate: float = 0.0
    shard_insert_rates: tuple[float, ...] = ()
    ingest_rate: float = 0.0
    ingest_per_cpu_second: float = 0.0
    broker_cpu_seconds: float = 0.0
    transform_seconds: float = 0.0  # the first `dbt build` over what the ingest landed (parse included)


def fresh_cluster(base: Settings, brokers: int, shards: int) -> Settings:
    """The local cluster's settings in a state folder of this bench's own (Kafka's jars from the stack's cache)."""
    home = base.state_dir / "bench-scale" / f"b{brokers}s{shards}"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "cache").symlink_to(base.state_dir / "cache")
    return local_cluster(base.model_copy(update={"state_dir": home}), brokers, shards).scoped("bench-scale")


def process_cpu(stack: Stack, prefix: str) -> float:
    total = 0.0
    for service in stack.services:
        if service.name.startswith(prefix) and (pid := service.pid()):
            total += sum(psutil.Process(pid).cpu_times()[:2])
    return total


def produce(settings: Settings, messages: int) -> float:
    """readings/s of one producer, acks=all, until every message is acknowledged."""
    producer = Producer({**settings.kafka.client_config(), "acks": "all", "linger.ms": 50, "compression.type": "lz4",
                         "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    base_ts = int(time.time() * 1000) - 3_600_000
    began = time.perf_counter()
    for i in range(messages):
        key, value = message(i, base_ts + (i // len(MACHINES)) * 1000)
        while True:
            try:
                producer.produce(settings.kafka.readings_topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0, "messages left unacknowledged"
    return messages * len(SENSORS) / (time.perf_counter() - began)


def columns(rows: int) -> list[list]:
    """``rows`` readings as columns (COLUMNS order): the plant's machines and sensors, one a second."""
    from datetime import UTC, datetime, timedelta

    start = datetime.now(UTC) - timedelta(hours=2)
    per_instant = len(MACHINES) * len(SENSORS)
    machine = [MACHINES[(i // len(SENSORS)) % len(MACHINES)] for i in range(rows)]
    sensor = [SENSORS[i % len(SENSORS)] for i in range(rows)]
    return [
        machine,
        [s[0] for s in sensor],
        [s[1] for s in sensor],
        [20.0 + (i * 7) % 997 * 0.125 for i in range(rows)],
        [s[2] for s in sensor],
        [start + timedelta(seconds=i // per_instant) for i in range(rows)],
        [i // per_instant for i in range(rows)],
        [1] * rows,
    ]


def insert_rate(settings: Settings, table: str, data: list[list], rounds: int = 2) -> float:
    """rows/s of columnar inserts of INSERT_ROWS each into ``table``: the best of ``rounds`` (the first pays for
    warming up; other work on the machine only ever slows a round down)."""
    client = warehouse.client(settings)
    rows = len(data[0])
    best = 0.0
    for _ in range(rounds):
        began = time.perf_counter()
        for first in range(0, rows, INSERT_ROWS):
            chunk = [column[first : first + INSERT_ROWS] for column in data]
            client.insert(table, chunk, column_names=COLUMN_NAMES, column_type_names=COLUMN_TYPES,
                          column_oriented=True)  # fmt: skip
        best = max(best, rows / (time.perf_counter() - began))
    return best


def measure_inserts(cluster: Settings, figures: Figures, rows: int) -> None:
    scratch = cluster.model_copy(deep=True)
    scratch.clickhouse.database = f"bench_insert_{uuid.uuid4().hex[:6]}"
    warehouse.migrate(scratch)
    data = columns(rows)
    try:
        figures.distributed_insert_rate = insert_rate(scratch, scratch.clickhouse.raw_readings_table, data)
        local = f"{scratch.clickhouse.raw_readings_table}{scratch.clickhouse.local_suffix}"
        figures.shard_insert_rates = tuple(
            insert_rate(warehouse.node_settings(scratch, shard), local, data)
            for shard in range(scratch.clickhouse.shards)
        )
    finally:
        for shard in range(scratch.clickhouse.shards):
            node = warehouse.node_settings(scratch, shard)
            warehouse.client(node, database="default").command(f"DROP DATABASE {scratch.clickhouse.database}")


def measure_ingest(cluster: Settings, figures: Figures, expected: int) -> None:
    env = {**os.environ, **environment(cluster), "PLANTWATCH_INGEST__CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}"}
    proc = subprocess.Popen([sys.executable, "-m", "streams.ingest"], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        samples = landed_samples(cluster, "ingest", expected, 300, [proc])
        result = steady("ingest", samples, expected)
        figures.ingest_rate, figures.ingest_per_cpu_second = result.rate, result.per_cpu_second
        landed = warehouse.client(cluster).command(f"SELECT count() FROM {cluster.clickhouse.readings_view}")
        assert landed == expected, f"{landed} readings in the view, {expected} produced"
    finally:
        proc.terminate()
        proc.wait(30)


def run(base: Settings, brokers: int, shards: int, messages: int, insert_rows: int, transform: bool) -> Figures:
    cluster = fresh_cluster(base, brokers, shards)
    stack = Stack(cluster)
    figures = Figures(brokers, shards)
    began = time.monotonic()
    stack.up(timeout=120)
    print(f"  cluster of {brokers} broker(s), {shards} shard(s) up in {time.monotonic() - began:.0f}s", file=sys.stderr)
    try:
        ensure_topics(cluster)
        warehouse.migrate(cluster)
        cpu = process_cpu(stack, "kafka")
        figures.produce_rate = produce(cluster, messages)
        figures.broker_cpu_seconds = process_cpu(stack, "kafka") - cpu
        measure_inserts(cluster, figures, insert_rows)
        measure_ingest(cluster, figures, messages * len(SENSORS))
        if transform:
            figures.transform_seconds = Transformer(cluster).build().seconds
    finally:
        stack.down()
        shutil.rmtree(cluster.state_dir.parent, ignore_errors=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000, help="messages of 8 readings produced per run")
    parser.add_argument("--insert-rows", type=int, default=500_000, help="rows inserted per insert measurement")
    parser.add_argument("--no-transform", action="store_true", help="skip the dbt build on each cluster")
    args = parser.parse_args()
    base = get_settings()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.messages * len(SENSORS):,} readings per run",
          file=sys.stderr)  # fmt: skip
    results = []
    for brokers, shards in CONFIGURATIONS:
        results.append(run(base, brokers, shards, args.messages, args.insert_rows, not args.no_transform))
    print()
    print(f"{'brokers':>7} {'RF':>3} {'shards':>6} | {'produce r/s':>12} {'broker CPU-s':>12} | "
          f"{'insert via Distributed':>22} {'insert per shard':>22} | {'ingest r/s':>11} {'r/CPU-s':>9} | "
          f"{'dbt build s':>11}")  # fmt: skip
    for f in results:
        per_shard = " + ".join(f"{rate / 1e6:.2f}M" for rate in f.shard_insert_rates)
        print(f"{f.brokers:>7} {min(f.brokers, 3):>3} {f.shards:>6} | {f.produce_rate:>12,.0f} "
              f"{f.broker_cpu_seconds:>12.1f} | {f.distributed_insert_rate:>22,.0f} {per_shard:>22} | "
              f"{f.ingest_rate:>11,.0f} {f.ingest_per_cpu_second:>9,.0f} | {f.transform_seconds:>11.1f}")  # fmt: skip
    print("\nreadings/s unless said; every reading landed once (view count == produced) in each run; "
          "insert per shard: each shard's local table on its own, one after the other", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
