"""Soak: the whole pipeline under a steady load for half an hour, sampled every 10 s.

On the shared local stack, with topics, a consumer group and a database of its own (created, migrated and dropped
at the end), each component runs as its own process, as it would in a plant:

    plantwatch produce (simulator, faults) -> Kafka -> plantwatch ingest -> ClickHouse
    plantwatch transform --every 10s (dbt)     plantwatch check --watch (data quality)

and the stack's Prometheus scrapes the producer, the ingest and the checks (each registers itself).

The plant is the default plant's lines, repeated and sampled fast enough to make --rate readings/s in real time
(20k/s: 32 machines, 220 sensors every 11 ms), so that event time is wall-clock time: the transform's windows, the
freshness checks and the alerts see a live plant, not one running ahead of the clock. After a 30 s warm-up a fault
starts every 20 s, each on another machine, in turn: a spike on its current (beyond the spec limit), garbage out of
its pressure sensor's physical range, a 30 s shutdown (current below the spec limit), a spike on its vibration.

Sampled every 10 s: RSS and CPU of each process, the consumer group's lag (committed offsets against the high
watermarks, polled every second), ClickHouse active parts, readings produced and landed. At the end:

- RSS of each process, mean over the first vs the last 5 minutes of production (a quarter of it for runs shorter
  than 20 minutes: 30 s for --minutes 2) and the growth; the stack's services are shared with whatever else runs on
  the machine, so their figures are context, not a verdict;
- consumer lag: its max, and whether it went back to 0 after every transform pass: every message in the topic when
  a pass ended committed within one transform interval (while the producer runs, the lag itself is never 0 for
  long: the ingest commits every 0.25 s); and 0 once the producer stopped;
- ClickHouse active parts: the max;
- fault -> alert latency p50/p99: from a fault's start (its fault_labels row; event time = production time) to the
  first poll (every second) that finds an alert on its machine in the alerts mart: bench/latency.py's (c), on the
  simulator's own faults;
- readings produced vs landed, and duplicates (rows minus rows FINAL).

Exit 1 if a reading was lost or duplicated, or a process of the pipeline died. Samples go to samples.csv (every
lag poll to lag.csv, every fault to faults.csv), a plot to soak.png and the figures to summary.json, in
<state folder>/soak/<time>-<minutes>min or --out.

    .venv/bin/python bench/soak.py [--minutes 30] [--rate 20000] [--out DIR] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import itertools
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import yaml
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from plantwatch import warehouse
from plantwatch.metrics import free_port
from plantwatch.producers.plant import Plant
from plantwatch.settings import PROJECT_ROOT, Settings, environment, get_settings
from plantwatch.stack import Stack, running_stack

QUERIES = Path(__file__).parent / "sql"
BASE_PLANT = PROJECT_ROOT / "producers" / "plants" / "default.yaml"
SAMPLE_SECONDS = 10.0
POLL_SECONDS = 1.0
TRANSFORM_EVERY = 10.0
WARM_UP_S = 30.0  # before the first fault
FAULT_EVERY_S = 20.0
FAULT_TAIL_S = 30.0  # no fault starts this close to the end of production: its alert has time to show
ALERT_SLACK_S = 10  # an alert starts with its first flagged window, which may open this long before the fault
LANDING_TIMEOUT_S = 120.0  # after production: until every reading landed and the lag is 0
ALERT_TIMEOUT_S = 30.0  # after production: for the alerts of the last faults
# In turn: (fault kind, the sensor kind it hits or None for the whole machine, seconds, severity).
FAULTS: list[tuple[str, str | None, float, float]] = [
    ("spike", "current", 10.0, 1.0),
    ("out_of_range", "pressure", 10.0, 0.5),
    ("shutdown", None, 30.0, 1.0),
    ("spike", "vibration", 10.0, 1.0),
]
SHARED = ("kafka", "clickhouse", "prometheus")  # the stack's, shared with other work
PASS_LINE = re.compile(r"dbt (build|run): (\d+) nodes in ([\d.]+)s")
PRODUCED_LINE = re.compile(r"([\d,]+) readings in ([\d,]+) messages, ([\d.]+)s")
READINGS_METRIC = re.compile(rb"^plantwatch_producer_readings_total ([\d.e+]+)$", re.M)


def soak_plant(rate: int) -> dict[str, Any]:
    """The default plant's lines repeated and sampled every `sample_period_ms`, so that it sends `rate` readings/s
    in real time: the fewest copies for which the period is a whole number of milliseconds (else one copy, the
    period rounded)."""
    base = yaml.safe_load(BASE_PLANT.read_text())
    sensors = Plant.model_validate(base).sensor_count
    copies, period = 1, max(1, round(sensors * 1000 / rate))
    for n in range(1, 65):
        if sensors * n * 1000 % rate == 0:
            copies, period = n, sensors * n * 1000 // rate
            break
    lines = [{**line, "id": f"L{i + 1}"} for i, line in enumerate(base["lines"] * copies)]
    return {**base, "name": f"soak-{rate}", "sample_period_ms": period, "lines": lines}


def soak_scenario(plant: Plant, seconds: float, seed: int) -> dict[str, Any]:
    """A fault in every FAULT_EVERY_S from WARM_UP_S on, FAULTS in turn, each on another machine (a stride through
    the machines, so that a machine's alert has long resolved before its next fault). Each starts at a random point
    of a transform interval within its slot: faults on a grid in step with the transform loop would all wait for a
    pass equally long."""
    machines = plant.machines
    stride = next(s for s in (7, 5, 3, 1) if math.gcd(s, len(machines)) == 1)
    jitter = random.Random(seed)
    faults: list[dict[str, Any]] = []
    slot = WARM_UP_S
    while slot <= seconds - FAULT_TAIL_S:
        i = len(faults)
        kind, sensor_kind, duration, severity = FAULTS[i % len(FAULTS)]
        machine = machines[i * stride % len(machines)]
        fault: dict[str, Any] = {
            "kind": kind,
            "machine": machine.id,
            "start_s": round(slot + jitter.uniform(0, TRANSFORM_EVERY), 1),
            "duration_s": duration,
            "severity": severity,
        }
        if sensor_kind:
            fault["sensors"] = [next(s.id for s in machine.sensors if s.kind == sensor_kind)]
        faults.append(fault)
        slot += FAULT_EVERY_S
    return {"name": "soak", "faults": faults}


def configure_machines(settings: Settings, plant: Plant) -> None:
    """Every machine's model and line, as `plantwatch machine set` records them (in one insert): the repeated
    lines' machines are not in the seeds, and a machine without a model gets no spec check."""
    rows = [[m.id, m.line, m.type] for m in plant.machines]
    warehouse.client(settings).insert(
        settings.clickhouse.machine_config_table, rows, column_names=["machine_id", "line_id", "model"]
    )


@dataclass
class Pass:
    ended: float  # wall clock (s) when the transform printed it
    command: str  # build or run
    seconds: float


class Child:
    """One process of the pipeline, its output in a log file; `on_line` (when given) sees each line as it comes,
    with the wall-clock time it was read."""

    def __init__(
        self, name: str, args: list[str], env: dict[str, str], log: Path,
        on_line: Callable[[float, str], None] | None = None,
    ) -> None:  # fmt: skip
        self.name = name
        self.log = log
        self.started = time.time()
        if on_line is None:
            with log.open("wb") as out:
                self.process = subprocess.Popen(args, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        else:
            self.process = subprocess.Popen(
                args, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
            threading.Thread(target=self._read, args=(on_line,), daemon=True).start()

    def _read(self, on_line: Callable[[float, str], None]) -> None:
        assert self.process.stdout is not None
        with self.log.open("w") as out:
            for line in self.process.stdout:
                now = time.time()
                out.write(f"{datetime.fromtimestamp(now, UTC):%H:%M:%S} {line}")
                out.flush()
                on_line(now, line)

    def usage(self) -> tuple[float, float] | None:
        """(RSS in MiB, CPU seconds) of the process and its children; None once it has exited."""
        try:
            parent = psutil.Process(self.process.pid)
            procs = [parent, *parent.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in procs)
            cpu = sum(sum(p.cpu_times()[:2]) for p in procs)
        except psutil.Error:
            return None
        return rss / 2**20, cpu

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (the ingest then inserts its open batches and commits), a kill if that takes too long."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@dataclass
class LagPoll:
    at: float
    committed: list[int]
    high: list[int]

    @property
    def lag(self) -> int:
        return sum(h - c for c, h in zip(self.committed, self.high, strict=True))


class Lag:
    """The ingest group's lag per partition: high watermark minus committed offset (what the ingest's gauge and
    KEDA report), read with a consumer of the group that never joins it."""

    def __init__(self, settings: Settings) -> None:
        self.consumer = Consumer(
            {**settings.kafka.client_config(), "group.id": settings.ingest.consumer_group, "enable.auto.commit": False}
        )
        topic = settings.kafka.readings_topic
        self.partitions = [TopicPartition(topic, p) for p in range(settings.kafka.partitions)]

    def poll(self) -> LagPoll:
        at = time.time()
        # committed first: a message produced between the two reads counts as lag, never the other way round
        committed = [max(tp.offset, 0) for tp in self.consumer.committed(self.partitions, timeout=10)]
        high = [self.consumer.get_watermark_offsets(tp, timeout=10, cached=False)[1] for tp in self.partitions]
        return LagPoll(at, committed, high)

    def close(self) -> None:
        self.consumer.close()


@dataclass
class Fault:
    machine_id: str
    kind: str
    start_ms: int  # event time of its first reading (fault_labels)
    seen: float | None = None  # wall clock (s) of the first poll that found its alert
    alerts: list[str] = field(default_factory=list)  # category:kind of the alerts found then
    produced_at: float | None = None  # wall clock (s) when the producer sent its first reading

    @property
    def latency(self) -> float | None:
        """From the fault's start (event time) to its alert."""
        return None if self.seen is None else self.seen - self.start_ms / 1000

    @property
    def latency_produced(self) -> float | None:
        """From the production of its first reading to its alert: the same as `latency` while the producer keeps
        pace with the clock, less when a busy machine holds it back."""
        return None if self.seen is None or self.produced_at is None else self.seen - self.produced_at


@dataclass
class Run:
    """Everything observed during one soak."""

    settings: Settings
    plant: Plant
    first_fault_s: float  # the scenario's first fault start, seconds of simulated time
    run_id: str
    out: Path
    children: dict[str, Child] = field(default_factory=dict)
    shared_pids: dict[str, int] = field(default_factory=dict)
    passes: list[Pass] = field(default_factory=list)
    pass_failures: list[float] = field(default_factory=list)
    polls: list[LagPoll] = field(default_factory=list)
    progress: list[tuple[float, int]] = field(default_factory=list)  # (wall clock, readings the producer sent)
    samples: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[tuple[str, str, int], Fault] = field(default_factory=dict)
    started: float = 0.0  # wall clock when the producer was started: t = 0
    ended: float | None = None  # ... when it exited
    produced: int = 0  # readings, from the producer's metrics while it runs, from its last line once done
    producer_line: str = ""
    died: list[str] = field(default_factory=list)
    _client: Client | None = None

    @property
    def rate(self) -> float:
        return self.plant.sensor_count * 1000 / self.plant.sample_period_ms

    @property
    def client(self) -> Client:
        """One ClickHouse client for the monitor's queries (a new one per query would cost a handshake each)."""
        if self._client is None:
            self._client = warehouse.client(self.settings)
        return self._client

    def query(self, name: str, parameters: dict[str, object] | None = None) -> list[tuple]:
        [sql] = warehouse.render(QUERIES / name, self.settings)
        return self.client.query(sql, parameters=parameters or {}).result_rows

    def landed_rows(self) -> int:
        ch = self.settings.clickhouse
        return int(self.client.command(f"SELECT count() FROM {ch.database}.{ch.raw_readings_table}"))

    def on_transform_line(self, at: float, line: str) -> None:
        if match := PASS_LINE.search(line):
            self.passes.append(Pass(at, match[1], float(match[3])))
        elif "transform failed" in line:
            self.pass_failures.append(at)


def producer_readings(port: int) -> int | None:
    """The SDK logger's readings counter, from the producer's /metrics (None when it does not answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            match = READINGS_METRIC.search(response.read())
    except OSError:
        return None
    return int(float(match[1])) if match else None


def watch_faults(run: Run) -> None:
    """Note the first poll that finds each started fault's alert."""
    try:
        rows = run.query("soak_fault_alerts.sql", {"run_id": run.run_id, "slack_s": ALERT_SLACK_S})
    except ClickHouseError:  # the alerts mart not there yet, or a server too busy to answer: the next poll
        return
    now = time.time()
    for machine_id, kind, start_ms, alerts in rows:
        fault = run.faults.setdefault((machine_id, kind, start_ms), Fault(machine_id, kind, start_ms))
        if alerts and fault.seen is None and start_ms / 1000 <= now:
            fault.seen, fault.alerts = now, sorted(alerts)


def take_sample(run: Run, ports: dict[str, int], since: int) -> None:
    """One row of samples.csv (rewritten with every row: a soak cut short keeps what it saw); `since`: the first
    lag poll after the previous sample."""
    now = time.time()
    try:
        parts, parts_raw = run.query("soak_parts.sql")[0]
        landed: int | None = run.landed_rows()
    except ClickHouseError as exc:  # a server too busy to answer: a gap in the samples, not the end of the soak
        print(f"t = {now - run.started:.0f} s: no answer from ClickHouse ({exc})", file=sys.stderr)
        parts = parts_raw = landed = None
    recent = run.polls[since:]
    row: dict[str, Any] = {
        "t_s": round(now - run.started, 1),
        "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
        "produced": run.produced,
        "landed": landed,
        "lag": run.polls[-1].lag if run.polls else None,
        "lag_max": max((p.lag for p in recent), default=None),
        "parts": parts,
        "parts_raw": parts_raw,
        "passes": sum(p.ended >= run.started for p in run.passes),
    }
    for name, child in run.children.items():
        usage = child.usage()
        row[f"rss_{name}_mib"] = round(usage[0], 1) if usage else None
        row[f"cpu_{name}_s"] = round(usage[1], 1) if usage else None
    for name, pid in run.shared_pids.items():
        try:
            row[f"rss_{name}_mib"] = round(psutil.Process(pid).memory_info().rss / 2**20, 1)
        except psutil.Error:
            row[f"rss_{name}_mib"] = None
    run.samples.append(row)
    write_csv(run.out / "samples.csv", run.samples)


def monitor(run: Run, ports: dict[str, int]) -> None:
    """Poll the lag (and the faults' alerts) every second and sample every 10 s, through production and until
    every reading landed, the lag is 0 and the last faults' alerts showed (or the timeouts)."""
    lag = Lag(run.settings)
    next_sample = run.started
    sampled_from = 0
    try:
        while True:
            began = time.time()
            with contextlib.suppress(KafkaException):  # a slow broker: the next poll
                run.polls.append(lag.poll())
            if run.ended is None and (readings := producer_readings(ports["produce"])) is not None:
                run.produced = readings
                run.progress.append((time.time(), readings))
            watch_faults(run)
            if began >= next_sample:
                take_sample(run, ports, sampled_from)
                sampled_from = len(run.polls)
                next_sample += SAMPLE_SECONDS
            producer = run.children["produce"]
            if run.ended is None and not producer.alive():
                run.ended = time.time()
                run.producer_line = next(
                    (ln for ln in reversed(producer.log.read_text().splitlines()) if PRODUCED_LINE.search(ln)), ""
                )
                if match := PRODUCED_LINE.search(run.producer_line):
                    run.produced = int(match[1].replace(",", ""))
                if producer.process.returncode != 0:
                    run.died.append(f"produce (exit {producer.process.returncode})")
            run.died += [
                f"{name} (exit {run.children[name].process.returncode})"
                for name in ("ingest", "transform", "check")
                if not run.children[name].alive()
            ]
            if run.died:
                take_sample(run, ports, sampled_from)
                return
            if run.ended is not None:
                after, settled = time.time() - run.ended, False
                with contextlib.suppress(ClickHouseError):
                    settled = run.landed_rows() >= run.produced and bool(run.polls) and run.polls[-1].lag == 0
                alerted = all(f.seen is not None for f in run.faults.values() if f.start_ms / 1000 < run.ended)
                if (settled or after > LANDING_TIMEOUT_S) and (alerted or after > ALERT_TIMEOUT_S):
                    take_sample(run, ports, sampled_from)
                    return
            time.sleep(max(0.0, POLL_SECONDS - (time.time() - began)))
    finally:
        lag.close()


def quantiles(values: list[float]) -> tuple[float, float]:
    """p50 and p99, picked as bench/latency.py picks them."""
    if not values:
        return math.nan, math.nan
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return pick(0.5), pick(0.99)


def production_times(run: Run, faults: list[Fault]) -> float | None:
    """When the producer sent each fault's first reading (interpolated between its counter's polls, every second),
    and how far at most it ran behind the clock (s): the simulated plant starts at the label's event time less the
    fault's offset, and sends `rate` readings per second of it."""
    if not faults or len(run.progress) < 2:
        return None
    start_ms = min(f.start_ms for f in faults) - round(run.first_fault_s * 1000)
    period, sensors = run.plant.sample_period_ms, run.plant.sensor_count
    for fault in faults:
        before = math.ceil((fault.start_ms - start_ms) / period) * sensors  # readings of the ticks before it
        for (t0, c0), (t1, c1) in itertools.pairwise(run.progress):
            if c0 <= before < c1:
                fault.produced_at = t0 + (before - c0) / (c1 - c0) * (t1 - t0)
                break
    return max(at - start_ms / 1000 - count / run.rate for at, count in run.progress)


def rss_growth(run: Run, window: float) -> dict[str, dict[str, float | None]]:
    """Per process: mean RSS over the first and the last `window` seconds of production, and the growth (%). The
    sample at t = 0 is left out: the producer was starting then, nowhere near its working set."""
    production = (run.ended or time.time()) - run.started
    out: dict[str, dict[str, float | None]] = {}
    for name in [*run.children, *run.shared_pids]:
        column = f"rss_{name}_mib"

        def mean(lo: float, hi: float, column: str = column) -> float | None:
            values = [s[column] for s in run.samples if lo <= s["t_s"] <= hi and s.get(column) is not None]
            return statistics.fmean(values) if values else None

        first, last = mean(SAMPLE_SECONDS / 2, window), mean(production - window, production)
        peak = max((s[column] for s in run.samples if s.get(column) is not None), default=None)
        growth = (last - first) / first * 100 if first and last is not None else None
        out[name] = {"first_mib": first, "last_mib": last, "growth_pct": growth, "max_mib": peak}
    return out


def lag_figures(run: Run) -> dict[str, Any]:
    """Lag max, and whether it went back to 0 after every transform pass that ended during production: every
    message in the topic at the first poll after the pass committed at a poll within one transform interval."""
    until = run.ended or time.time()
    polls = [p for p in run.polls if p.at >= run.started]
    catch_ups: list[float | None] = []
    for done in (p for p in run.passes if run.started <= p.ended <= until):
        after = next((p for p in polls if p.at >= done.ended), None)
        if after is None:
            continue
        caught = next(
            (
                p
                for p in polls
                if p.at >= after.at and all(c >= h for c, h in zip(p.committed, after.high, strict=True))
            ),
            None,
        )
        catch_ups.append(None if caught is None else caught.at - done.ended)
    missed = [c for c in catch_ups if c is None or c > TRANSFORM_EVERY]
    messages = sum(polls[-1].high) if polls else 0  # the topic is the soak's own: its offsets start at 0
    message_rate = messages / max(until - run.started, 1.0)
    peak = max((p.lag for p in polls), default=0)
    return {
        "max_messages": peak,
        "max_seconds": peak / message_rate if message_rate else None,
        "passes": len(catch_ups),
        "passes_not_caught_up": len(missed),
        "slowest_catch_up_s": max((c for c in catch_ups if c is not None), default=None),
        "back_to_zero_after_every_pass": bool(catch_ups) and not missed,
        "final": polls[-1].lag if polls else None,
    }


def prometheus_figures(settings: Settings, ports: dict[str, int], seconds: float) -> dict[str, Any]:
    """What the stack's Prometheus scraped of our processes: successful scrapes per target, and the ingest's lag
    gauge at its highest (librdkafka's statistics, every ingest.lag_report_ms)."""
    span = f"{max(int(seconds), 60)}s"

    def ask(promql: str) -> list[dict[str, Any]]:
        url = f"{settings.prometheus.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)["data"]["result"]
        except (OSError, KeyError, ValueError):
            return []

    out: dict[str, Any] = {}
    for name in ("produce", "ingest", "check"):
        result = ask(f'sum_over_time(up{{instance="127.0.0.1:{ports[name]}"}}[{span}])')
        out[f"{name}_scrapes"] = int(float(result[0]["value"][1])) if result else 0
    lag = ask(
        f'max_over_time(sum(plantwatch_ingest_consumer_lag{{instance="127.0.0.1:{ports["ingest"]}"}})[{span}:5s])'
    )
    out["ingest_lag_max"] = int(float(lag[0]["value"][1])) if lag else None
    return out


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        writer.writerows(rows)


def plot(run: Run, faults: list[Fault], path: Path) -> None:
    """Six panels over the minutes of the soak: RSS of our processes and of the stack's (apart: ClickHouse's is
    ten times theirs), lag (with the transform passes), parts, readings, alert latency."""
    from matplotlib.figure import Figure  # heavy: imported only to draw

    def column(key: str, scale: float = 1.0) -> list[float]:
        return [math.nan if s.get(key) is None else s[key] / scale for s in run.samples]

    minutes = column("t_s", 60)
    fig = Figure(figsize=(11, 16))
    rss, stack, lag, parts, readings, alerts = fig.subplots(6, 1, sharex=True)
    for name in run.children:
        rss.plot(minutes, column(f"rss_{name}_mib"), label=name)
    rss.set_ylabel("RSS (MiB)")
    rss.set_ylim(bottom=0)
    rss.legend(fontsize=7, ncol=4)
    for name in run.shared_pids:
        stack.plot(minutes, column(f"rss_{name}_mib"), "--", label=name)
    stack.set_ylabel("RSS (MiB), the\nstack's (shared)")
    stack.legend(fontsize=7, ncol=3)
    lag.plot(
        [(p.at - run.started) / 60 for p in run.polls], [p.lag for p in run.polls], lw=0.6, label="lag (1 s polls)"
    )
    for done in run.passes:
        lag.axvline((done.ended - run.started) / 60, color="grey", alpha=0.3, lw=0.5)
    lag.set_ylabel("consumer lag\n(messages)")
    lag.set_title("grey: end of each transform pass", fontsize=8)
    parts.plot(minutes, column("parts"), label="all tables")
    parts.plot(minutes, column("parts_raw"), label="raw table")
    parts.set_ylabel("active parts")
    parts.legend(fontsize=7)
    readings.plot(minutes, column("produced", 1e6), label="produced")
    readings.plot(minutes, column("landed", 1e6), "--", label="landed")
    readings.set_ylabel("readings (M)")
    readings.legend(fontsize=7)
    for kind in sorted({f.kind for f in faults}):
        mine = [f for f in faults if f.kind == kind and f.latency is not None]
        alerts.plot([(f.start_ms / 1000 - run.started) / 60 for f in mine], [f.latency for f in mine], "o", ms=3,
                    label=kind)  # fmt: skip
    alerts.set_ylabel("fault -> alert (s)")
    alerts.set_ylim(bottom=0)
    alerts.set_xlabel("minutes since the producer started")
    alerts.legend(fontsize=7)
    fig.suptitle(f"soak: {run.rate:,.0f} readings/s, {run.settings.clickhouse.database}", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))  # room for the title
    fig.savefig(path, dpi=90)


def cleanup(settings: Settings, admin: AdminClient, topics: list[str]) -> None:
    warehouse.client(settings, database="default").command(f"DROP DATABASE IF EXISTS {settings.clickhouse.database}")
    admin.delete_topics(topics)
    with contextlib.suppress(KafkaException):  # never joined (the ingest died first)
        admin.delete_consumer_groups([settings.ingest.consumer_group])[settings.ingest.consumer_group].result(30)


def latency_figures(faults: list[Fault]) -> dict[str, Any]:
    """p50/p99 from each fault's start (event time) to its alert, overall and by kind, and from its production."""
    latencies = [f.latency for f in faults if f.latency is not None]
    p50, p99 = quantiles(latencies)
    produced_p50, produced_p99 = quantiles([f.latency_produced for f in faults if f.latency_produced is not None])
    by_kind = {}
    for kind in sorted({f.kind for f in faults}):
        mine = [f.latency for f in faults if f.kind == kind and f.latency is not None]
        k50, k99 = quantiles(mine)
        by_kind[kind] = {"faults": sum(f.kind == kind for f in faults), "alerted": len(mine), "p50_s": k50,
                         "p99_s": k99}  # fmt: skip
    return {
        "faults": len(faults), "alerted": len(latencies), "p50_s": p50, "p99_s": p99,
        "from_production_p50_s": produced_p50, "from_production_p99_s": produced_p99, "by_kind": by_kind,
    }  # fmt: skip


def dead_letters(settings: Settings) -> int:
    """Messages in the dead-letter topic (the soak's own: its offsets start at 0); -1 if Kafka did not say."""
    try:
        watermarks = Lag(settings)
        topic = settings.kafka.dead_letter_topic
        count = sum(
            watermarks.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(settings.kafka.partitions)
        )
        watermarks.close()
    except KafkaException:
        return -1
    return count


def report(run: Run, args: argparse.Namespace, out: Path, ports: dict[str, int]) -> dict[str, Any]:
    """Print the figures; write samples.csv, lag.csv, faults.csv, soak.png and summary.json."""
    plant = run.plant
    production = (run.ended or time.time()) - run.started
    window = min(300.0, args.minutes * 60 / 4)
    rss = rss_growth(run, window)
    lag = lag_figures(run)
    rows, distinct = run.query("soak_landed.sql")[0]
    lost, duplicated = max(0, run.produced - distinct), rows - distinct
    faults = sorted((f for f in run.faults.values() if f.start_ms / 1000 < (run.ended or time.time())),
                    key=lambda f: f.start_ms)  # fmt: skip
    behind = production_times(run, faults)
    alerts = latency_figures(faults)
    passes = [p.seconds for p in run.passes if p.ended >= run.started and p.command == "run"]
    summary: dict[str, Any] = {
        "minutes": args.minutes,
        "rate": run.rate,
        "machines": len(plant.machines),
        "sensors": plant.sensor_count,
        "sample_period_ms": plant.sample_period_ms,
        "production_seconds": production,
        "rss_window_seconds": window,
        "rss": rss,
        "lag": lag,
        "transform": {
            "passes": len(passes),
            "p50_s": statistics.median(passes) if passes else None,
            "max_s": max(passes, default=None),
            "failed": len(run.pass_failures),
        },
        "parts_max": max((s["parts"] for s in run.samples if s["parts"] is not None), default=None),
        "parts_raw_max": max((s["parts_raw"] for s in run.samples if s["parts_raw"] is not None), default=None),
        "alerts": alerts,
        "producer_behind_clock_max_s": behind,
        "produced": run.produced,
        "landed": distinct,
        "rows": rows,
        "lost": lost,
        "duplicated": duplicated,
        "dead_lettered": dead_letters(run.settings),
        "prometheus": prometheus_figures(run.settings, ports, production),
        "died": run.died,
        "load_average": os.getloadavg()[0],
    }
    write_csv(out / "samples.csv", run.samples)
    write_csv(out / "lag.csv", [{"t_s": round(p.at - run.started, 2), "lag": p.lag} for p in run.polls])
    write_csv(out / "faults.csv", [
        {"machine_id": f.machine_id, "kind": f.kind, "start_t_s": round(f.start_ms / 1000 - run.started, 1),
         "latency_s": None if f.latency is None else round(f.latency, 1),
         "from_production_s": None if f.latency_produced is None else round(f.latency_produced, 1),
         "alerts": " ".join(f.alerts)}
        for f in faults
    ])  # fmt: skip
    plot(run, faults, out / "soak.png")
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))

    print(f"soak: {production / 60:.1f} min of production at {run.rate:,.0f} readings/s ({len(plant.machines)} "
          f"machines, {plant.sensor_count} sensors every {plant.sample_period_ms} ms), {len(faults)} faults; "
          f"{run.producer_line.strip()}")  # fmt: skip
    span = f"{window / 60:g} min" if window >= 60 else f"{window:g} s"
    print(f"RSS, mean of the first vs the last {span} of production (MiB):")
    for name, r in rss.items():
        shared = " (shared)" if name in run.shared_pids else ""
        growth = "n/a" if r["growth_pct"] is None else f"{r['growth_pct']:+.1f}%"
        first = "n/a" if r["first_mib"] is None else f"{r['first_mib']:8.1f}"
        last = "n/a" if r["last_mib"] is None else f"{r['last_mib']:8.1f}"
        print(f"  {name + shared:<22} {first} -> {last}  {growth:>8}  (max {r['max_mib'] or 0:,.1f})")
    seconds = "" if lag["max_seconds"] is None else f" (~{lag['max_seconds']:.1f} s of production)"
    print(f"consumer lag: max {lag['max_messages']:,} messages{seconds}; back to 0 after every transform pass: "
          f"{'yes' if lag['back_to_zero_after_every_pass'] else 'NO'} ({lag['passes'] - lag['passes_not_caught_up']} "
          f"of {lag['passes']} passes, slowest catch-up {lag['slowest_catch_up_s'] or 0:.1f} s); {lag['final']} at "
          f"the end; Prometheus' max {summary['prometheus']['ingest_lag_max']}")  # fmt: skip
    t = summary["transform"]
    print(f"transform passes: {t['passes']}, p50 {t['p50_s'] or 0:.1f} s, max {t['max_s'] or 0:.1f} s (every "
          f"{TRANSFORM_EVERY:g} s), {t['failed']} failed")  # fmt: skip
    print(f"ClickHouse active parts: max {summary['parts_max']} (raw table {summary['parts_raw_max']})")
    a = alerts
    print(f"fault -> alert: p50 {a['p50_s']:.1f} s, p99 {a['p99_s']:.1f} s from the fault's start (fault_labels); "
          f"p50 {a['from_production_p50_s']:.1f} s, p99 {a['from_production_p99_s']:.1f} s from the production of "
          f"its first reading ({a['alerted']} of {a['faults']} faults alerted; goal p99 <= 15 s; the producer ran "
          f"up to {behind or 0:.1f} s behind the clock)")  # fmt: skip
    for kind, k in a["by_kind"].items():
        print(f"  {kind:<14} {k['alerted']:>3} of {k['faults']:>3}  p50 {k['p50_s']:5.1f} s  p99 {k['p99_s']:5.1f} s")
    print(f"readings: produced {run.produced:,}, landed {distinct:,} ({rows:,} rows): lost {lost:,}, duplicated "
          f"{duplicated:,}; dead-lettered messages {summary['dead_lettered']}")  # fmt: skip
    scrapes = ", ".join(f"{n} {summary['prometheus'][f'{n}_scrapes']}" for n in ("produce", "ingest", "check"))
    print(f"Prometheus scrapes that succeeded: {scrapes}")
    if run.died:
        print(f"DIED: {', '.join(run.died)}")
    print(f"load average (1 min) {summary['load_average']:.1f} on {os.cpu_count()} cores (shared with other work)")
    print(f"samples {out / 'samples.csv'}, plot {out / 'soak.png'}, figures {out / 'summary.json'}")
    return summary


