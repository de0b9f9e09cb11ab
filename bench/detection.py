"""Detection benchmark: the simulator's faults through the whole pipeline, scored against the ground truth.

    simulator (producers) -> Kafka -> ingest (streams) -> ClickHouse -> dbt -> plantwatch.scoring

in a database and topics of its own (dropped at the end). The default scenario's faults (every kind once) are
moved past a healthy warm-up (default an hour of event time), so the detectors have a reference. The flags are
scored twice: with the trailing baselines (the default), then with commissioning baselines fitted on the warm-up
(`plantwatch baseline fit` for every machine, then `dbt build --full-refresh` to rescore). --direct inserts the
simulator's readings straight into the raw table instead of going through Kafka and the ingest app.

A replayed CSV (one machine, optionally with a 0/1 label column) is scored the same way with --csv; --baseline-rows
names its first rows as the healthy period for a commissioning baseline.

    .venv/bin/python bench/detection.py [--warmup 3600] [--seed 7] [--direct]
    .venv/bin/python bench/detection.py --csv pump.csv --machine P-01 --label-column fault --baseline-rows 5000
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch import baseline, warehouse
from plantwatch.reading import COLUMN_NAMES
from plantwatch.scoring import DetectionScore, report, score
from plantwatch.settings import PROJECT_ROOT, Settings, get_settings
from plantwatch.stack import running_stack
from plantwatch.transform import Transformer
from producers.faults import Scenario, load_scenario
from producers.labels import insert_labels
from producers.plant import load_plant
from producers.replay import replay_csv
from producers.simulator import Simulation, run_simulation, ticks_for

GOALS = "goals: episode recall 1.0, F1 >= 0.9, median delay <= 30 s, no sensor fault raised as a machine anomaly"


def shifted(scenario: Scenario, seconds: float) -> Scenario:
    faults = [f.model_copy(update={"start_s": f.start_s + seconds}) for f in scenario.faults]
    return Scenario(name=f"{scenario.name}+{seconds:g}s", faults=faults)


def raw_count(settings: Settings) -> int:
    ch = settings.clickhouse
    return (
        warehouse.client(settings).query(f"select count() from {ch.database}.{ch.raw_readings_table}").result_rows[0][0]
    )


class Ingest:
    """`plantwatch ingest` as a subprocess on the isolated topics and database."""

    def __init__(self, settings: Settings) -> None:
        env = {
            **os.environ,
            "PLANTWATCH_CLICKHOUSE__DATABASE": settings.clickhouse.database,
            "PLANTWATCH_KAFKA__READINGS_TOPIC": settings.kafka.readings_topic,
            "PLANTWATCH_KAFKA__DEAD_LETTER_TOPIC": settings.kafka.dead_letter_topic,
            "PLANTWATCH_INGEST__CONSUMER_GROUP": settings.ingest.consumer_group,
            # The component users are granted on the configured databases only, not on this throwaway one.
            "PLANTWATCH_CLICKHOUSE__ROLES": "false",
        }
        plantwatch = Path(sys.executable).parent / "plantwatch"
        self.process = subprocess.Popen([str(plantwatch), "ingest"], env=env, cwd=PROJECT_ROOT)

    def wait_for(self, settings: Settings, expected: int, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while (landed := raw_count(settings)) < expected:
            if self.process.poll() is not None:
                raise RuntimeError(f"ingest exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {landed} of {expected} readings landed in {timeout:.0f}s")
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def insert_direct(settings: Settings, sim: Simulation, ticks: int, run_id: str) -> int:
    """The simulator's readings straight into the raw table (no Kafka, no ingest app), and its labels."""
    columns: dict[str, list] = {name: [] for name in COLUMN_NAMES}
    for machine_id, ts, readings in sim.messages(ticks):
        moment = datetime.fromtimestamp(ts / 1000, UTC)
        for r in readings:
            for name, value in zip(COLUMN_NAMES, (machine_id, r["sensor_id"], r["kind"], r["value"], r["unit"], moment,
                                                  r["seq"], 1), strict=True):  # fmt: skip
                columns[name].append(value)
    warehouse.client(settings).insert(settings.clickhouse.raw_readings_table, [columns[n] for n in COLUMN_NAMES],
                                      column_names=list(COLUMN_NAMES), column_oriented=True)  # fmt: skip
    insert_labels(settings, sim.faults.labels(run_id, sim.end_ms(ticks)))
    return len(columns["value"])


