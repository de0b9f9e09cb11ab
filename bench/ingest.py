"""Ingest throughput and latency: plantwatch's ingest app vs a hand-written peer vs a naive per-message insert.

One run, one topic, one machine: every contender reads the same messages (one per machine per instant, 8 readings
each, made with plantwatch.reading.encode) into its own freshly migrated ClickHouse database, with its own consumer
group. Other work on the machine moves the absolute figures, so compare the ratios printed in the same run.

Sustained readings/s is measured between 20% and 95% of the rows visible in the raw table (start-up, the group's
first rebalance and the tail are left out); readings per CPU-second divides by the consumer's CPU time over the
same window (every thread of the process), which moves less than readings/s when other work shares the cores.

Latency: produce at a steady 10k readings/s with event time = produce time, and read ``ingested_at - event_time``
from the raw table (``ingested_at`` is set by ClickHouse at insert).

    .venv/bin/python bench/ingest.py [--readings 2000000]
    .venv/bin/python bench/ingest.py --profile     # only the ingest, with where its CPU goes per message

``--profile`` runs one ingest process under cProfile (CPU time of each thread, profiled over the same steady window
only) and prints its CPU per message by part: librdkafka's consume and its message objects, decoding, the
conflict check, column batches, the Quix Streams loop and checkpoints, serialising the inserts, HTTP, metrics, and
librdkafka's own threads (from /proc). The profiler itself slows the Python parts: read it as shares.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil
from clickhouse_connect.driver.client import Client
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch import warehouse
from plantwatch.reading import COLUMN_NAMES, COLUMNS, encode
from plantwatch.settings import PROJECT_ROOT, Settings, get_settings
from plantwatch.stack import running_stack

SENSORS = [
    ("temp", "temperature", "C"),
    ("bearing_temp", "temperature", "C"),
    ("vib_x", "vibration", "mm/s"),
    ("vib_y", "vibration", "mm/s"),
    ("pressure", "pressure", "bar"),
    ("current", "current", "A"),
    ("speed", "speed", "rpm"),
    ("flow", "flow", "l/min"),
]
MACHINES = [f"L{line}-M{n:02d}" for line in range(1, 6) for n in range(1, 41)]  # 200 machines
COLUMN_TYPES = [c.clickhouse_type for c in COLUMNS]


def message(i: int, ts_ms: int) -> tuple[bytes, bytes]:
    machine = MACHINES[i % len(MACHINES)]
    seq = i // len(MACHINES)
    readings = [
        {"sensor_id": s, "kind": k, "value": 20.0 + (i * 7 + j) % 997 * 0.125, "unit": u, "seq": seq}
        for j, (s, k, u) in enumerate(SENSORS)
    ]
    return machine.encode(), encode(machine, ts_ms, readings)


def produce(settings: Settings, topic: str, messages: int, per_second: float | None = None) -> None:
    """Fill the topic; at per_second, pace it and stamp each message with its produce time."""
    producer = Producer(
        {
            **settings.kafka.client_config(),
            "linger.ms": 5 if per_second else 50,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    start = time.time()
    base_ts = int(start * 1000) - 3_600_000  # an hour ago: inside the raw table's TTL
    for i in range(messages):
        if per_second:
            due = start + i / per_second
            if (wait := due - time.time()) > 0:
                time.sleep(wait)
            ts = int(time.time() * 1000)
        else:
            ts = base_ts + (i // len(MACHINES)) * 1000
        key, value = message(i, ts)
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)


@dataclass
class Result:
    name: str
    readings: int
    seconds: float
    cpu_seconds: float  # of the consumer process(es), all threads, over the same window

    @property
    def rate(self) -> float:
        return self.readings / self.seconds

    @property
    def per_cpu_second(self) -> float:
        """Less sensitive to what else runs on the machine than readings/s."""
        return self.readings / self.cpu_seconds


def database_settings(settings: Settings, name: str) -> Settings:
    mine = settings.model_copy(deep=True)
    mine.clickhouse.database = name
    warehouse.migrate(mine)
    return mine


def cpu_seconds(processes: list[subprocess.Popen]) -> float:
    return sum(sum(psutil.Process(p.pid).cpu_times()[:2]) for p in processes)


Sample = tuple[float, int, float]  # (monotonic time, rows landed, CPU seconds)
STEADY = (0.2, 0.95)  # the share of the rows between which the rate is taken


def steady(name: str, samples: list[Sample], expected: int) -> Result:
    """The rate between the first samples past 20% and past 95% of the rows: start-up, the group's first
    rebalance (a second process joining) and the tail are left out, the same way for every contender."""
    low = next(s for s in samples if s[1] >= STEADY[0] * expected)
    high = next(s for s in samples if s[1] >= STEADY[1] * expected)
    assert high[0] > low[0], "too few samples: use more readings"
    return Result(name, high[1] - low[1], high[0] - low[0], high[2] - low[2])


def landed_samples(
    settings: Settings, name: str, expected: int, timeout: float, processes: list[subprocess.Popen]
) -> list[Sample]:
    """Poll the raw table until it holds `expected` rows; the samples taken on the way."""
    client = warehouse.client(settings)
    table = settings.clickhouse.raw_readings_table
    samples: list[Sample] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        count = client.command(f"SELECT count() FROM {table}")
        samples.append((time.monotonic(), count, cpu_seconds(processes)))
        if count >= expected:
            return samples
        time.sleep(0.1)
    raise TimeoutError(f"{name}: {count} of {expected} rows after {timeout}s")


def watch(settings: Settings, name: str, expected: int, timeout: float, processes: list[subprocess.Popen]) -> Result:
    """The steady rate at which the raw table fills up to `expected` rows."""
    return steady(name, landed_samples(settings, name, expected, timeout, processes), expected)


def ingest_processes(
    settings: Settings, topic: str, n: int, command: list[str] | None = None, log: Path | None = None
) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "PLANTWATCH_KAFKA__READINGS_TOPIC": topic,
        "PLANTWATCH_KAFKA__DEAD_LETTER_TOPIC": f"{topic}.dlq",
        "PLANTWATCH_CLICKHOUSE__DATABASE": settings.clickhouse.database,
        "PLANTWATCH_INGEST__CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
        "PLANTWATCH_CLICKHOUSE__ROLES": "false",  # the ingest user's grants cover the configured database only
    }
    return [
        subprocess.Popen(
            command or [sys.executable, "-m", "plantwatch.streams.ingest"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab") if log else subprocess.DEVNULL,
        )
        for _ in range(n)
    ]


def stop(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        p.terminate()
    for p in processes:
        p.wait(30)


def run_ingest(settings: Settings, topic: str, expected: int, processes: int) -> Result:
    mine = database_settings(settings, f"bench_ingest{processes}_{uuid.uuid4().hex[:6]}")
    procs = ingest_processes(mine, topic, processes)
    try:
        return watch(
            mine, f"plantwatch ingest, {processes} process{'es' if processes > 1 else ''}", expected, 600, procs
        )
    finally:
        stop(procs)
        drop(mine)


# The ingest with its hot functions timed (CPU time of the calling thread, time.thread_time) between SIGUSR1 and
# SIGUSR2 (the bench's steady window), written as JSON at SIGUSR2. Each timer costs a microsecond a call, and the
# timed functions run once per run of messages or per insert, so the figures stay close to the unprofiled ones.
PROFILED_INGEST = """
import collections, json, signal, sys, time
from pathlib import Path

