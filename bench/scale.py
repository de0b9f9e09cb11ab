"""Scale-out on this machine: readings/s with 1 broker vs 3 (replication factor 3, min.insync.replicas 2, acks=all)
and 1 ClickHouse shard vs 2, measured in one run on the local cluster (plantwatch.stack.cluster).

For each configuration the local cluster is started fresh in a state folder of its own (ports 19092+, 18123/19000
and 28123/29000: never the single-node stack's), then:

- produce: one producer (acks=all, lz4, 8 readings a message, 200 machines) fills the readings topic; readings/s
  from the first message to the last acknowledgement;
- insert: one client inserts the same columns (100k-row columnar inserts, as the ingest does) through the
  Distributed table (distributed_foreground_insert = 1), and straight into each shard's local table (best of two
  rounds each, into a scratch database);
- ingest: one `python -m plantwatch.streams.ingest` process lands the produced readings through the Distributed table;
  steady readings/s between 20% and 95% of the rows (bench/ingest.py's method), and its readings per CPU-second;
- transform: the first `dbt build` (parse, seeds, every model and test) over the readings just landed, per shard
  (transform.per_shard, the local cluster's default: dbt on each shard over its own machines, one shard after the
  other; the seconds are their sum); on 2 shards then `transform --full-refresh --no-test` twice: the shards in turn
  from this process, and a process per shard at once (`plantwatch transform --shard k`).

Then the drills, on a fresh 3-broker, 2-shard cluster, each with a paced producer (8,000 readings/s, idempotent,
acks=all) and one ingest process: the node that is the active KRaft controller (broker too) killed with SIGKILL
mid-stream and started again 10 s later; the second shard stopped for 20 s, once with one ingest through the
Distributed table and once with a topic and an ingest per shard (kafka.topic_per_shard; each inserting into its
shard's local table, ingest.into_shard). Each prints readings produced (acknowledged), landed (distinct, in the
readings view), lost, duplicated (shown twice by the view), the longest time no reading landed while some waited in
Kafka, and for the shard drills what the first shard landed while the second was stopped.

Everything shares this machine's cores (the brokers, the shards, the producer, the ingest, and whatever else runs):
a second shard or broker here adds work on the same CPUs, it does not add CPUs. docs/scale-out.md reads the
figures: what is measured here, what is extrapolated from them.

    .venv/bin/python bench/scale.py [--messages 60000] [--insert-rows 500000] [--no-transform]
                                    [--no-drills | --drills-only] [--drill-runs 1] [--drill broker]
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
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
from plantwatch.stack.cluster import active_controller, local_cluster
from plantwatch.topics import ensure_topics, readings_topic_of
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
    transform_seconds: float = 0.0  # the first `dbt build` over what the ingest landed (parse included), all shards
    # `transform --full-refresh --no-test` afterwards: the shards in turn from one process (dbt parsed already), and
    # a process per shard at once (`--shard k`: each process's start and dbt parse included)
    rerun_in_turn_seconds: float = 0.0
    rerun_per_shard_processes_seconds: float = 0.0


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
    proc = subprocess.Popen([sys.executable, "-m", "plantwatch.streams.ingest"], env=env, cwd=PROJECT_ROOT,
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
            transformer = Transformer(cluster)
            figures.transform_seconds = transformer.build().seconds
            if shards > 1:
                began = time.monotonic()
                transformer.run(full_refresh=True)
                figures.rerun_in_turn_seconds = time.monotonic() - began
                began = time.monotonic()
                transform_per_shard_processes(cluster, "--full-refresh", "--no-test")
                figures.rerun_per_shard_processes_seconds = time.monotonic() - began
    finally:
        stack.down()
        shutil.rmtree(cluster.state_dir.parent, ignore_errors=True)
    return figures


def transform_per_shard_processes(settings: Settings, *options: str) -> list[str]:
    """`plantwatch transform OPTIONS --shard k`, one process per shard, all at once: each one's output (it fails
    with the first that fails)."""
    env = {**os.environ, **environment(settings)}
    command = [sys.executable, "-m", "plantwatch.cli", "transform", *options, "--shard"]
    processes = [subprocess.Popen([*command, str(shard)], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
                 for shard in range(settings.clickhouse.shards)]  # fmt: skip
    outputs = []
    for process in processes:
        output, _ = process.communicate(timeout=600)
        if process.returncode:
            raise RuntimeError(f"plantwatch transform --shard failed: {output[-2000:]}")
        outputs.append(output)
    return outputs


# --- drills ------------------------------------------------------------------------------------------------------
DRILL_MESSAGES_PER_SECOND = 1_000  # 8,000 readings/s, paced: the drill is about what an outage does, not speed


@dataclass
class Drill:
    name: str
    produced: int = 0  # readings acknowledged by Kafka
    landed: int = 0  # distinct readings in the readings view at the end
    duplicated: int = 0  # readings the view shows more than once
    raw: int = 0  # rows in the raw table (a redelivered batch cut differently shows here until merged away)
    longest_stall: float = 0.0  # seconds without a reading landing while some waited in Kafka
    # The shard drill: readings the running shard landed while the other was stopped (a topic and an ingest per shard
    # keep it landing; with one ingest through the Distributed table it lands little or nothing meanwhile).
    healthy_shard_landed: int | None = None
    notes: str = ""

    @property
    def lost(self) -> int:
        return self.produced - self.landed


class PacedProducer(threading.Thread):
    """Produce the plant's messages at a steady rate (idempotent, acks=all) for ``seconds``, or until ``until`` (a
    time.time()) when that is moved; counts acknowledgements."""

    def __init__(self, settings: Settings, seconds: float, first: int = 0) -> None:
        super().__init__(daemon=True)
        self.settings, self.first = settings, first
        self.until = time.time() + seconds
        self.acknowledged = 0
        self.failed = 0

    def delivered(self, err: object, _msg: object) -> None:
        if err is None:
            self.acknowledged += 1
        else:
            self.failed += 1

    def run(self) -> None:
        producer = Producer({**self.settings.kafka.client_config(), "acks": "all", "enable.idempotence": True,
                             "linger.ms": 20, "message.timeout.ms": 120_000})  # fmt: skip
        start = time.time()
        base_ts = int(start * 1000) - 3_600_000
        for n in itertools.count():
            if (due := start + n / DRILL_MESSAGES_PER_SECOND) >= self.until:
                break
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            i = self.first + n
            key, value = message(i, base_ts + (i // len(MACHINES)) * 1000)
            topic = readings_topic_of(self.settings, key.decode())
            producer.produce(topic, value, key, on_delivery=self.delivered)
            producer.poll(0)
        assert producer.flush(120) == 0


def landed_by_shard(settings: Settings) -> list[int | None]:
    """Distinct readings in each shard's local raw table (None: the shard does not answer)."""
    table = f"{settings.clickhouse.raw_readings_table}{settings.clickhouse.local_suffix}"
    counts: list[int | None] = []
    for shard in range(settings.clickhouse.shards):
        try:
            client = warehouse.client(
                warehouse.node_settings(settings, shard), connect_timeout=1, send_receive_timeout=2
            )
            counts.append(client.command(f"SELECT count() FROM {table} FINAL"))
        except Exception:
            counts.append(None)
    return counts


