"""`plantwatch demo`: the whole mission in one run, on its own topics and database.

stack up -> a simulated plant (a healthy history the trailing baselines learn from, then minutes with injected
faults) published through the SDK logger -> Kafka -> the ingest app
(a real `plantwatch ingest` process) -> ClickHouse -> dbt build -> the data-quality checkpoint -> the alert rules
-> the alert lifecycle (the simulated minutes replayed through the continuous evaluator and the stack's
Alertmanager to a local webhook: plantwatch/alert_replay.py) -> a summary of what fired against what was injected,
and a PNG of a faulty machine's sensors marked with when each notification went out.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from plantwatch import warehouse
from plantwatch.alert_replay import Lifecycle, first_sent, replay
from plantwatch.alerting import evaluate_rules, results_table
from plantwatch.checks import check_once, print_run
from plantwatch.producers.faults import load_scenario
from plantwatch.producers.plant import load_plant
from plantwatch.producers.simulator import RunResult, run_simulation
from plantwatch.report import plot_machine
from plantwatch.settings import PROJECT_ROOT, Settings, environment, get_settings
from plantwatch.stack import Stack
from plantwatch.streams.ingest import transient
from plantwatch.transform import transform

# Alert rules (by uid, grafana/provisioning/alerting/rules.yaml) that fire because of how the demo runs.
FIRING_BY_DESIGN = {
    "pw-pipeline-lag": "the demo publishes {minutes:g} minutes of readings at once, so the oldest reach ClickHouse "
    "that long after they were taken",
    "pw-data-quality": "the out_of_range fault injects physically impossible values, which the readings suite refuses",
}
DEMO_SCOPE = "plantwatch.demo"  # the demo's topics and consumer group; its database is the second managed one


@dataclass
class DemoResult:
    run: RunResult
    landed: int
    checks_passed: bool
    firing: list[str]
    detected: list[tuple[str, str, str, bool]]  # (machine, fault kind, alert kinds, detected)
    report: Path
    lifecycle: Lifecycle  # the alert lifecycle replayed through the evaluator, Alertmanager and a webhook


def reset(settings: Settings) -> None:
    """Fresh topics, consumer group and database for this run (the demo's own, never the configured ones)."""
    admin = AdminClient(settings.kafka.client_config())
    topics = [settings.kafka.readings_topic, settings.kafka.dead_letter_topic]
    existing = set(admin.list_topics(timeout=10).topics)
    if doomed := [t for t in topics if t in existing]:
        for future in admin.delete_topics(doomed).values():
            future.result(timeout=30)
        while set(admin.list_topics(timeout=10).topics) & set(doomed):
            time.sleep(0.2)
    for topic in topics:
        new = NewTopic(topic, num_partitions=settings.kafka.partitions, replication_factor=1)
        try:
            admin.create_topics([new])[topic].result(timeout=30)
        except KafkaException:  # a delete that has not settled yet: wait and try once more
            time.sleep(2)
            admin.create_topics([new])[topic].result(timeout=30)
    # The group's offsets outlive the topics: a rerun (the same seed, so the same message counts) would find
    # them at the new topics' ends and read nothing.
    delete_consumer_group(admin, settings.ingest.consumer_group)
    admin_ch = warehouse.client(settings, database="default")
    admin_ch.command(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")
    warehouse.migrate(settings)


def delete_consumer_group(admin: AdminClient, group: str, timeout: float = 60.0) -> None:
    """Delete `group` if it exists; a coordinator still loading (a broker just started) is waited for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin.delete_consumer_groups([group])[group].result(timeout=30)
            return
        except KafkaException as exc:
            if exc.args[0].code() == KafkaError.GROUP_ID_NOT_FOUND:
                return
            if not transient(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_landed(settings: Settings, expected: int, timeout: float, progress: Progress, task: object) -> int:
    ch = warehouse.client(settings)
    view = settings.clickhouse.readings_view
    deadline = time.monotonic() + timeout
    landed = 0
    while time.monotonic() < deadline:
        landed = int(ch.command(f"SELECT count() FROM {view}"))
        progress.update(task, completed=landed)
        if landed >= expected:
            break
        time.sleep(0.5)
    return landed


def detection_table(settings: Settings, run: RunResult) -> list[tuple[str, str, str, bool]]:
    """For each injected fault: the alert kinds raised on its machine while it lasted (and a little after)."""
    ch = warehouse.client(settings)
    sql = (PROJECT_ROOT / "plantwatch" / "sql" / "queries" / "alerts_during.sql").read_text()
    rows = []
    for label in run.labels:
        kinds = ch.query(
            sql,
            parameters={"machine": label.machine_id, "start_ms": label.start_ms, "end_ms": label.end_ms},
        ).result_rows
        found = sorted({f"{category}:{kind}" for category, kind in kinds})
        rows.append((label.machine_id, label.fault_kind, ", ".join(found) or "-", bool(found)))
    return rows


def run_demo(
    settings: Settings, console: Console, minutes: float = 6.0, seed: int = 7, history: float = 40.0
) -> DemoResult:
    settings = settings.scoped(DEMO_SCOPE, database=settings.clickhouse.managed_databases[1])
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(), console=console,
    )  # fmt: skip
    with progress:
        step = progress.add_task("starting the stack", total=None)
        Stack(settings).up(timeout=240, progress=lambda msg: progress.update(step, description=msg))
        progress.update(step, description="fresh demo topics and database")
        reset(settings)
        progress.update(step, description="starting the ingest app")
        ingest = subprocess.Popen(
            [sys.executable, "-m", "plantwatch.streams.ingest"],
            env={**os.environ, **environment(settings)},
            stdout=subprocess.DEVNULL,
            stderr=(settings.state_dir / "logs" / "demo-ingest.log").open("wb"),
        )
        try:
            plant = load_plant(settings.producer.plant_file)
            scenario = load_scenario(settings.producer.scenario_file).shifted(history * 60)
            total = history + minutes
            progress.update(step, description=f"simulating {total:g} min of {len(plant.machines)} machines")
            # Simulated time ends about now, so freshness and "not in the future" hold as for a live plant.
            start_ms = int(time.time() * 1000 - total * 60_000)
            run = run_simulation(settings, plant, scenario, seed=seed, start_ms=start_ms, duration_s=total * 60, rate=0)
            progress.remove_task(step)
            landing = progress.add_task("readings landing in ClickHouse", total=run.readings)
            landed = wait_landed(settings, run.readings, 120, progress, landing)
        finally:
            ingest.send_signal(signal.SIGTERM)
            ingest.wait(30)
        step = progress.add_task("dbt build", total=None)
        transform(settings)
        progress.update(step, description="data-quality checkpoint")
        checks = check_once(settings)
        progress.update(step, description="alert rules")
        results = evaluate_rules(settings)
        progress.update(step, description="alert lifecycle: the simulated minutes replayed through Alertmanager")
        faults_from = datetime.fromtimestamp(start_ms / 1000, UTC) + timedelta(minutes=history)
        lifecycle = replay(settings, faults_from, faults_from + timedelta(minutes=minutes), PROJECT_ROOT / "reports")
        progress.update(step, description="report")
        detected = detection_table(settings, run)
        drifting = [label.machine_id for label in run.labels if label.fault_kind == "drift"]
        faulty = (drifting or [label.machine_id for label in run.labels])[0]
        marks = [(n.at, n.status, n.alertname) for n in first_sent(lifecycle.notifications) if n.machine_id == faulty]
        report = plot_machine(settings, faulty, PROJECT_ROOT / "reports" / f"demo-{faulty}.png", marks)
        progress.remove_task(step)

    console.print(f"[bold]{run.readings:,}[/] readings from {len(plant.machines)} machines published in "
                  f"{run.seconds:.1f}s; [bold]{landed:,}[/] landed in ClickHouse")  # fmt: skip
    print_run(checks, console)
    console.print(results_table(results))
    for result in results:
        if result.state == "firing" and (why := FIRING_BY_DESIGN.get(result.rule.uid)):
            console.print(f"[dim]{result.rule.title} fires by design here: {why.format(minutes=total)}.[/]")
    table = Table("machine", "injected fault", "alerts raised (category:kind)", "detected", title="Faults vs alerts")
    for machine, kind, alerts, hit in detected:
        table.add_row(machine, kind, alerts, "[green]yes[/]" if hit else "[red]no[/]")
    console.print(table)
    print_lifecycle(console, lifecycle, settings)
    console.print(f"report: {report}")
    firing = [r.rule.title for r in results if r.state == "firing"]
    return DemoResult(run, landed, checks.success, firing, detected, report, lifecycle)


def print_lifecycle(console: Console, lifecycle: Lifecycle, settings: Settings) -> None:
    table = Table(
        "simulated time", "notification", "alert", "machine", "labels",
        title="Alert lifecycle: notifications received by the demo's webhook (via Alertmanager)",
    )  # fmt: skip
    for n in sorted(first_sent(lifecycle.notifications), key=lambda n: n.at):
        colour = "red" if n.status == "firing" else "green"
        own = {k: v for k, v in n.labels.items() if k in ("kind", "severity", "sensor_id")}
        labels = ", ".join(f"{k}={v}" for k, v in own.items())
        table.add_row(n.at.strftime("%H:%M:%S"), f"[{colour}]{n.status}[/]", n.alertname, n.machine_id, labels)
    console.print(table)
    changes = len(lifecycle.events)
    console.print(
        f"{changes} alert state changes recorded in {settings.clickhouse.alert_events_table} (mart alert_history); "
        f"Alertmanager UI: {settings.alertmanager.url}"
        + (f", screenshot {lifecycle.screenshot}" if lifecycle.screenshot else "")
    )
    if lifecycle.problem:
        console.print(f"[yellow]alert lifecycle: {lifecycle.problem}[/]")


def demo(
    minutes: float = 6.0,
    seed: int = 7,
    history: float = 40.0,
) -> None:
    """Run the whole mission on a simulated plant with injected faults (its own topics and database)."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    console = Console()
    result = run_demo(get_settings(), console, minutes, seed, history)
    missed = [d for d in result.detected if not d[3]]
    if result.landed < result.run.readings:
        console.print("[red]not every reading landed[/]")
        raise SystemExit(1)
    console.print(
        f"[bold]{len(result.detected) - len(missed)}/{len(result.detected)}[/] injected faults raised an alert; "
        f"{len(result.firing)} alert rule(s) firing."
    )