import clickhouse_connect.driver.transform as transform
import quixstreams.kafka.consumer as consumer
import plantwatch.streams.clickhouse_sink as sink
import plantwatch.streams.dead_letter as dead_letter
import plantwatch.streams.ingest as ingest
import plantwatch.streams.message_batches as message_batches

spent, counting = collections.Counter(), [False]

def timed(owner, name, part, generator=False, clock=time.thread_time):
    function = getattr(owner, name, None)
    if function is None:  # not in this version of the code
        return

    def call(*args, **kwargs):
        began = clock()
        try:
            return function(*args, **kwargs)
        finally:
            if counting[0]:
                spent[part] += clock() - began

    def each(*args, **kwargs):  # a generator: the time of each step (clickhouse-connect serialises while sending)
        steps = function(*args, **kwargs)
        while True:
            began = time.thread_time()
            try:
                step = next(steps)
            except StopIteration:
                return
            finally:
                if counting[0]:
                    spent[part] += time.thread_time() - began
            yield step

    wrapper = each if generator else call
    static = isinstance(vars(owner).get(name), staticmethod)
    setattr(owner, name, staticmethod(wrapper) if static else wrapper)

timed(consumer.BaseConsumer, "consume", "consume")
timed(ingest, "record_lag", "metrics")
timed(dead_letter.DeadLetterQueue, "readings_or_dead_letter", "run")
read_run = dead_letter.DeadLetterQueue.readings_or_dead_letter

