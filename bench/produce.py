"""Readings/s that one producer process sends to the real local Kafka, archive on and off.

Each run simulates the default plant as fast as possible into a fresh topic (one message per machine per instant,
8/6/4 readings each) and counts until Kafka acknowledged every message; the topic's offsets are then checked
against what was sent. Other work (the broker itself, and whatever else runs) shares the machine's cores: compare
the figures of one run with each other. Readings per CPU-second of the producer process (its main thread and
librdkafka's threads) is the figure least moved by that sharing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch.producers.faults import NO_FAULTS
from plantwatch.producers.plant import Plant, load_plant
from plantwatch.producers.simulator import Simulation, run_simulation, ticks_for
from plantwatch.settings import Settings, get_settings
from plantwatch.stack import running_stack

START_MS = 1_764_288_000_000


def topic_messages(settings: Settings, topic: str) -> int:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        consumer.close()


def one_run(base: Settings, admin: AdminClient, plant: Plant, readings: int, archive: bool) -> tuple[float, float]:
    """(readings/s, messages/s) of one run into a fresh topic, checked against the topic's offsets."""
    topic = f"bench.produce.{uuid.uuid4().hex[:8]}"
    admin.create_topics([NewTopic(topic, base.kafka.partitions, 1)])[topic].result(30)
    state = Path(tempfile.mkdtemp(prefix="bench-produce-"))
    settings = base.model_copy(
        update={"state_dir": state, "kafka": base.kafka.model_copy(update={"readings_topic": topic})}
    )
    try:
        cpu = time.process_time()
        result = run_simulation(settings, plant, NO_FAULTS, seed=1, start_ms=START_MS, count=readings, rate=0,
                                archive=archive)  # fmt: skip
        cpu = time.process_time() - cpu
        in_topic = topic_messages(settings, topic)
        if not result.delivered or in_topic != result.messages:
            raise SystemExit(f"lost messages: sent {result.messages}, {in_topic} in the topic")
        archive_mb = sum(p.stat().st_size for p in (state / "archive").rglob("*.zst")) / 2**20 if archive else 0
        per_s = result.readings / result.seconds, result.messages / result.seconds
        print(
            f"archive {'on ' if archive else 'off'} -> Kafka: {per_s[0]:>10,.0f} readings/s {per_s[1]:>8,.0f} msg/s"
            f"  ({result.readings:,} readings in {result.seconds:.2f}s, all {in_topic:,} messages in the topic, "
            f"{result.readings / cpu:,.0f} readings per CPU-second of this process"
            + (f", archive {archive_mb:.1f} MiB)" if archive else ")")
        )
        return per_s
    finally:
        admin.delete_topics([topic])
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=3_000_000)
    parser.add_argument("--rounds", type=int, default=2, help="archive on/off pairs, alternating")
    args = parser.parse_args()
    base = get_settings()
    plant = load_plant(base.producer.plant_file)
    admin = AdminClient(base.kafka.client_config())

    began = time.perf_counter()
    generated = sum(len(r) for _, _, r in Simulation(plant, seed=1, start_ms=START_MS).messages(
        ticks_for(plant, count=args.readings)))  # fmt: skip
    print(f"generation only (no Kafka, no archive): {generated / (time.perf_counter() - began):,.0f} readings/s")
    print("warm-up run (not counted):", end=" ")
    one_run(base, admin, plant, args.readings // 10, archive=False)
    runs: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for archive in (True, False):
            runs[archive].append(one_run(base, admin, plant, args.readings, archive)[0])
    on, off = statistics.median(runs[True]), statistics.median(runs[False])
    print(f"median readings/s: archive on {on:,.0f}, archive off {off:,.0f}; on/off = {on / off:.2f} "
          f"(goal: >= 300,000 with the archive on; other work shares these cores)")  # fmt: skip


if __name__ == "__main__":
    with running_stack(get_settings()):  # started here when not up, and stopped again after
        main()