def simulate(settings: Settings, args: argparse.Namespace) -> tuple[str, datetime, datetime, list[str]]:
    """Run the simulator into the isolated database; returns run id, start, end of the warm-up, machine ids."""
    plant = load_plant(settings.producer.plant_file)
    scenario = shifted(load_scenario(settings.producer.scenario_file), args.warmup)
    start_ms = (int(time.time()) - args.warmup - args.after) // 60 * 60 * 1000
    run_id = f"bench-detection-{args.seed}"
    duration = args.warmup + args.after
    began = time.monotonic()
    if args.direct:
        sim = Simulation(plant, scenario, args.seed, start_ms)
        count = insert_direct(settings, sim, ticks_for(plant, duration) or 0, run_id)
        print(f"simulated {count:,} readings straight into ClickHouse in {time.monotonic() - began:.1f}s")
    else:
        ingest = Ingest(settings)
        try:
            result = run_simulation(settings, plant, scenario, seed=args.seed, start_ms=start_ms, duration_s=duration,
                                    rate=0, archive=False, run_id=run_id)  # fmt: skip
            ingest.wait_for(settings, result.readings)
        finally:
            ingest.stop()
        print(f"simulated {result.readings:,} readings through Kafka and the ingest app in "
              f"{time.monotonic() - began:.1f}s")  # fmt: skip
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    return run_id, start, start + timedelta(seconds=args.warmup), [m.id for m in plant.machines]


def replay(settings: Settings, args: argparse.Namespace) -> tuple[str, datetime, datetime, list[str]]:
    """Replay a CSV through Kafka and the ingest app; the warm-up is its first --baseline-rows rows."""
    ingest = Ingest(settings)
    try:
        result = replay_csv(settings, args.csv, args.machine, label_column=args.label_column, archive=False)
        ingest.wait_for(settings, result.readings)
    finally:
        ingest.stop()
    print(f"replayed {result.readings:,} readings of {args.csv} ({len(result.labels)} labelled episodes)")
    ch = settings.clickhouse
    times = (
        warehouse.client(settings)
        .query(
            f"select min(event_time), "
            f"arrayElement(arraySort(groupUniqArray(event_time)), {max(args.baseline_rows, 1)}) "
            f"from {ch.database}.{ch.readings_view}"
        )
        .result_rows[0]
    )
    return result.run_id, times[0].replace(tzinfo=UTC), times[1].replace(tzinfo=UTC), [args.machine]


def summary_line(name: str, result: DetectionScore) -> str:
    return (f"{name}: episode recall {result.episode_recall():.3f}, episode F1 {result.episode_f1():.3f}, "
            f"reading F1 {result.overall_readings.f1:.3f}, median delay {result.median_delay_s():.1f} s, "
            f"sensor faults as machine anomalies {result.cross_flags}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=3600, help="healthy seconds before the faults")
    parser.add_argument("--after", type=int, default=600, help="seconds from the end of the warm-up to the end")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--direct", action="store_true", help="insert into ClickHouse directly (no Kafka/ingest)")
    parser.add_argument("--csv", type=Path, help="score a replayed CSV instead of the simulator")
    parser.add_argument("--machine", default="csv-machine", help="machine id for --csv")
    parser.add_argument("--label-column", help="the CSV's 0/1 label column")
    parser.add_argument("--baseline-rows", type=int, default=0, help="first rows of the CSV that ran healthy")
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()

    settings = get_settings().scoped(f"bench.detection.{uuid.uuid4().hex[:8]}")
    admin = AdminClient(settings.kafka.client_config())
    topics = [settings.kafka.readings_topic, settings.kafka.dead_letter_topic]
    for future in admin.create_topics([NewTopic(t, num_partitions=settings.kafka.partitions) for t in topics]).values():
        future.result(30)
    warehouse.migrate(settings)
    try:
        run_id, start, healthy_until, machines = replay(settings, args) if args.csv else simulate(settings, args)
        transformer = Transformer(settings)
        began = time.monotonic()
        transformer.build()
        print(f"dbt build in {time.monotonic() - began:.1f}s\n")
        trailing = score(settings, [run_id])
        print("== trailing baselines ==\n" + report(trailing) + "\n")
        if not args.csv or args.baseline_rows:
            for machine in machines:
                baseline.fit(settings, machine, start, healthy_until, "bench/detection.py warm-up", transformer)
            transformer.build(full_refresh=True)
            commissioning = score(settings, [run_id])
            print(f"== commissioning baselines (fitted on {start:%H:%M:%S}-{healthy_until:%H:%M:%S}) ==\n"
                  + report(commissioning) + "\n")  # fmt: skip
            print(summary_line("commissioning", commissioning))
        print(summary_line("trailing", trailing))
        print(GOALS)
    finally:
        if not args.keep:
            warehouse.client(settings, database="default").command(
                f"DROP DATABASE IF EXISTS {settings.clickhouse.database}"
            )
            admin.delete_topics(topics)


if __name__ == "__main__":
    with running_stack(get_settings()):  # started here when not up, and stopped again after
        main()