def counted(self, run):
    if counting[0]:
        spent["runs"] += 1
        spent["run messages"] += len(run)
    return read_run(self, run)

dead_letter.DeadLetterQueue.readings_or_dead_letter = counted
for name in ("decode_many", "decode_run"):
    timed(dead_letter, name, "decode")
timed(dead_letter, "without_conflicts", "conflicts")
timed(sink.ClickHouseSink, "add", "add")
timed(sink.ClickHouseSink, "flush", "checkpoint")
timed(sink.ClickHouseSink, "flush", "checkpoint wall", clock=time.perf_counter)
timed(consumer.BaseConsumer, "consume", "consume wall", clock=time.perf_counter)
timed(message_batches.MessageRunConsumer, "commit", "checkpoint")
timed(sink.ClickHouseSink, "write", "write")
timed(transform.NativeTransform, "build_insert", "serialise", generator=True)
timed(sink, "insert_block", "serialise")

def start(*_):
    spent.clear()
    counting[0] = True

def stop(*_):
    counting[0] = False
    (Path(sys.argv[1]) / "parts.json").write_text(json.dumps(spent))

signal.signal(signal.SIGUSR1, start)
signal.signal(signal.SIGUSR2, stop)
ingest.main()
"""


def thread_cpu(pid: int) -> dict[tuple[int, str], float]:
    """CPU seconds (user + system) of each thread of a process, by (thread id, name), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended
            continue
        threads[(int(task.name), name)] = (int(fields[11]) + int(fields[12])) / ticks
    return threads


def cpu_breakdown(parts: dict[str, float], threads: dict[tuple[int, str], float], pid: int) -> list[tuple[str, float]]:
    """CPU seconds by part of the ingest: timed functions, and each thread's CPU time from /proc for the rest."""
    part = parts.get
    main = sum(cpu for (tid, _), cpu in threads.items() if tid == pid)
    rdkafka = sum(cpu for (_, name), cpu in threads.items() if name.startswith("rdk:"))
    write = part("write", 0.0)
    timed_main = [
        ("main: librdkafka consume() and its message objects", part("consume", 0.0) - part("metrics", 0.0)),
        ("main: the run's message fields (value(), offset()), DLQ", part("run", 0.0) - part("decode", 0.0)
         - part("conflicts", 0.0)),
        ("main: decode + validate (a run at once)", part("decode", 0.0)),
        ("main: conflicting duplicates check", part("conflicts", 0.0)),
        ("main: column batches (sink add, dedup checksum)", part("add", 0.0)),
        ("main: checkpoints (DLQ flush, insert hand-off, commit)", part("checkpoint", 0.0)),
        ("main: metrics (librdkafka stats -> lag gauge)", part("metrics", 0.0)),
    ]  # fmt: skip
    return [
        *timed_main,
        ("main: Quix Streams loop, dataframe, the rest", main - sum(seconds for _, seconds in timed_main)),
        ("insert thread: serialise the block for ClickHouse", part("serialise", 0.0)),
        ("insert thread: HTTP request and answer, the rest", write - part("serialise", 0.0)),
        ("librdkafka threads (fetch, decompress)", rdkafka),
        ("other threads (/metrics server, ...)", sum(threads.values()) - main - rdkafka - write),
    ]