def start_ingests(settings: Settings) -> list[subprocess.Popen]:
    """One ingest process, or with kafka.topic_per_shard one per shard (`--shard k`), in a consumer group of the
    drill's own; logs in the state folder."""
    env = {**os.environ, **environment(settings), "PLANTWATCH_INGEST__CONSUMER_GROUP": f"drill-{uuid.uuid4().hex[:8]}"}
    shards = range(settings.clickhouse.shards) if settings.kafka.topic_per_shard else [None]
    ingests = []
    for shard in shards:
        suffix = "" if shard is None else shard
        log = settings.state_dir / "logs" / f"{settings.kafka.readings_topic}-ingest{suffix}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        shard_env = env if shard is None else {**env, "PLANTWATCH_INGEST__SHARD": str(shard)}
        ingests.append(subprocess.Popen([sys.executable, "-m", "plantwatch.streams.ingest"], env=shard_env,
                                        cwd=PROJECT_ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT))  # fmt: skip
    return ingests


GIVE_UP_SECONDS = 120  # a drill waits this long past its production for every reading to land


def drill(settings: Settings, name: str, seconds: float, fault: Callable[[float], str | None]) -> Drill:
    """Produce with the ingest running (start_ingests) until ``seconds`` after every shard holds readings (the
    ingests are up: their start takes seconds on a loaded machine); from then on ``fault(elapsed since then)`` is
    called every 0.2 s to break and mend things (returns a note when it did something; done within ``seconds``),
    and stalls are timed. Then wait until every reading landed (or GIVE_UP_SECONDS)."""
    result = Drill(name)
    ingests = start_ingests(settings)
    # producing until the drill gives up, cut to ``seconds`` past the moment every shard lands: an ingest slow to
    # start (seen: 20 s on a loaded machine) must not let the producer finish before the fault was ever made
    producer = PacedProducer(settings, seconds + GIVE_UP_SECONDS)
    notes = []
    try:
        producer.start()
        began = time.monotonic()
        up: float | None = None  # when every shard first held readings
        last_change, last = began, 0
        while True:
            elapsed = time.monotonic() - began
            if up is not None and (note := fault(time.monotonic() - up)):
                notes.append(f"{elapsed:.0f}s {note}")
            counts = landed_by_shard(settings)
            now = sum(c or 0 for c in counts)
            if up is None and all(counts):
                up = last_change = time.monotonic()
                producer.until = time.time() + seconds
                notes.append(f"{elapsed:.0f}s every shard landing")
            waiting = producer.acknowledged * len(SENSORS) > now
            if up is not None and (now != last or not waiting):
                result.longest_stall = max(result.longest_stall, time.monotonic() - last_change)
                last_change, last = time.monotonic(), now
            if not producer.is_alive() and not waiting and None not in counts:
                break
            if elapsed > seconds + GIVE_UP_SECONDS:
                notes.append("gave up waiting")
                break
            time.sleep(0.2)
        producer.join()
        client = warehouse.client(settings)
        result.produced = producer.acknowledged * len(SENSORS)
        shown, distinct = client.query(
            "SELECT count(), uniqExact(machine_id, sensor_id, event_time, seq) "
            f"FROM {settings.clickhouse.readings_view}"
        ).result_rows[0]
        result.landed, result.duplicated = distinct, shown - distinct
        result.raw = client.command(f"SELECT count() FROM {settings.clickhouse.raw_readings_table}")
        if producer.failed:
            notes.append(f"{producer.failed} messages not acknowledged by Kafka")
    finally:
        for ingest in ingests:
            ingest.terminate()
        for ingest in ingests:
            ingest.wait(30)
    result.notes = "; ".join(notes)
    return result


