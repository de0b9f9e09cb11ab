"""End-to-end latency at a steady 10k readings/s: SDK logger -> Kafka -> ingest -> ClickHouse -> dbt -> alerts.

On the shared local stack with topics, a consumer group and a database of its own (dropped at the end), it runs
a `python -m plantwatch.streams.ingest` process and a `plantwatch transform --every 10s` process, and publishes the
default plant's simulated readings through the SDK logger at a steady rate, each message stamped with its production
time (event time = wall clock at production). Every few seconds one machine's current goes beyond its spec limit for
two seconds (a different machine each time). Measured, as p50/p99:

(a) production -> row in the raw table: ``ingested_at - event_time`` over every reading (ClickHouse stamps
    ``ingested_at`` when it writes the insert);
(b) production -> spec-breach row of the materialized view int_spec_breaches visible to a query (polled);
(c) production of a fault's first reading -> its alert row visible in the ``alerts`` mart (polled);
(d) production of a fault's first reading -> its notification received by a webhook: `plantwatch alerts --every`'s
    evaluator (every EVALUATE_EVERY, the provisioned rule file with the machine-anomaly rule's `for` set by
    --alert-for) pushes to a private Alertmanager (alertmanager/alertmanager.yml, group_wait 1s), which posts to a
    webhook receiver in this process.

Goals: (a) p99 <= 1 s, (b) p99 <= 2 s, (c) p99 <= 15 s, (d) p99 <= 20 s including `for`. Other work shares the
machine's cores: the load average is printed with the figures.

    .venv/bin/python bench/latency.py [--seconds 120] [--rate 10000] [--alert-for 5s]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch import warehouse
from plantwatch.alerting import Evaluator
from plantwatch.metrics import free_port
from plantwatch.producers.plant import Plant, load_plant
from plantwatch.producers.sdk_logger import SdkLogger
from plantwatch.producers.simulator import Simulation
from plantwatch.settings import PROJECT_ROOT, Settings, environment, get_settings
from plantwatch.stack import running_stack
from plantwatch.stack.alertmanager import Alertmanager
from plantwatch.transform import transform

QUERIES = Path(__file__).parent / "sql"
FAULT_SENSOR = "current"
FAULT_SECONDS = 2.0
FAULT_EVERY_SECONDS = 8.0
WARM_UP_SECONDS = 10.0
TRANSFORM_EVERY = "10s"
POLL_SECONDS = 0.1
EVALUATE_EVERY = 2.0
ALERTMANAGER_TIMINGS = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}


@dataclass
class Fault:
    machine_id: str
    value: float
    starts: float  # wall clock (s) of the fault's first reading
    first_ms: int | None = None  # production time of its first faulty reading
    alert_seen: float | None = None
    notified: float | None = None  # when the webhook received its firing notification (wall clock, s)


@dataclass
class Run:
    faults: list[Fault] = field(default_factory=list)
    # (machine, event time = production ms) of every faulty reading -> when a query first saw its breach row (ms)
    breach_produced: set[tuple[str, int]] = field(default_factory=set)
    breach_seen_ms: dict[tuple[str, int], int] = field(default_factory=dict)
    readings: int = 0
    done: threading.Event = field(default_factory=threading.Event)


def spec_fault_values(plant: Plant) -> dict[str, float]:
    """Per machine: a current a quarter of the spec band above the model's upper limit (inside the physical range)."""
    limits = {}
    with (PROJECT_ROOT / "dbt_project" / "seeds" / "spec_limits.csv").open() as f:
        for row in csv.DictReader(f):
            if row["sensor_kind"] == FAULT_SENSOR:
                lower, upper = float(row["lower"]), float(row["upper"])
                limits[row["model"]] = upper + 0.25 * (upper - lower)
    return {m.id: limits[m.type] for m in plant.machines}