def run_profiled(settings: Settings, topic: str, expected: int) -> None:
    """One ingest process with its hot functions timed; prints where its CPU goes per message (steady window)."""
    mine = database_settings(settings, f"bench_profile_{uuid.uuid4().hex[:6]}")
    out = Path(tempfile.mkdtemp(prefix="plantwatch-profile-"))
    (proc,) = ingest_processes(mine, topic, 1, [sys.executable, "-c", PROFILED_INGEST, str(out)], out / "ingest.log")
    client = warehouse.client(mine)
    table = mine.clickhouse.raw_readings_table
    window: list[tuple[float, int, dict[tuple[int, str], float]]] = []
    try:
        deadline = time.monotonic() + 600
        for share, sig in zip(STEADY, (signal.SIGUSR1, signal.SIGUSR2), strict=True):
            while (count := client.command(f"SELECT count() FROM {table}")) < share * expected:
                if time.monotonic() > deadline or proc.poll() is not None:
                    log = (out / "ingest.log").read_text()[-3000:]
                    raise TimeoutError(f"profiled ingest: {count} of {expected} rows; its log ends with:\n{log}")
                time.sleep(0.05)
            proc.send_signal(sig)
            window.append((time.monotonic(), count, thread_cpu(proc.pid)))
        while not (out / "parts.json").exists() and proc.poll() is None:
            time.sleep(0.05)
    finally:
        stop([proc])
        drop(mine)
    (began, first, before), (ended, last, after) = window
    parts = orjson.loads((out / "parts.json").read_bytes())
    threads = {key: cpu - before.get(key, 0.0) for key, cpu in after.items()}
    messages = (last - first) / len(SENSORS)
    total = sum(threads.values())
    print(f"\nwhere the ingest's CPU goes: {messages:,.0f} messages of {len(SENSORS)} readings in "
          f"{ended - began:.1f} s ({(last - first) / (ended - began):,.0f} readings/s, "
          f"{(last - first) / total:,.0f} per CPU-second)")  # fmt: skip
    print(f"  {'part':60} {'us/message':>10} {'share':>6}")
    for name, seconds in cpu_breakdown(parts, threads, proc.pid):
        print(f"  {name:60} {seconds / messages * 1e6:10.2f} {seconds / total:6.0%}")
    print(f"  {'whole process (every thread, /proc)':60} {total / messages * 1e6:10.2f} {1:6.0%}")
    print(f"  main thread waiting (wall): {parts.get('checkpoint wall', 0) / (ended - began):.0%} of the window in "
          f"checkpoints (inserts to be acknowledged), {parts.get('consume wall', 0) / (ended - began):.0%} in "
          "consume()")  # fmt: skip
    if parts.get("runs"):
        print(f"  runs of messages through the pipeline: {parts['runs']:,.0f}, "
              f"{parts['run messages'] / parts['runs']:,.0f} messages each on average")  # fmt: skip


def consumer(settings: Settings, topic: str) -> Consumer:
    c = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
        }
    )
    c.subscribe([topic])
    return c


def run_peer(settings: Settings, topic: str, expected: int, batch_rows: int = 50_000) -> Result:
    """The strongest hand-written peer: confluent-kafka + orjson + columnar inserts of 50k, commit after each."""
    mine = database_settings(settings, f"bench_peer_{uuid.uuid4().hex[:6]}")
    client = warehouse.client(mine, compress=False)
    c = consumer(mine, topic)
    columns: list[list] = [[] for _ in COLUMN_NAMES]
    machine_ids, sensor_ids, kinds, values, units, times, seqs, versions = columns
    landed, samples = 0, []
    while landed < expected:
        for msg in c.consume(10_000, timeout=0.5):
            if msg.error():
                continue
            m = orjson.loads(msg.value())
            machine, ts, version = m["machine_id"], m["ts"], m["v"]
            for r in m["readings"]:
                machine_ids.append(machine)
                sensor_ids.append(r["sensor_id"])
                kinds.append(r["kind"])
                values.append(r["value"])
                units.append(r["unit"])
                times.append(ts)
                seqs.append(r["seq"])
                versions.append(version)
            if len(values) >= batch_rows:
                landed += insert_and_commit(client, mine, c, columns)
                samples.append((time.monotonic(), landed, time.process_time()))
        if values and landed + len(values) >= expected:
            landed += insert_and_commit(client, mine, c, columns)
            samples.append((time.monotonic(), landed, time.process_time()))
    c.close()
    drop(mine)
    return steady("peer: confluent-kafka + orjson + 50k columnar inserts", samples, expected)


