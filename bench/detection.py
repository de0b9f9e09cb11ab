"""Detection benchmark: labelled data through the whole pipeline, scored against its labels.

    producers (simulator or CSV replay) -> Kafka -> ingest (streams) -> ClickHouse -> dbt -> plantwatch.scoring

in a database and topics of its own (dropped at the end). Two kinds of data:

- the simulator (default): the default scenario's faults (every kind once) moved past a healthy warm-up (default
  an hour of event time), scored with the trailing baselines, then with commissioning baselines fitted on the
  warm-up; per reading and per episode, sensor faults kept apart from machine anomalies;
- labelled exports (``--csv FILE_OR_FOLDER``, repeatable, or ``--lookalike NAME``: bench/lookalikes.py's real-plant
  look-alikes), each file one machine (named after the file), replayed as a user replays them (`plantwatch
  replay`). Each machine's healthy period (``--train-rows N``, ``--train-until T`` or ``--train-fraction F``) is
  fitted as its commissioning baseline (`plantwatch baseline fit`), the next transform rescores it, and every row
  after it is scored: per-row F1, false-alarm rate and missed-alarm rate pooled over the machines; per labelled
  episode, hits and delay; and the false-alarm episodes (machine alerts that overlap no label).

--direct (the simulator only) inserts the readings straight into the raw table instead of going through Kafka and
the ingest app.

    .venv/bin/python bench/detection.py [--warmup 3600] [--seed 7] [--direct]
    .venv/bin/python bench/detection.py --csv runs/ --label-column anomaly --train-rows 400
    .venv/bin/python bench/detection.py --lookalike test-rig --lookalike machine-temperature
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch import baseline, warehouse
from plantwatch.producers.faults import load_scenario
from plantwatch.producers.labels import insert_labels
from plantwatch.producers.plant import load_plant
from plantwatch.producers.replay import replay_csv
from plantwatch.producers.simulator import Simulation, run_simulation, ticks_for
from plantwatch.reading import COLUMN_NAMES, SensorKind
from plantwatch.scoring import DetectionScore, InstantScore, instant_report, report, score, score_instants
from plantwatch.settings import PROJECT_ROOT, Settings, environment, get_settings
from plantwatch.stack import running_stack
from plantwatch.transform import Transformer

sys.path.insert(0, str(Path(__file__).parent))
import lookalikes

SIMULATOR_GOALS = "goals: episode recall 1.0, F1 >= 0.9, median delay <= 30 s, no sensor fault as a machine anomaly"
EXPORT_GOALS = "goals (look-alikes): false-alarm rate <= 5% of normal rows, every labelled episode detected"


def raw_count(settings: Settings) -> int:
    ch = settings.clickhouse
    return (
        warehouse.client(settings).query(f"select count() from {ch.database}.{ch.raw_readings_table}").result_rows[0][0]
    )


class Ingest:
    """`plantwatch ingest` as a subprocess on the isolated topics and database."""

    def __init__(self, settings: Settings) -> None:
        plantwatch = Path(sys.executable).parent / "plantwatch"
        env = {**os.environ, **environment(settings)}
        self.process = subprocess.Popen([str(plantwatch), "ingest"], env=env, cwd=PROJECT_ROOT)

    def wait_for(self, settings: Settings, expected: int, timeout: float = 600.0) -> None:
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
    scenario = load_scenario(settings.producer.scenario_file).shifted(args.warmup)
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


def summary_line(name: str, result: DetectionScore) -> str:
    return (f"{name}: episode recall {result.episode_recall():.3f}, episode F1 {result.episode_f1():.3f}, "
            f"reading F1 {result.overall_readings.f1:.3f}, median delay {result.median_delay_s():.1f} s, "
            f"sensor faults as machine anomalies {result.cross_flags}")  # fmt: skip


def run_simulator(settings: Settings, args: argparse.Namespace) -> None:
    run_id, start, healthy_until, machines = simulate(settings, args)
    transformer = Transformer(settings)
    began = time.monotonic()
    transformer.build()
    print(f"dbt build in {time.monotonic() - began:.1f}s\n")
    trailing = score(transformer, [run_id])
    print("== trailing baselines ==\n" + report(trailing) + "\n")
    for machine in machines:
        baseline.fit(settings, machine, start, healthy_until, "bench/detection.py warm-up", transformer)
    transformer.build()  # rescores each fitted machine's history
    commissioning = score(transformer, [run_id])
    print(f"== commissioning baselines (fitted on {start:%H:%M:%S}-{healthy_until:%H:%M:%S}) ==\n"
          + report(commissioning) + "\n")  # fmt: skip
    print(summary_line("commissioning", commissioning))
    print(summary_line("trailing", trailing))
    print(SIMULATOR_GOALS)


def machine_id(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.:-]+", "-", path.stem).strip("-.:_")[:64] or "csv"


def csv_files(paths: list[Path]) -> list[Path]:
    found = []
    for path in paths:
        found += sorted(path.glob("*.csv")) if path.is_dir() else [path]
    if not found:
        raise SystemExit("no CSV files in " + ", ".join(map(str, paths)))
    return found


def replay_exports(settings: Settings, files: list[Path], args: argparse.Namespace) -> list[str]:
    """Every file replayed as its own machine through Kafka and the ingest app, as a user replays it (--direct is
    the simulator's only); returns the machine ids."""
    kinds = {column: SensorKind(kind) for column, _, kind in (pair.rpartition("=") for pair in args.kind or [])}
    ingest = Ingest(settings)
    machines, readings = [], 0
    began = time.monotonic()
    try:
        for path in files:
            machine = machine_id(path)
            result = replay_csv(
                settings, path, machine, delimiter=args.delimiter, time_column=args.time_column,
                label_column=args.label_column, kinds=kinds, archive=False, run_id=f"bench-{machine}",
            )  # fmt: skip
            if result.malformed:
                print(f"  {path.name}: {len(result.malformed)} malformed rows left out (first: line "
                      f"{result.malformed[0][0]}: {result.malformed[0][1]})")  # fmt: skip
            machines.append(machine)
            readings += result.readings
        ingest.wait_for(settings, readings)
    finally:
        ingest.stop()
    print(f"replayed {len(files)} files ({readings:,} readings) in {time.monotonic() - began:.1f}s")
    return machines


def healthy_period(settings: Settings, machine: str, args: argparse.Namespace) -> tuple[datetime, datetime]:
    if args.train_rows:
        return baseline.first_rows_period(settings, machine, args.train_rows)
    if args.train_until:
        until = datetime.fromisoformat(args.train_until)
        return baseline.machine_start(settings, machine), until if until.tzinfo else until.replace(tzinfo=UTC)
    rows = baseline.machine_rows(settings, machine)
    return baseline.first_rows_period(settings, machine, max(1, int(rows * args.train_fraction)))


def score_exports(settings: Settings, files: list[Path], args: argparse.Namespace) -> InstantScore:
    machines = replay_exports(settings, files, args)
    transformer = Transformer(settings)
    began = time.monotonic()
    transformer.build()
    print(f"dbt build in {time.monotonic() - began:.1f}s")
    periods = {machine: healthy_period(settings, machine, args) for machine in machines}
    scored_from = {machine: end for machine, (_, end) in periods.items()}
    if args.trailing:
        print("== trailing baselines (no fit) ==\n" + instant_report(score_instants(transformer, scored_from)) + "\n")
    began = time.monotonic()
    for machine, (start, end) in periods.items():
        baseline.fit(settings, machine, start, end, "bench/detection.py healthy period", transformer)
    transformer.build()  # rescores each fitted machine's history against its new baseline
    print(f"fitted {len(periods)} commissioning baselines and rescored in {time.monotonic() - began:.1f}s")
    result = score_instants(transformer, scored_from)
    print("== commissioning baselines (each machine's healthy period) ==\n" + instant_report(result))
    if args.rebaseline_rows:
        skipped, faults = [], len(result.episodes)
        for episode in result.episodes:  # maintenance done at the fault's end: fit again on the rows after it
            try:
                start, end = baseline.first_rows_period(settings, episode.machine_id, args.rebaseline_rows,
                                                        episode.end_time)  # fmt: skip
            except baseline.BaselineError as exc:  # e.g. the run ends before that many rows after the fault
                skipped.append(f"{episode.machine_id}: {exc}")
                continue
            baseline.fit(settings, episode.machine_id, start, end, "bench/detection.py after maintenance", transformer)
        transformer.build()
        result = score_instants(transformer, scored_from)
        print(f"== re-baselined on the {args.rebaseline_rows} rows after each fault: {faults - len(skipped)} of "
              f"{faults} faults ==\n" + instant_report(result))  # fmt: skip
        for reason in skipped:
            print(f"  not re-baselined (scored against the earlier baseline): {reason}")
    return result


def export_sets(args: argparse.Namespace, scratch: Path) -> list[tuple[str, list[Path], argparse.Namespace]]:
    """(name, files, options) of each data set to score: the --csv files together, each look-alike apart."""
    sets = []
    if args.csv:
        sets.append(("csv", csv_files(args.csv), args))
    for name in args.lookalike or []:
        spec = lookalikes.DATA_SETS[name]
        files = lookalikes.write(name, scratch / name, runs=args.runs, seed=args.seed)
        options = argparse.Namespace(**{**vars(args), "label_column": spec.label_column,
                                        "train_rows": spec.train_rows, "train_fraction": spec.train_fraction,
                                        "train_until": None, "delimiter": None, "time_column": None,
                                        "rebaseline_rows": args.rebaseline_rows or spec.rebaseline_rows})  # fmt: skip
        sets.append((name, files, options))
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=3600, help="simulator: healthy seconds before the faults")
    parser.add_argument("--after", type=int, default=600, help="simulator: seconds after the warm-up")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--direct", action="store_true", help="simulator: straight into ClickHouse, no Kafka")
    parser.add_argument("--csv", type=Path, action="append", help="a labelled export, or a folder of them")
    parser.add_argument("--lookalike", action="append", choices=sorted(lookalikes.DATA_SETS),
                        help="a real-plant look-alike from bench/lookalikes.py")  # fmt: skip
    parser.add_argument("--runs", type=int, default=34, help="look-alike runs (test-rig, new-operating-point)")
    parser.add_argument("--label-column", help="the exports' label column (0/1, 0.0/1.0, true/false)")
    period = parser.add_mutually_exclusive_group()
    period.add_argument("--train-rows", type=int, help="each export's first N rows ran healthy")
    period.add_argument("--train-until", help="each export ran healthy until this time (ISO 8601)")
    period.add_argument("--train-fraction", type=float, help="each export's first fraction of rows ran healthy")
    parser.add_argument("--time-column", help="the exports' time column (default: detected)")
    parser.add_argument("--delimiter", help="the exports' delimiter (default: detected)")
    parser.add_argument("--kind", action="append", help="COLUMN=KIND for a column whose kind is not guessed")
    parser.add_argument("--trailing", action="store_true", help="exports: score the trailing baselines first too")
    parser.add_argument("--rebaseline-rows", type=int, help="exports: then re-baseline N rows after each labelled "
                        "fault (the engineer's rule after maintenance) and score again")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()
    if args.csv and not (args.label_column and (args.train_rows or args.train_until or args.train_fraction)):
        parser.error("--csv needs --label-column and the healthy period (--train-rows, --train-until or "
                     "--train-fraction)")  # fmt: skip

    run = f"bench.detection.{uuid.uuid4().hex[:8]}"
    admin = AdminClient(get_settings().kafka.client_config())
    if not (args.csv or args.lookalike):
        with isolated(get_settings().scoped(run), admin, args.keep) as settings:
            run_simulator(settings, args)
        return
    results = []
    with tempfile.TemporaryDirectory(prefix="plantwatch-lookalikes-") as scratch:
        for name, files, options in export_sets(args, Path(scratch)):
            print(f"\n#### {name}: {len(files)} files ####")
            with isolated(get_settings().scoped(f"{run}.{name}"), admin, args.keep) as settings:
                results.append((name, score_exports(settings, files, options)))
    print("\n#### summary ####")
    for name, result in results:
        rows = result.rows
        print(f"{name}: F1 {rows.f1:.3f}, FAR {rows.false_alarm_rate:.1%}, MAR {result.missed_alarm_rate:.1%}; "
              f"{result.hits}/{len(result.episodes)} episodes detected, {len(result.false_alarms)} false-alarm "
              f"episodes, median delay {result.median_delay_s():.0f} s")  # fmt: skip
    print(EXPORT_GOALS)


@contextmanager
def isolated(settings: Settings, admin: AdminClient, keep: bool) -> Iterator[Settings]:
    """The settings' topics created and database migrated for the block; dropped after unless kept."""
    topics = [settings.kafka.readings_topic, settings.kafka.dead_letter_topic]
    for future in admin.create_topics([NewTopic(t, num_partitions=settings.kafka.partitions) for t in topics]).values():
        future.result(30)
    warehouse.migrate(settings)
    try:
        yield settings
    finally:
        if not keep:
            warehouse.client(settings, database="default").command(
                f"DROP DATABASE IF EXISTS {settings.clickhouse.database}"
            )
            admin.delete_topics(topics)


if __name__ == "__main__":
    with running_stack(get_settings()):  # started here when not up, and stopped again after
        main()
