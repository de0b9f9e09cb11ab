"""Ingest memory across repeated replays: the resident set size (RSS) of one `plantwatch ingest` process after each
round of messages has landed, and again after it has been idle.

One topic, one ingest process for the whole run. Each round produces ``--messages`` new messages (8 readings each,
the same shape as bench/ingest.py's) into the topic, waits until every reading of the round is in the raw table,
then reads the process's RSS; after the last round the process idles ``--idle`` seconds and is read once more.
Bounded memory means the figures stay flat from round to round (the first round pays for imports, librdkafka's
buffers and the batches' first growth).

    .venv/bin/python bench/ingest_memory.py [--rounds 3] [--messages 300000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psutil
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from ingest import MACHINES, SENSORS  # bench/ingest.py: the same plant of 200 machines

from plantwatch import warehouse
from plantwatch.reading import encode
from plantwatch.settings import PROJECT_ROOT, Settings, get_settings
from plantwatch.stack import running_stack


def produce(settings: Settings, first: int, messages: int) -> None:
    """Messages number ``first`` .. ``first + messages - 1``: each a machine's next instant (no two alike)."""
    producer = Producer({**settings.kafka.client_config(), "linger.ms": 50, "compression.type": "lz4",
                         "queue.buffering.max.messages": 1_000_000})  # fmt: skip
    base_ts = int(time.time() * 1000) - 86_400_000
    for i in range(first, first + messages):
        machine, seq = MACHINES[i % len(MACHINES)], i // len(MACHINES)
        readings = [{"sensor_id": s, "kind": k, "value": 20.0 + (i * 7 + j) % 997 * 0.125, "unit": u, "seq": seq}
                    for j, (s, k, u) in enumerate(SENSORS)]  # fmt: skip
        value = encode(machine, base_ts + seq * 1000, readings)
        while True:
            try:
                producer.produce(settings.kafka.readings_topic, value, machine.encode())
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise SystemExit("messages not delivered within 120 s")


def ingest_process(settings: Settings, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PLANTWATCH_KAFKA__READINGS_TOPIC": settings.kafka.readings_topic,
        "PLANTWATCH_KAFKA__DEAD_LETTER_TOPIC": settings.kafka.dead_letter_topic,
        "PLANTWATCH_CLICKHOUSE__DATABASE": settings.clickhouse.database,
        "PLANTWATCH_INGEST__CONSUMER_GROUP": settings.ingest.consumer_group,
        "PLANTWATCH_CLICKHOUSE__ROLES": "false",  # the ingest user's grants cover the configured database only
    }
    return subprocess.Popen([sys.executable, "-m", "plantwatch.streams.ingest"], env=env, cwd=PROJECT_ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)  # fmt: skip


def wait_landed(settings: Settings, rows: int, process: subprocess.Popen, timeout: float = 600) -> None:
    client = warehouse.client(settings)
    deadline = time.monotonic() + timeout
    while (landed := client.command(f"SELECT count() FROM {settings.clickhouse.raw_readings_table}")) < rows:
        if process.poll() is not None:
            raise SystemExit(f"ingest exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise SystemExit(f"{landed} of {rows} rows after {timeout} s")
        time.sleep(0.2)


def rss_mb(process: subprocess.Popen) -> float:
    return psutil.Process(process.pid).memory_info().rss / 2**20


def measure(settings: Settings, rounds: int, messages: int, idle: float) -> list[float]:
    """RSS (MiB) after each round, then after the idle time: the figures the test bounds too."""
    log = Path(tempfile.mkdtemp(prefix="bench-ingest-memory-")) / "ingest.log"
    process = ingest_process(settings, log)
    try:
        figures = []
        for n in range(rounds):
            began = time.monotonic()
            produce(settings, n * messages, messages)
            wait_landed(settings, (n + 1) * messages * len(SENSORS), process)
            figures.append(rss_mb(process))
            print(f"round {n + 1}: {messages:,} messages ({messages * len(SENSORS):,} readings) landed in "
                  f"{time.monotonic() - began:.1f}s, ingest RSS {figures[-1]:,.0f} MiB", flush=True)  # fmt: skip
        time.sleep(idle)
        figures.append(rss_mb(process))
        print(f"after {idle:.0f}s idle: ingest RSS {figures[-1]:,.0f} MiB")
        return figures
    except SystemExit:
        print(f"--- the ingest's log ({log}):\n{log.read_text()[-3000:]}")
        raise
    finally:
        process.terminate()
        process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=300_000, help="messages per round (8 readings each)")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before the last figure")
    args = parser.parse_args()
    settings = get_settings().scoped(f"bench.memory.{uuid.uuid4().hex[:8]}")
    admin = AdminClient(settings.kafka.client_config())
    topics = [settings.kafka.readings_topic, settings.kafka.dead_letter_topic]
    for future in admin.create_topics([NewTopic(t, settings.kafka.partitions, 1) for t in topics]).values():
        future.result(30)
    warehouse.migrate(settings)
    try:
        figures = measure(settings, args.rounds, args.messages, args.idle)
    finally:
        admin.delete_topics(topics)
        warehouse.client(settings, database="default").command(
            f"DROP DATABASE IF EXISTS {settings.clickhouse.database}"
        )
    print(f"RSS per round (MiB): {' -> '.join(f'{f:,.0f}' for f in figures[:-1])}; idle {figures[-1]:,.0f}; "
          f"last / first round {figures[-2] / figures[0]:.2f}")  # fmt: skip


if __name__ == "__main__":
    with running_stack(get_settings()):  # started here when not up, and stopped again after
        main()