def insert_and_commit(client: Client, settings: Settings, c: Consumer, columns: list[list]) -> int:
    n = len(columns[0])
    client.insert(
        settings.clickhouse.raw_readings_table,
        columns,
        column_names=COLUMN_NAMES,
        column_type_names=COLUMN_TYPES,
        column_oriented=True,
    )
    try:
        c.commit(asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._NO_OFFSET:  # nothing new to commit
            raise
    for col in columns:
        col.clear()
    return n


def run_naive(settings: Settings, topic: str, messages: int) -> Result:
    """The floor: one insert per message (the original thesis consumer's pattern), on a small sample."""
    mine = database_settings(settings, f"bench_naive_{uuid.uuid4().hex[:6]}")
    client = warehouse.client(mine)
    c = consumer(mine, topic)
    landed, seen, started, first_cpu = 0, 0, None, 0.0
    while seen < messages:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            continue
        if started is None:
            started, first_cpu = time.monotonic(), time.process_time()
        m = orjson.loads(msg.value())
        rows = [
            [m["machine_id"], r["sensor_id"], r["kind"], r["value"], r["unit"], m["ts"], r["seq"], m["v"]]
            for r in m["readings"]
        ]
        client.insert(settings.clickhouse.raw_readings_table, rows, column_names=COLUMN_NAMES)
        c.commit(msg, asynchronous=False)
        landed += len(rows)
        seen += 1
    took, cpu = time.monotonic() - started, time.process_time() - first_cpu
    c.close()
    drop(mine)
    return Result(f"naive: one insert per message ({messages} messages)", landed, took, cpu)


def latency(settings: Settings, admin: AdminClient, readings_per_second: int, seconds: float) -> tuple[float, float]:
    topic = new_topic(settings, admin)
    mine = database_settings(settings, f"bench_latency_{uuid.uuid4().hex[:6]}")
    procs = ingest_processes(mine, topic, 1)
    try:
        time.sleep(5)  # join the group before the clock starts
        messages = int(readings_per_second / len(SENSORS) * seconds)
        produce(mine, topic, messages, per_second=readings_per_second / len(SENSORS))
        landed_samples(mine, "latency", messages * len(SENSORS), 60, procs)
        p50, p99 = (
            warehouse.client(mine)
            .query(
                f"SELECT quantiles(0.5, 0.99)(dateDiff('millisecond', event_time, ingested_at)) "
                f"FROM {mine.clickhouse.raw_readings_table}"
            )
            .result_rows[0][0]
        )
        return p50, p99
    finally:
        stop(procs)
        drop(mine)
        admin.delete_topics([topic, f"{topic}.dlq"])


def new_topic(settings: Settings, admin: AdminClient) -> str:
    topic = f"bench.{uuid.uuid4().hex[:8]}.readings"
    futures = admin.create_topics([NewTopic(t, settings.kafka.partitions, 1) for t in (topic, f"{topic}.dlq")])
    for f in futures.values():
        f.result(30)
    return topic


def drop(settings: Settings) -> None:
    warehouse.client(settings, database="default").command(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readings", type=int, default=2_000_000, help="readings in the throughput topic")
    parser.add_argument("--naive-messages", type=int, default=200)
    parser.add_argument("--latency-seconds", type=float, default=15.0)
    parser.add_argument("--profile", action="store_true", help="only the ingest, profiled: where its CPU goes")
    args = parser.parse_args()
    settings = get_settings()
    admin = AdminClient(settings.kafka.client_config())
    topic = new_topic(settings, admin)
    messages = args.readings // len(SENSORS)
    expected = messages * len(SENSORS)
    print(f"topic {topic}: {messages} messages x {len(SENSORS)} readings, {settings.kafka.partitions} partitions")
    began = time.monotonic()
    produce(settings, topic, messages)
    print(f"produced in {time.monotonic() - began:.1f}s", flush=True)
    if args.profile:
        try:
            run_profiled(settings, topic, expected)
        finally:
            admin.delete_topics([topic, f"{topic}.dlq"])
        return
    try:
        results = []
        for run in (
            lambda: run_ingest(settings, topic, expected, 1),
            lambda: run_peer(settings, topic, expected),
            lambda: run_ingest(settings, topic, expected, 2),
            lambda: run_naive(settings, topic, args.naive_messages),
        ):
            results.append(run())
            print(f"  {results[-1].name}: {results[-1].rate:,.0f} readings/s", flush=True)
    finally:
        admin.delete_topics([topic, f"{topic}.dlq"])
    one, peer, two, naive = results
    print()
    print(f"{'contender':60} {'readings/s':>12} {'readings/CPU-s':>15}")
    for r in results:
        print(f"{r.name:60} {r.rate:>12,.0f} {r.per_cpu_second:>15,.0f}")
    print(
        f"ratio vs peer (1 process / peer): {one.rate / peer.rate:.2f} (per CPU-second: "
        f"{one.per_cpu_second / peer.per_cpu_second:.2f})"
    )
    print(f"ratio 2 processes / peer: {two.rate / peer.rate:.2f}")
    print(f"ratio vs naive (1 process / naive): {one.rate / naive.rate:,.0f}x")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    p50, p99 = latency(settings, admin, 10_000, args.latency_seconds)
    print(f"latency produce -> row in raw table at 10k readings/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms")


if __name__ == "__main__":
    with running_stack(get_settings()):  # started here when not up, and stopped again after
        main()