def pipeline(run: Run, args: argparse.Namespace, out: Path, ports: dict[str, int], env: dict[str, str]) -> None:
    """Start the processes (the producer once the transform's first build is done), monitor, stop them."""
    cli = [sys.executable, "-m", "plantwatch.cli"]
    logs = out / "logs"
    try:
        # The first pass of the loop is a `dbt build`: seeds, dictionaries and the spec-breach materialized view
        # exist before the first reading lands.
        transform_args = [*cli, "transform", "--every", f"{TRANSFORM_EVERY:g}s"]
        run.children["transform"] = Child("transform", transform_args, env, logs / "transform.log",
                                          run.on_transform_line)  # fmt: skip
        run.children["ingest"] = Child("ingest", [*cli, "ingest"], env, logs / "ingest.log")
        deadline = time.monotonic() + 300
        while not run.passes:
            if not run.children["transform"].alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the transform's first build did not finish: see {logs / 'transform.log'}")
            time.sleep(0.5)
        check_args = [*cli, "check", "--watch", "--metrics-port", str(ports["check"])]
        run.children["check"] = Child("check", check_args, env, logs / "check.log")
        run.started = time.time()
        run.children["produce"] = Child("produce", [
            *cli, "produce", "--plant", str(out / "plant.yaml"), "--faults", str(out / "scenario.yaml"),
            "--seed", str(args.seed), "--rate", f"{run.rate:g}", "--duration", f"{args.minutes * 60:g}",
            "--run-id", run.run_id,
            "--metrics-port", str(ports["produce"]),
        ], env, logs / "produce.log")  # fmt: skip
        monitor(run, ports)
    finally:
        for name in ("produce", "check", "transform", "ingest"):  # the ingest last: it commits what it landed
            if name in run.children:
                run.children[name].stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to produce")
    parser.add_argument("--rate", type=int, default=20_000, help="readings per second (the plant is sized to it)")
    parser.add_argument("--out", type=Path, help="folder for the samples, the plot and the logs")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the topics and the database")
    args = parser.parse_args()
    settings = get_settings().scoped(f"bench.soak.{uuid.uuid4().hex[:8]}")
    seconds = args.minutes * 60
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = (args.out or settings.state_dir / "soak" / f"{stamp}-{args.minutes:g}min").resolve()
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    plant_doc = soak_plant(args.rate)
    plant = Plant.model_validate(plant_doc)
    rate = plant.sensor_count * 1000 / plant.sample_period_ms
    (out / "plant.yaml").write_text(yaml.safe_dump(plant_doc, sort_keys=False))
    scenario = soak_scenario(plant, seconds, args.seed)
    (out / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))
    print(f"soak {settings.clickhouse.database}: {args.minutes:g} min, {len(plant.machines)} machines, "
          f"{plant.sensor_count} sensors every {plant.sample_period_ms} ms = {rate:,.0f} readings/s, "
          f"{len(scenario['faults'])} faults; {out}", flush=True)  # fmt: skip

    admin = AdminClient(settings.kafka.client_config())
    topics = [settings.kafka.readings_topic, settings.kafka.dead_letter_topic]
    for future in admin.create_topics([NewTopic(t, settings.kafka.partitions, 1) for t in topics]).values():
        future.result(30)
    warehouse.migrate(settings)
    configure_machines(settings, plant)
    ports = {name: free_port() for name in ("produce", "ingest", "check")}
    env = {
        **os.environ,
        **environment(settings),
        "PLANTWATCH_PRODUCER__ARCHIVE_DIR": str(out / "archive"),  # the SDK logger's archive on, in the soak's folder
        "PLANTWATCH_PRODUCER__LABELS_DIR": str(out / "labels"),
        "PLANTWATCH_INGEST__METRICS_PORT": str(ports["ingest"]),
        "PYTHONUNBUFFERED": "1",
        "COLUMNS": "200",  # rich wraps at 80 columns without a terminal
    }
    run = Run(settings, plant, min(f["start_s"] for f in scenario["faults"]), f"soak-{uuid.uuid4().hex[:8]}", out)
    run.shared_pids = {st.name: st.pid for st in Stack(settings).status() if st.name in SHARED and st.pid}
    try:
        pipeline(run, args, out, ports, env)
        summary = report(run, args, out, ports)
    finally:
        if not args.keep:
            cleanup(settings, admin, topics)
            shutil.rmtree(out / "archive", ignore_errors=True)
    return 1 if summary["lost"] or summary["duplicated"] or summary["died"] else 0


if __name__ == "__main__":
    with running_stack(get_settings()):  # started here when not up, and stopped again after
        code = main()
    sys.exit(code)