def broker_drill(settings: Settings, stack: Stack, seconds: float = 30, down: float = 10) -> Drill:
    """The active controller's node (broker and controller) killed (SIGKILL) 8 s after the ingest began landing,
    started again ``down`` seconds later."""
    victim: list = []

    def fault(elapsed: float) -> str | None:
        if elapsed > 8 and not victim:
            node = active_controller(settings) or 1
            victim.append(stack.service(f"kafka-{node}"))
            os.killpg(victim[0].pid(), signal.SIGKILL)
            return f"killed kafka-{node} (the active controller)"
        if elapsed > 8 + down and len(victim) == 1:
            victim.append(victim[0].start())
            return f"started {victim[0].name} again"
        return None

    result = drill(settings, "broker + active controller killed", seconds, fault)
    victim[0].wait_healthy(60)
    return result


def shard_drill(settings: Settings, stack: Stack, seconds: float = 35, outage: float = 20) -> Drill:
    """The second ClickHouse shard stopped 5 s after both shards began landing, for ``outage`` seconds; counts what
    the first shard landed meanwhile."""
    shard = stack.service("clickhouse-2")
    first_shard: list[int] = []  # its rows when the second stopped, and when it started again

    def fault(elapsed: float) -> str | None:
        if elapsed > 5 and not first_shard:
            before = landed_by_shard(settings)
            shard.stop()
            first_shard.append(before[0] or 0)
            return f"stopped clickhouse-2 (rows by shard {before})"
        if elapsed > 5 + outage and len(first_shard) == 1:
            before = landed_by_shard(settings)
            first_shard.append(before[0] or 0)
            shard.start()
            shard.wait_healthy(60)
            return f"started clickhouse-2 again (rows by shard {before})"
        return None

    mode = "a topic and an ingest per shard" if settings.kafka.topic_per_shard else "one ingest"
    result = drill(settings, f"ClickHouse shard 2 stopped {outage:.0f} s ({mode})", seconds, fault)
    if len(first_shard) == 2:
        result.healthy_shard_landed = first_shard[1] - first_shard[0]
    return result


