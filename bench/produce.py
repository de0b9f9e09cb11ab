"""Readings/s that one producer process sends to the real local Kafka, archive on and off.

Each run simulates the default plant as fast as possible into a fresh topic (one message per machine per instant,
8/6/4 readings each) and counts until Kafka acknowledged every message; the topic's offsets are then checked
against what was sent. Other work shares the machine's cores: compare the figures of one run with each other.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch.settings import Settings, get_settings
from producers.faults import NO_FAULTS
from producers.plant import load_plant
from producers.simulator import Simulation, run_simulation, ticks_for

START_MS = 1_764_288_000_000


def topic_messages(settings: Settings, topic: str) -> int:
    consumer = Consumer({**settings.kafka.client_config(), "group.id": f"bench-{uuid.uuid4().hex}"})
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts)
    finally:
        consumer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readings", type=int, default=3_000_000)
    args = parser.parse_args()
    base = get_settings()
    plant = load_plant(base.producer.plant_file)
    admin = AdminClient(base.kafka.client_config())

    began = time.perf_counter()
    generated = sum(len(r) for _, _, r in Simulation(plant, seed=1, start_ms=START_MS).messages(
        ticks_for(plant, count=args.readings)))  # fmt: skip
    print(f"generation only        : {generated / (time.perf_counter() - began):>12,.0f} readings/s")

    for archive in (True, False):
        topic = f"bench.produce.{uuid.uuid4().hex[:8]}"
        admin.create_topics([NewTopic(topic, base.kafka.partitions, 1)])[topic].result(30)
        state = Path(tempfile.mkdtemp(prefix="bench-produce-"))
        settings = base.model_copy(
            update={"state_dir": state, "kafka": base.kafka.model_copy(update={"readings_topic": topic})}
        )
        try:
            result = run_simulation(settings, plant, NO_FAULTS, seed=1, start_ms=START_MS, count=args.readings,
                                    rate=0, archive=archive)  # fmt: skip
            in_topic = topic_messages(settings, topic)
            archive_mb = sum(p.stat().st_size for p in (state / "archive").rglob("*.zst")) / 2**20 if archive else 0
            label = "archive on " if archive else "archive off"
            print(
                f"{label} -> Kafka   : {result.readings / result.seconds:>12,.0f} readings/s  "
                f"{result.messages / result.seconds:>9,.0f} messages/s  ({result.readings:,} readings, "
                f"{result.seconds:.2f}s, all acknowledged: {result.delivered}, messages in topic: {in_topic:,}"
                + (f", archive {archive_mb:.1f} MiB" if archive else "")
                + ")"
            )
        finally:
            admin.delete_topics([topic])
            shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
