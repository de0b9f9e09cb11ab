"""`plantwatch demo`: the whole mission in one run, on its own topics and database.

stack up -> a simulated plant (a healthy history the trailing baselines learn from, then minutes with injected
faults) published through the SDK logger -> Kafka -> the ingest app
(a real `plantwatch ingest` process) -> ClickHouse -> dbt build -> the data-quality checkpoint -> the alert rules
-> the alert lifecycle (the simulated minutes replayed through the continuous evaluator and the stack's
Alertmanager to a local webhook: plantwatch/alert_replay.py) -> a summary of what fired against what was injected,
and a PNG of a faulty machine's sensors marked with when each notification went out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch import warehouse
from plantwatch.alert_replay import Lifecycle, first_sent, replay
from plantwatch.alerting import RuleResult, evaluate_rules
from plantwatch.expectations.check import check_once
from plantwatch.producers.faults import load_scenario
from plantwatch.producers.plant import load_plant
from plantwatch.producers.simulator import RunResult, run_simulation
from plantwatch.report import plot_machine
from plantwatch.resources import workspace
from plantwatch.settings import Settings, environment
from plantwatch.stack import Stack
from plantwatch.topics import admin_client, transient_kafka_error
from plantwatch.transform import transform

if TYPE_CHECKING:
    from plantwatch.expectations.checkpoint import CheckRun  # Great Expectations: imported when the check runs

# Alert rules (by uid, grafana/provisioning/alerting/rules.yaml) that fire because of how the demo runs.
FIRING_BY_DESIGN = {
    "pw-pipeline-lag": "the demo publishes {minutes:g} minutes of readings at once, so the oldest reach ClickHouse "
    "that long after they were taken",
    "pw-data-quality": "the out_of_range fault injects physically impossible values, which the readings suite refuses",
}
DEMO_SCOPE = "plantwatch.demo"  # the demo's topics and consumer group; its database is the second managed one


class DemoProgress(Protocol):
    """How the demo reports its way (plantwatch.cli.demo draws it)."""

    def step(self, description: str) -> None:
        """The step now under way."""

    def landed(self, count: int, total: int) -> None:
        """Of the readings published, how many have landed in ClickHouse so far."""


@dataclass
class DemoResult:
    run: RunResult
    machines: int
    minutes: float  # simulated: the healthy history and the minutes with faults
    landed: int
    checks: CheckRun
    results: list[RuleResult]  # one evaluation of the alert rules
    firing: list[str]
    detected: list[tuple[str, str, str, bool]]  # (machine, fault kind, alert kinds, detected)
    report: Path
    lifecycle: Lifecycle  # the alert lifecycle replayed through the evaluator, Alertmanager and a webhook


def reset(settings: Settings) -> None:
    """Fresh topics, consumer group and database for this run (the demo's own, never the configured ones)."""
    admin = admin_client(settings)
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
    admin_ch.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": settings.clickhouse.database})
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
            if not transient_kafka_error(exc.args[0]) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_landed(settings: Settings, expected: int, timeout: float, progress: DemoProgress) -> int:
    ch = warehouse.client(settings)
    view = settings.clickhouse.readings_view
    deadline = time.monotonic() + timeout
    landed = 0
    while time.monotonic() < deadline:
        landed = int(ch.command("SELECT count() FROM {view:Identifier}", parameters={"view": view}))
        progress.landed(landed, expected)
        if landed >= expected:
            break
        time.sleep(0.5)
    return landed


def detection_table(settings: Settings, run: RunResult) -> list[tuple[str, str, str, bool]]:
    """For each injected fault: the alert kinds raised on its machine while it lasted (and a little after)."""
    ch = warehouse.client(settings)
    sql = warehouse.query_sql("alerts_during")
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
    settings: Settings, progress: DemoProgress, minutes: float = 6.0, seed: int = 7, history: float = 40.0
) -> DemoResult:
    settings = settings.scoped(DEMO_SCOPE, database=settings.clickhouse.managed_databases[1])
    progress.step("starting the stack")
    Stack(settings).up(timeout=240, progress=progress.step)
    progress.step("fresh demo topics and database")
    reset(settings)
    progress.step("starting the ingest app")
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
        progress.step(f"simulating {total:g} min of {len(plant.machines)} machines")
        # Simulated time ends about now, so freshness and "not in the future" hold as for a live plant.
        start_ms = int(time.time() * 1000 - total * 60_000)
        run = run_simulation(settings, plant, scenario, seed=seed, start_ms=start_ms, duration_s=total * 60, rate=0)
        landed = wait_landed(settings, run.readings, 120, progress)
    finally:
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(30)
    progress.step("dbt build")
    transform(settings)
    progress.step("data-quality checkpoint")
    checks = check_once(settings)
    progress.step("alert rules")
    results = evaluate_rules(settings)
    progress.step("alert lifecycle: the simulated minutes replayed through Alertmanager")
    faults_from = datetime.fromtimestamp(start_ms / 1000, UTC) + timedelta(minutes=history)
    reports = workspace() / "reports"
    lifecycle = replay(settings, faults_from, faults_from + timedelta(minutes=minutes), reports)
    progress.step("report")
    detected = detection_table(settings, run)
    drifting = [label.machine_id for label in run.labels if label.fault_kind == "drift"]
    faulty = (drifting or [label.machine_id for label in run.labels])[0]
    marks = [(n.at, n.status, n.alertname) for n in first_sent(lifecycle.notifications) if n.machine_id == faulty]
    report = plot_machine(settings, faulty, reports / f"demo-{faulty}.png", marks)
    firing = [r.rule.title for r in results if r.state == "firing"]
    return DemoResult(
        run, len(plant.machines), total, landed, checks, results, firing, detected, report, lifecycle
    )  # fmt: skip
