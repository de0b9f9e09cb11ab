"""The plant simulator: deterministic readings (given a seed) with the scenario's faults, in simulated event time.

:func:`simulate` yields ``(machine_id, ts_ms, readings)`` per machine per sample instant, as fast as it is asked;
:func:`run_simulation` is the whole produce loop (labels to file and ClickHouse, then every message through the
SDK logger at a chosen wall-clock rate), what ``plantwatch produce`` runs and what the demo and benchmarks call.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from plantwatch.producers.faults import NO_FAULTS, FaultInjector, FaultLabel, Scenario
from plantwatch.producers.plant import Plant
from plantwatch.producers.publish import Message, Pace, publish_run, save_labels
from plantwatch.producers.signals import PlantSignals
from plantwatch.settings import Settings

log = logging.getLogger(__name__)

DECIMALS = 3  # values are rounded: shorter JSON, and no sensor is that precise anyway


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Simulation:
    """One run's generators, so the labels are known before the first reading is."""

    def __init__(self, plant: Plant, scenario: Scenario = NO_FAULTS, seed: int = 0, start_ms: int | None = None):
        self.plant = plant
        self.start_ms = now_ms() // 1000 * 1000 if start_ms is None else start_ms
        self.signals = PlantSignals(plant, np.random.default_rng(seed))
        # Faults draw from their own generator: the same seed gives the same underlying signal with or without them.
        self.faults = FaultInjector(plant, scenario, self.start_ms, np.random.default_rng([seed, 1]))
        quanta = np.array([s.quantum for m in plant.machines for s in m.sensors])
        self.quantized = np.flatnonzero(quanta)
        self.quanta = quanta[self.quantized]

    def end_ms(self, ticks: int) -> int:
        return self.start_ms + ticks * self.plant.sample_period_ms

    def messages(self, ticks: int | None = None) -> Iterator[Message]:
        period = self.plant.sample_period_ms
        layout = []
        offset = 0
        for machine in self.plant.machines:
            meta = [(s.id, s.kind.value, s.unit) for s in machine.sensors]
            layout.append((machine.id, offset, offset + len(meta), meta))
            offset += len(meta)
        emit_all = np.ones(offset, dtype=bool)
        for tick in range(ticks) if ticks is not None else itertools.count():
            ts = self.start_ms + tick * period
            active = self.faults.active(ts)
            values = self.signals.step(tick, self.faults.running(active), self.faults.decoupled(active))
            emit = emit_all
            if active:
                emit = emit_all.copy()
                self.faults.apply(ts, active, values, emit)
            if self.quantized.size:
                values[self.quantized] = np.round(values[self.quantized] / self.quanta) * self.quanta
            rounded = np.round(values, DECIMALS).tolist()
            for machine_id, a, b, meta in layout:
                if emit is emit_all or emit[a:b].all():
                    readings = [
                        {"sensor_id": sid, "kind": kind, "value": v, "unit": unit, "seq": tick}
                        for (sid, kind, unit), v in zip(meta, rounded[a:b], strict=True)
                    ]
                else:
                    readings = [
                        {"sensor_id": sid, "kind": kind, "value": v, "unit": unit, "seq": tick}
                        for (sid, kind, unit), v, on in zip(meta, rounded[a:b], emit[a:b], strict=True)
                        if on
                    ]
                    if not readings:
                        continue
                yield machine_id, ts, readings


def ticks_for(plant: Plant, duration_s: float | None = None, count: int | None = None) -> int | None:
    """Sample instants needed for a simulated duration, or for ``count`` readings; None: no end."""
    if duration_s is not None:
        return math.ceil(duration_s * 1000 / plant.sample_period_ms)
    if count is not None:
        return math.ceil(count / plant.sensor_count)
    return None


def simulate(
    plant: Plant,
    scenario: Scenario = NO_FAULTS,
    seed: int = 0,
    start_ms: int | None = None,
    duration_s: float | None = None,
) -> Iterator[Message]:
    """``(machine_id, ts_ms, readings)`` for every machine at every sample instant (endless without a duration)."""
    return Simulation(plant, scenario, seed, start_ms).messages(ticks_for(plant, duration_s))


@dataclass
class RunResult:
    run_id: str
    readings: int
    messages: int
    seconds: float
    delivered: bool
    labels: list[FaultLabel] = field(default_factory=list)
    labels_file: Path | None = None
    labels_in_clickhouse: bool = False


def run_simulation(
    settings: Settings,
    plant: Plant,
    scenario: Scenario = NO_FAULTS,
    *,
    seed: int = 0,
    start_ms: int | None = None,
    duration_s: float | None = None,
    count: int | None = None,
    rate: float | None = None,
    archive: bool = True,
    run_id: str | None = None,
    flush_timeout: float = 60.0,
    stop: threading.Event | None = None,
) -> RunResult:
    """Simulate and publish: labels first, then every reading through the SDK logger.

    ``rate`` is wall-clock readings per second: None for real time (the plant's own sample rate), 0 for as fast as
    possible. Stops after ``duration_s`` of simulated time or ``count`` readings (or never, without either), or
    once ``stop`` is set (a SIGTERM: the logger is then closed between two messages, never inside its bookkeeping).
    """
    sim = Simulation(plant, scenario, seed, start_ms)
    run_id = run_id or f"sim-{seed}-{sim.start_ms}"
    ticks = ticks_for(plant, duration_s, count)
    labels = sim.faults.labels(run_id, None if ticks is None else sim.end_ms(ticks))
    path, in_clickhouse = save_labels(settings, run_id, labels)
    if rate is None:
        rate = plant.sensor_count * 1000 / plant.sample_period_ms
    published = publish_run(
        settings, sim.messages(ticks), archive=archive, pace=_per_instant(rate) if rate else None,
        limit=count if count is not None else math.inf, stop=stop, flush_timeout=flush_timeout,
    )  # fmt: skip
    log.info("run %s: %d readings in %d messages", run_id, published.readings, published.messages)
    return RunResult(run_id, published.readings, published.messages, published.seconds, published.delivered,
                     labels, path, in_clickhouse)  # fmt: skip


def _per_instant(rate: float) -> Pace:
    """Each sample instant's messages are due once the readings before them took their time at ``rate``/s."""
    last_ts: int | None = None

    def pace(ts: int, readings: int) -> float | None:
        nonlocal last_ts
        if ts == last_ts:
            return None
        last_ts = ts
        return readings / rate

    return pace
