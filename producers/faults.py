"""Fault scenarios: what goes wrong, where, when and how badly, and the ground-truth label each fault leaves.

A scenario (YAML, e.g. ``producers/scenarios/default.yaml``) lists faults with a start and duration in seconds of
simulated time from the run's start and a severity in (0, 1]. The kinds and their mark in the signal:

- ``spike``: the sensors jump most of the way to the top of their range.
- ``drift``: bearing wear; vibration ramps up over the duration, temperature follows after a third of it.
- ``stuck``: the sensors repeat the value they had when the fault began (flatline).
- ``dropout``: the sensors send nothing (their sequence numbers keep counting, so the gap shows downstream).
- ``out_of_range``: garbage outside the sensors' physical range.
- ``shutdown``: the machine stops; load, current, speed and vibration fall away, temperatures cool.
- ``relation_break``: the sensors' drive is pushed half the load range away from the machine's load (down when the
  load is high, up when it is low): each stays in its normal range, but no longer agrees with the other sensors.
- ``shift``: a sustained step, each named sensor moved by its own amount (``deltas``, in the sensor's units), as a
  valve closing or a worn impeller does; with ``remain`` > 0 the machine does not come back to its old operating
  point when the fault is over, but keeps that fraction of the step (labelled healthy again: a new normal).

Randomness here comes from its own generator, so a run with faults has the same underlying signal as the same seed
without them: outside the faults' windows (and lags) the readings are identical.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, model_validator

from plantwatch.producers.plant import Machine, Plant, load_yaml_model
from plantwatch.reading import SensorKind


class FaultKind(StrEnum):
    SPIKE = "spike"
    DRIFT = "drift"
    STUCK = "stuck"
    DROPOUT = "dropout"
    OUT_OF_RANGE = "out_of_range"
    SHUTDOWN = "shutdown"
    RELATION_BREAK = "relation_break"
    SHIFT = "shift"


# Sensors a fault hits when the scenario names none: by kind of sensor, or all of the machine's.
DEFAULT_SENSOR_KINDS: dict[FaultKind, tuple[SensorKind, ...] | None] = {
    FaultKind.DRIFT: (SensorKind.VIBRATION, SensorKind.TEMPERATURE),
    FaultKind.RELATION_BREAK: (SensorKind.CURRENT,),
    FaultKind.SHUTDOWN: None,
}


class Fault(BaseModel):
    kind: FaultKind
    machine: str
    sensors: list[str] | None = None
    start_s: float = Field(ge=0)
    duration_s: float = Field(gt=0)
    severity: float = Field(default=1.0, gt=0, le=1)
    deltas: dict[str, float] | None = None  # shift: sensor id -> step in its units
    remain: float = Field(default=0.0, ge=0, le=1)  # shift: fraction of the step kept after the fault

    @model_validator(mode="after")
    def _shift_fields(self) -> Fault:
        if (self.kind is FaultKind.SHIFT) != bool(self.deltas):
            raise ValueError("a shift fault, and only a shift fault, takes `deltas` (sensor id -> step)")
        if self.remain and self.kind is not FaultKind.SHIFT:
            raise ValueError("only a shift fault takes `remain`")
        return self

    def sensor_ids(self, machine: Machine) -> list[str]:
        if self.kind is FaultKind.SHUTDOWN:
            return [s.id for s in machine.sensors]
        named = list(self.deltas) if self.deltas else self.sensors
        if named:
            for sensor_id in named:
                machine.sensor(sensor_id)  # raises for an unknown sensor
            return list(named)
        kinds = DEFAULT_SENSOR_KINDS.get(self.kind)
        if kinds is None:
            raise ValueError(f"a {self.kind} fault on {machine.id} needs `sensors`")
        return [s.id for s in machine.sensors if s.kind in kinds]


class Scenario(BaseModel):
    name: str
    faults: list[Fault] = []

    def shifted(self, seconds: float) -> Scenario:
        """The same faults, each starting `seconds` later (a healthy stretch simulated before them)."""
        faults = [f.model_copy(update={"start_s": f.start_s + seconds}) for f in self.faults]
        return Scenario(name=f"{self.name}+{seconds:g}s", faults=faults)


NO_FAULTS = Scenario(name="none")


def load_scenario(path: Path) -> Scenario:
    return load_yaml_model(path, Scenario, "fault scenario")


@dataclass(frozen=True, slots=True)
class FaultLabel:
    """Ground truth for one injected (or labelled) fault; times in UTC epoch ms, end exclusive."""

    run_id: str
    machine_id: str
    sensor_ids: tuple[str, ...]
    fault_kind: str
    severity: float
    start_ms: int
    end_ms: int
    source: str


@dataclass(slots=True)
class _Active:
    fault: Fault
    machine: int
    sensor_ids: tuple[str, ...]
    sensors: np.ndarray  # flat sensor indices
    temperature: np.ndarray  # per entry of sensors: is it a temperature (drift lags for those)
    start_ms: int
    end_ms: int
    deltas: np.ndarray  # shift: per entry of sensors, the step
    frozen: np.ndarray | None = None


class FaultInjector:
    """Applies a scenario's faults tick by tick to the plant's flat arrays of sensor values."""

    def __init__(self, plant: Plant, scenario: Scenario, start_ms: int, rng: np.random.Generator) -> None:
        self.rng = rng
        machines = plant.machines
        offsets = np.cumsum([0] + [len(m.sensors) for m in machines])
        index = {m.id: i for i, m in enumerate(machines)}
        self.machine_count = len(machines)
        self.sensor_count = int(offsets[-1])
        self.low = np.array([s.low for m in machines for s in m.sensors])
        self.high = np.array([s.high for m in machines for s in m.sensors])
        self.faults: list[_Active] = []
        for fault in scenario.faults:
            if fault.machine not in index:
                raise ValueError(f"fault {fault.kind} names unknown machine {fault.machine!r}")
            m = index[fault.machine]
            machine = machines[m]
            ids = fault.sensor_ids(machine)
            local = [next(i for i, s in enumerate(machine.sensors) if s.id == sid) for sid in ids]
            begin = start_ms + round(fault.start_s * 1000)
            self.faults.append(
                _Active(
                    fault=fault,
                    machine=m,
                    sensor_ids=tuple(ids),
                    sensors=offsets[m] + np.array(local, dtype=np.intp),
                    temperature=np.array([machine.sensors[i].kind == SensorKind.TEMPERATURE for i in local]),
                    start_ms=begin,
                    end_ms=begin + round(fault.duration_s * 1000),
                    deltas=np.array([(fault.deltas or {}).get(sid, 0.0) for sid in ids]),
                )
            )

    def labels(self, run_id: str, until_ms: int | None = None) -> list[FaultLabel]:
        """One label per fault that starts before until_ms (its end clipped to it)."""
        out = []
        for a in self.faults:
            if until_ms is not None and a.start_ms >= until_ms:
                continue
            end = a.end_ms if until_ms is None else min(a.end_ms, until_ms)
            f = a.fault
            out.append(FaultLabel(run_id, f.machine, a.sensor_ids, f.kind, f.severity, a.start_ms, end, "simulator"))
        return out

    def active(self, ts_ms: int) -> list[_Active]:
        """The faults acting at ts_ms: those under way, and shifts over but with a step that remains."""
        return [a for a in self.faults if a.start_ms <= ts_ms and (ts_ms < a.end_ms or a.fault.remain)]

    def running(self, active: list[_Active]) -> np.ndarray | None:
        """Per machine 1 (running) or 0 (shut down); None when no machine is shut down."""
        stopped = [a.machine for a in active if a.fault.kind is FaultKind.SHUTDOWN]
        if not stopped:
            return None
        running = np.ones(self.machine_count)
        running[stopped] = 0.0
        return running

    def decoupled(self, active: list[_Active]) -> np.ndarray | None:
        breaks = [a for a in active if a.fault.kind is FaultKind.RELATION_BREAK]
        if not breaks:
            return None
        weight = np.zeros(self.sensor_count)
        for a in breaks:
            weight[a.sensors] = a.fault.severity
        return weight

    def apply(self, ts_ms: int, active: list[_Active], values: np.ndarray, emit: np.ndarray) -> None:
        """Apply the value faults in place: additive ones, then the physical range, then replacements."""
        for a in active:
            kind, severity, idx = a.fault.kind, a.fault.severity, a.sensors
            if kind is FaultKind.SPIKE:
                values[idx] += 0.8 * severity * (self.high[idx] - values[idx])
            elif kind is FaultKind.SHIFT:
                values[idx] += a.deltas * (1.0 if ts_ms < a.end_ms else a.fault.remain)
            elif kind is FaultKind.DRIFT:
                ramp = (ts_ms - a.start_ms) / (a.end_ms - a.start_ms)
                lagged = np.where(a.temperature, max(0.0, (ramp - 1 / 3) * 1.5), ramp)
                values[idx] += severity * lagged * (0.3 * (self.high[idx] - self.low[idx]))
        np.clip(values, self.low, self.high, out=values)
        for a in active:
            kind, severity, idx = a.fault.kind, a.fault.severity, a.sensors
            if kind is FaultKind.STUCK:
                if a.frozen is None:
                    a.frozen = values[idx].copy()
                values[idx] = a.frozen
            elif kind is FaultKind.OUT_OF_RANGE:
                span = self.high[idx] - self.low[idx]
                above = self.rng.random(idx.size) < 0.5
                size = span * (0.05 + severity * self.rng.random(idx.size))
                values[idx] = np.where(above, self.high[idx] + size, self.low[idx] - size)
            elif kind is FaultKind.DROPOUT:
                emit[idx] = False