def produce(settings: Settings, plant: Plant, run: Run, rate: float, seconds: float) -> None:
    """The plant's readings at `rate`, stamped with their production time; faults on schedule."""
    values = spec_fault_values(plant)
    machines = [m.id for m in plant.machines]
    began = time.time()
    run.faults = [
        Fault(machines[i % len(machines)], values[machines[i % len(machines)]],
              began + WARM_UP_SECONDS + i * FAULT_EVERY_SECONDS)
        for i in range(int((seconds - WARM_UP_SECONDS - FAULT_SECONDS) // FAULT_EVERY_SECONDS) + 1)
    ]  # fmt: skip
    by_machine = {f.machine_id: f for f in run.faults}  # a machine's last fault (each machine has at most one here)
    with SdkLogger(settings) as logger:
        for machine_id, _, readings in Simulation(plant, seed=3).messages():
            now = time.time()
            if now - began >= seconds:
                break
            ts = int(now * 1000)
            fault = by_machine.get(machine_id)
            if fault is not None and fault.starts <= now < fault.starts + FAULT_SECONDS:
                fault.first_ms = fault.first_ms or ts
                readings = [{**r, "value": fault.value} if r["sensor_id"] == FAULT_SENSOR else r for r in readings]
                run.breach_produced.add((machine_id, ts))
            logger.log(machine_id, ts, readings)
            run.readings += len(readings)
            if (wait := run.readings / rate - (time.time() - began)) > 0:
                time.sleep(wait)
    run.done.set()


def watch(settings: Settings, run: Run, timeout_after_done: float) -> None:
    """Poll the breach rows and the alerts until every fault's alert is seen (or the timeout after producing)."""
    client = warehouse.client(settings)
    [breaches] = warehouse.render(QUERIES / "latency_breaches.sql", settings)
    [alerts] = warehouse.render(QUERIES / "latency_alerts.sql", settings)
    sensor = {"sensor": FAULT_SENSOR}
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        if run.done.is_set() and deadline is None:
            deadline = time.monotonic() + timeout_after_done
        now_ms = int(time.time() * 1000)
        for machine_id, event_ms in client.query(breaches, parameters=sensor).result_rows:
            run.breach_seen_ms.setdefault((machine_id, event_ms), now_ms)
        try:
            seen = {row[0] for row in client.query(alerts, parameters=sensor).result_rows}
        except Exception:  # the alerts table appears with the transform loop's first build
            seen = set()
        for fault in run.faults:
            if fault.machine_id in seen and fault.alert_seen is None and fault.first_ms is not None:
                fault.alert_seen = now_ms / 1000
        alerted = all(f.alert_seen is not None for f in run.faults if f.first_ms is not None)
        if run.done.is_set() and alerted and run.breach_produced <= run.breach_seen_ms.keys():
            return
        time.sleep(POLL_SECONDS)


def wait_landed(settings: Settings, readings: int, timeout: float) -> None:
    """Until the raw table holds every reading produced (or the timeout: the figures then say how many did)."""
    client = warehouse.client(settings)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.command(f"SELECT count() FROM {settings.clickhouse.raw_readings_table}") >= readings:
            return
        time.sleep(0.5)


def notifications(run: Run, stop: threading.Event, settings: Settings, rules: Path, state: Path) -> None:
    """(d): the evaluator every EVALUATE_EVERY, a private Alertmanager, a webhook receiver noting each machine's
    first firing notification; until `stop`."""
    first: dict[str, float] = {}

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            for alert in payload["alerts"]:
                if alert["status"] == "firing" and alert["labels"].get("alertname") == "Machine anomaly":
                    first.setdefault(alert["labels"]["machine_id"], time.time())
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    own = settings.model_copy(
        update={
            "state_dir": state,
            "alertmanager": settings.alertmanager.model_copy(update={"port": free_port()}),
            "alerting": settings.alerting.model_copy(
                update={"webhook_url": f"http://127.0.0.1:{hook.server_port}/hook"}
            ),
        }
    )
    alertmanager = Alertmanager(own, timings=ALERTMANAGER_TIMINGS)
    alertmanager.prepare()
    alertmanager.start()
    try:
        alertmanager.wait_healthy(30)
        evaluator = Evaluator(settings, rules, alertmanager.address, interval=EVALUATE_EVERY)
        while not stop.is_set():
            began = time.monotonic()
            evaluator.evaluate()
            for fault in run.faults:
                if fault.notified is None and fault.machine_id in first and fault.first_ms is not None:
                    fault.notified = first[fault.machine_id]
            stop.wait(max(0.0, EVALUATE_EVERY - (time.monotonic() - began)))
    finally:
        alertmanager.stop()
        hook.shutdown()


def bench_rules(settings: Settings, out: Path, alert_for: str) -> Path:
    """The provisioned rule file, the machine-anomaly rule's `for` set to alert_for (the others left out)."""
    document = yaml.safe_load(settings.alerting.rules_file.read_text())
    for group in document["groups"]:
        group["rules"] = [{**r, "for": alert_for} for r in group["rules"] if r["uid"] == "pw-machine-anomaly"]
    document["groups"] = [g for g in document["groups"] if g["rules"]]
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    return out


def quantiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return pick(0.5), pick(0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=10_000, help="readings per second")
    parser.add_argument("--seconds", type=float, default=120, help="how long to produce")
    parser.add_argument("--alert-for", default="5s", help="`for` of the machine-anomaly rule in (d) (provisioned: 1m)")
    args = parser.parse_args()
    settings = get_settings().scoped(f"bench.latency.{uuid.uuid4().hex[:8]}")
    plant = load_plant(settings.producer.plant_file)
    admin = AdminClient(settings.kafka.client_config())
    topics = [settings.kafka.readings_topic, settings.kafka.dead_letter_topic]
    for future in admin.create_topics([NewTopic(t, settings.kafka.partitions, 1) for t in topics]).values():
        future.result(30)
    warehouse.migrate(settings)
    transform(settings, test=False)  # seeds, dictionaries and the materialized views, before the first insert
    env = {**os.environ, **environment(settings)}
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ingest = subprocess.Popen(
        [sys.executable, "-m", "plantwatch.streams.ingest"], cwd=PROJECT_ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=(logs / "bench-latency-ingest.log").open("wb"),
    )  # fmt: skip
    transformer = subprocess.Popen(
        [sys.executable, "-m", "plantwatch.cli", "transform", "--every", TRANSFORM_EVERY], cwd=PROJECT_ROOT,
        env=env, stdout=subprocess.DEVNULL, stderr=(logs / "bench-latency-transform.log").open("wb"),
    )  # fmt: skip
    load_before = os.getloadavg()
    run = Run()
    scratch = Path(tempfile.mkdtemp(prefix="plantwatch-latency-"))
    stop_alerts = threading.Event()
    alerting = threading.Thread(
        target=notifications,
        args=(run, stop_alerts, settings, bench_rules(settings, scratch / "rules.yaml", args.alert_for), scratch),
    )
    try:
        alerting.start()
        time.sleep(5)  # the ingest joins its group before the clock starts
        producer = threading.Thread(target=produce, args=(settings, plant, run, args.rate, args.seconds))
        producer.start()
        watch(settings, run, timeout_after_done=30)
        producer.join()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(f.notified is None for f in run.faults if f.first_ms):
            time.sleep(0.5)
        stop_alerts.set()
        alerting.join(60)
        wait_landed(settings, run.readings, timeout=60)
        [raw_delays] = warehouse.render(QUERIES / "latency_raw.sql", settings)
        [(landed, a_p50, a_p99)] = warehouse.client(settings).query(raw_delays).result_rows
    finally:
        stop_alerts.set()
        for process in (transformer, ingest):
            process.terminate()
            process.wait(60)
        load_after = os.getloadavg()
        warehouse.client(settings, database="default").command(
            f"DROP DATABASE IF EXISTS {settings.clickhouse.database}"
        )
        admin.delete_topics(topics)

    seconds = args.seconds
    print(f"produced {run.readings:,} readings in {seconds:.0f} s ({run.readings / seconds:,.0f}/s), "
          f"{landed:,} in the raw table; {len(run.faults)} injected faults")  # fmt: skip
    b = [run.breach_seen_ms[k] - k[1] for k in run.breach_produced if k in run.breach_seen_ms]
    c = [f.alert_seen - f.first_ms / 1000 for f in run.faults if f.alert_seen is not None and f.first_ms]
    b_p50, b_p99 = quantiles(b) if b else (float("nan"), float("nan"))
    c_p50, c_p99 = quantiles(c) if c else (float("nan"), float("nan"))
    print(f"(a) production -> raw row:               p50 {a_p50 / 1000:6.2f} s  p99 {a_p99 / 1000:6.2f} s  "
          f"(goal p99 <= 1 s; {landed:,} readings)")  # fmt: skip
    print(f"(b) production -> spec-breach row (MV):  p50 {b_p50 / 1000:6.2f} s  p99 {b_p99 / 1000:6.2f} s  "
          f"(goal p99 <= 2 s; {len(b)} of {len(run.breach_produced)} breach readings seen, polled every "
          f"{POLL_SECONDS:g} s)")  # fmt: skip
    print(
        f"(c) first faulty reading -> alert row:   p50 {c_p50:6.2f} s  p99 {c_p99:6.2f} s  "
        f"(goal p99 <= 15 s with a {TRANSFORM_EVERY} transform loop; {len(c)} of {len(run.faults)} faults)"
    )
    d = [f.notified - f.first_ms / 1000 for f in run.faults if f.notified is not None and f.first_ms]
    d_p50, d_p99 = quantiles(d) if d else (float("nan"), float("nan"))
    print(
        f"(d) first faulty reading -> notification: p50 {d_p50:6.2f} s  p99 {d_p99:6.2f} s  (goal p99 <= 20 s; "
        f"evaluated every {EVALUATE_EVERY:g} s, `for` {args.alert_for}, Alertmanager group_wait "
        f"{ALERTMANAGER_TIMINGS['group_wait']}; {len(d)} of {len(run.faults)} faults)"
    )
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after, on {os.cpu_count()} cores "
          f"(other engineers' tests share them)")  # fmt: skip


if __name__ == "__main__":
    with running_stack(get_settings()):  # started here when not up, and stopped again after
        main()