def with_topic_per_shard(settings: Settings, on: bool = True) -> Settings:
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topic_per_shard": on})})


DRILLS = {"broker": (broker_drill, False), "shard": (shard_drill, False), "shard-topics": (shard_drill, True)}


def run_drills(base: Settings, runs: int = 1, names: list[str] | None = None) -> list[Drill]:
    cluster = fresh_cluster(base, 3, 2)
    stack = Stack(cluster)
    stack.up(timeout=120)
    try:
        ensure_topics(cluster)
        results = []
        for name, run in itertools.product(names or DRILLS, range(runs)):
            run_one, topic_per_shard = DRILLS[name]
            mine = with_topic_per_shard(cluster.scoped(f"bench-drill-{name}-{run}"), topic_per_shard)
            ensure_topics(mine)
            warehouse.migrate(mine)
            results.append(run_one(mine, stack))
            print(f"  drill: {results[-1]}", file=sys.stderr)
        return results
    finally:
        stack.down()
        shutil.rmtree(cluster.state_dir.parent, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=60_000, help="messages of 8 readings produced per run")
    parser.add_argument("--insert-rows", type=int, default=500_000, help="rows inserted per insert measurement")
    parser.add_argument("--no-transform", action="store_true", help="skip the dbt build on each cluster")
    parser.add_argument("--no-drills", action="store_true", help="skip the drills (broker killed, shard stopped)")
    parser.add_argument("--drills-only", action="store_true", help="only the drills, not the throughput runs")
    parser.add_argument("--drill-runs", type=int, default=1, help="runs of each drill")
    parser.add_argument("--drill", action="append", choices=sorted(DRILLS), help="only this drill (repeatable)")
    args = parser.parse_args()
    base = get_settings()
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; {args.messages * len(SENSORS):,} readings per run",
          file=sys.stderr)  # fmt: skip
    results = []
    for brokers, shards in [] if args.drills_only else CONFIGURATIONS:
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
    for f in results:
        if f.rerun_per_shard_processes_seconds:
            print(f"transform --full-refresh --no-test on {f.shards} shards: the shards in turn from one process "
                  f"{f.rerun_in_turn_seconds:.1f}s, a process per shard at once (--shard k; start and parse "
                  f"included) {f.rerun_per_shard_processes_seconds:.1f}s")  # fmt: skip
    if not args.no_drills:
        drills = run_drills(base, args.drill_runs, args.drill)
        print(f"\n{'drill':<66} | {'produced':>9} {'landed':>9} {'lost':>5} {'duplicated':>10} | "
              f"{'longest stall':>13} | {'shard 1 landed meanwhile':>24} | what happened")  # fmt: skip
        for d in drills:
            meanwhile = "" if d.healthy_shard_landed is None else f"{d.healthy_shard_landed:,}"
            print(f"{d.name:<66} | {d.produced:>9,} {d.landed:>9,} {d.lost:>5} {d.duplicated:>10} | "
                  f"{d.longest_stall:>12.1f}s | {meanwhile:>24} | {d.notes}")  # fmt: skip
    print("\nreadings/s unless said; every reading landed once (view count == produced) in each run; "
          "insert per shard: each shard's local table on its own, one after the other", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
