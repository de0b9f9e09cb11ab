"""Labelled CSV exports that look like real plants' data, from the simulator, for the detection harness.

Real exports differ from the demo's plant in ways that broke detection before (issue 12): short runs with a short
healthy period, slow healthy drift, quantized sensors, cadences of a minute or five, machines nobody configured,
sustained shifts rather than spikes, and a machine that does not come back to its old operating point after a fault.
Each data set here is written as a historian would export it (one file per run or machine, one row per instant,
one column per sensor, a 0/1 label column) into a folder, for `bench/detection.py --csv FOLDER`:

- ``test-rig``: runs of about 20 minutes of a pump/valve rig at 1 s (producers/plants/test_rig.yaml), the first 400
  rows healthy, then one sustained fault (a step on a few sensors, or a bearing slowly running hot); labels
  ``0.0``/``1.0`` in column ``anomaly`` plus a ``changepoint`` column, semicolon-separated, as the rig's export is;
- ``new-operating-point``: the same rig, where after the fault the rig settles at a new operating point
  (a part of the shift remains, labelled healthy): the case re-baselining is for (the harness scores it as is,
  then with the engineer's re-baselining 200 rows after each fault);
- ``machine-temperature``: one temperature every 5 minutes for 75 days, the first 15% healthy, four labelled
  episodes before and at a failure (producers/plants/machine_temperature.yaml), ``timestamp,value,label``;
- ``compressor-station``: four compressors at one reading a minute for four days, the first day healthy.

Every random choice comes from the seed, so a data set is the same on every machine.

    .venv/bin/python bench/lookalikes.py test-rig /tmp/rig [--runs 34] [--seed 1]
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from plantwatch.producers.faults import Fault, FaultKind, Scenario
from plantwatch.producers.plant import Plant, load_plant
from plantwatch.producers.simulator import Simulation, ticks_for
from plantwatch.settings import PROJECT_ROOT

PLANTS = PROJECT_ROOT / "producers" / "plants"


@dataclass(frozen=True)
class DataSet:
    """How one look-alike is exported, and how the harness scores it (its healthy period)."""

    plant: str
    delimiter: str
    time_column: str
    time_format: str
    label_column: str
    train_rows: int | None = None  # the healthy period: the first rows of each file ...
    train_fraction: float | None = None  # ... or this fraction of them
    changepoints: bool = False
    float_labels: bool = False
    rebaseline_rows: int | None = None  # the engineer re-baselines this many rows after each fault (maintenance)


TEST_RIG = DataSet(
    "test_rig.yaml",
    ";",
    "datetime",
    "%Y-%m-%d %H:%M:%S",
    "anomaly",
    train_rows=400,
    changepoints=True,
    float_labels=True,
)
DATA_SETS: dict[str, DataSet] = {
    "test-rig": TEST_RIG,
    "new-operating-point": replace(TEST_RIG, rebaseline_rows=200),
    "machine-temperature": DataSet(
        "machine_temperature.yaml", ",", "timestamp", "%Y-%m-%d %H:%M:%S", "label", train_fraction=0.15
    ),
    "compressor-station": DataSet(
        "compressor_station.yaml", ",", "time", "%Y-%m-%dT%H:%M:%SZ", "fault", train_fraction=0.25
    ),
}


@dataclass(frozen=True)
class Run:
    """One exported file: a machine of the plant simulated from start_ms for `seconds` with these faults."""

    name: str
    machine_id: str
    seed: int
    start_ms: int
    seconds: float
    faults: list[Fault]


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def rig_faults(rng: np.random.Generator, plant: Plant, start_s: float, duration_s: float, remain: float) -> Fault:
    """One of the rig's sustained faults, sized in multiples of each sensor's noise (some subtle, some plain)."""
    sensors = {s.id: s for s in plant.machines[0].sensors}

    def step(sensor: str, low: float, high: float) -> float:
        spec = sensors[sensor]
        noise = max(spec.noise, spec.quantum / 2)
        return float(rng.choice([-1, 1]) * rng.uniform(low, high) * noise)

    kind = rng.choice(["valve", "imbalance", "leak", "cavitation", "overheat"])
    machine = plant.machines[0].id
    timing = {"machine": machine, "start_s": start_s, "duration_s": duration_s}
    if kind == "valve":  # flow down, pressure up, the pump works against it
        deltas = {
            "VolumeFlowRateRMS": -abs(step("VolumeFlowRateRMS", 2, 8)),
            "Pressure": abs(step("Pressure", 1.5, 4)),
            "Current": step("Current", 0.5, 1.5),
        }
    elif kind == "imbalance":  # the rotor: both accelerometers
        deltas = {
            "Accelerometer1RMS": abs(step("Accelerometer1RMS", 1.5, 6)),
            "Accelerometer2RMS": abs(step("Accelerometer2RMS", 1.0, 4)),
        }
    elif kind == "leak":  # pressure and flow down
        deltas = {
            "Pressure": -abs(step("Pressure", 2, 4)),
            "VolumeFlowRateRMS": -abs(step("VolumeFlowRateRMS", 2, 6)),
        }
    elif kind == "cavitation":  # the impeller: vibration up, the motor's current down
        deltas = {
            "Accelerometer2RMS": abs(step("Accelerometer2RMS", 2, 6)),
            "Current": -abs(step("Current", 1, 3)),
        }
    else:  # a bearing running hot: temperatures climb over the fault
        return Fault(
            kind=FaultKind.DRIFT,
            sensors=["Temperature", "Thermocouple", "Accelerometer1RMS"],
            severity=float(rng.uniform(0.01, 0.03)),
            **timing,
        )
    return Fault(kind=FaultKind.SHIFT, deltas=deltas, remain=remain, **timing)


def test_rig_runs(rng: np.random.Generator, plant: Plant, runs: int, new_operating_point: bool) -> list[Run]:
    out = []
    for i in range(runs):
        rows = int(rng.integers(1100, 1250))
        start_s = float(rng.integers(450, 750))
        duration_s = float(rng.integers(200, max(201, rows - int(start_s) - 60)))
        remain = float(rng.uniform(0.3, 0.6)) if new_operating_point else 0.0
        fault = rig_faults(rng, plant, start_s, duration_s, remain)
        start_ms = _ms("2020-03-01 09:00:00") + i * 86_400_000 + int(rng.integers(0, 7200)) * 1000
        out.append(Run(f"run-{i + 1:02d}", plant.machines[0].id, 100 + i, start_ms, rows, [fault]))
    return out


def machine_temperature_runs(rng: np.random.Generator, plant: Plant, runs: int, _: bool) -> list[Run]:
    day = 86_400.0
    machine = plant.machines[0].id
    faults = [
        Fault(kind=FaultKind.SHIFT, machine=machine, deltas={"value": -14}, start_s=17.3 * day, duration_s=0.4 * day),
        Fault(
            kind=FaultKind.DRIFT,
            machine=machine,
            sensors=["value"],
            start_s=33.6 * day,
            duration_s=1.6 * day,
            severity=0.3,
        ),
        Fault(kind=FaultKind.SHIFT, machine=machine, deltas={"value": 18}, start_s=52.2 * day, duration_s=0.25 * day),
        Fault(kind=FaultKind.SHUTDOWN, machine=machine, start_s=73.4 * day, duration_s=1.6 * day),
    ]
    return [Run("machine_temperature", machine, 7, _ms("2013-12-02 21:15:00"), 75 * day, faults)]


def compressor_station_runs(rng: np.random.Generator, plant: Plant, runs: int, _: bool) -> list[Run]:
    hour = 3600.0
    ids = [m.id for m in plant.machines]
    faults = {
        ids[1]: [
            Fault(
                kind=FaultKind.DRIFT,
                machine=ids[1],
                sensors=["vibration"],
                start_s=50 * hour,
                duration_s=8 * hour,
                severity=0.06,
            )
        ],
        ids[2]: [
            Fault(
                kind=FaultKind.SHIFT,
                machine=ids[2],
                deltas={"outlet_pressure": -0.5, "motor_power": 9},
                start_s=70 * hour,
                duration_s=3 * hour,
            )
        ],
        ids[3]: [
            Fault(
                kind=FaultKind.RELATION_BREAK,
                machine=ids[3],
                sensors=["motor_power"],
                start_s=40 * hour,
                duration_s=2 * hour,
                severity=0.6,
            )
        ],
    }
    start = _ms("2024-05-06 00:00:00")
    return [Run(f"station-{m}", m, 20 + i, start, 96 * hour, faults.get(m, [])) for i, m in enumerate(ids)]


RECIPES: dict[str, Callable[[np.random.Generator, Plant, int, bool], list[Run]]] = {
    "test-rig": lambda rng, plant, runs, _: test_rig_runs(rng, plant, runs, False),
    "new-operating-point": lambda rng, plant, runs, _: test_rig_runs(rng, plant, runs, True),
    "machine-temperature": machine_temperature_runs,
    "compressor-station": compressor_station_runs,
}


def write(name: str, folder: Path, runs: int = 34, seed: int = 1) -> list[Path]:
    """Write the data set's files into folder; returns their paths."""
    spec = DATA_SETS[name]
    plant = load_plant(PLANTS / spec.plant)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for run in RECIPES[name](np.random.default_rng(seed), plant, runs, False):
        machine = plant.machine(run.machine_id)
        lines = [{"id": machine.line, "machines": [{"type": machine.type, "ids": [machine.id]}]}]
        one = Plant.model_validate({**plant.model_dump(exclude={"lines"}), "lines": lines})
        sim = Simulation(one, Scenario(name=run.name, faults=run.faults), run.seed, run.start_ms)
        ticks = ticks_for(one, run.seconds) or 0
        labels = sim.faults.labels(run.name, sim.end_ms(ticks))
        sensors = [s.id for s in machine.sensors]
        header = [spec.time_column, *sensors, spec.label_column] + (["changepoint"] if spec.changepoints else [])
        path = folder / f"{run.name}.csv"
        previous = False
        with path.open("w", newline="") as f:
            out = csv.writer(f, delimiter=spec.delimiter)
            out.writerow(header)
            for _, ts, readings in sim.messages(ticks):
                values = {r["sensor_id"]: r["value"] for r in readings}
                on = any(label.start_ms <= ts < label.end_ms for label in labels)
                mark = (1.0 if on else 0.0) if spec.float_labels else int(on)
                moment = datetime.fromtimestamp(ts / 1000, UTC).strftime(spec.time_format)
                row = [moment, *(values.get(s, "") for s in sensors), mark]
                if spec.changepoints:
                    row.append(1.0 if on != previous else 0.0)
                previous = on
                out.writerow(row)
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", choices=sorted(DATA_SETS))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--runs", type=int, default=34, help="runs (test-rig, new-operating-point)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    paths = write(args.name, args.folder, args.runs, args.seed)
    print(f"wrote {len(paths)} files of {args.name} to {args.folder}")


if __name__ == "__main__":
    main()
