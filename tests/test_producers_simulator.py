"""The simulator: deterministic per seed, and every fault of the default scenario visible in the readings that
reach Kafka and recorded as ground truth in the labels file and in ClickHouse."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from plantwatch import warehouse
from plantwatch.metrics import free_port
from plantwatch.producers.faults import NO_FAULTS, FaultKind, load_scenario
from plantwatch.producers.labels import read_labels_file
from plantwatch.producers.plant import Plant, load_plant
from plantwatch.producers.simulator import run_simulation, simulate
from plantwatch.settings import Settings
from tests.fixtures.kafka_topic import read_topic

START_MS = 1_764_288_000_000
DURATION_S = 300


@pytest.fixture(scope="module")
def plant(settings: Settings) -> Plant:
    return load_plant(settings.producer.plant_file)


def test_same_seed_same_readings(plant: Plant, settings: Settings) -> None:
    scenario = load_scenario(settings.producer.scenario_file)
    first = list(simulate(plant, scenario, seed=7, start_ms=START_MS, duration_s=60))
    again = list(simulate(plant, scenario, seed=7, start_ms=START_MS, duration_s=60))
    other = list(simulate(plant, scenario, seed=8, start_ms=START_MS, duration_s=60))
    assert first == again
    assert len(first) == 60 * len(plant.machines)
    assert [(m, ts) for m, ts, _ in first] == [(m, ts) for m, ts, _ in other]
    assert [r for _, _, r in first] != [r for _, _, r in other]


def test_load_couples_the_sensors_of_a_machine(plant: Plant) -> None:
    """More load means more current, vibration and (lagging) temperature, together."""
    series = defaultdict(list)
    for machine_id, _, readings in simulate(plant, seed=3, start_ms=START_MS, duration_s=1800):
        if machine_id == "L1-pump01":
            for r in readings:
                series[r["sensor_id"]].append(r["value"])
    current = np.array(series["current"])
    assert np.corrcoef(current, series["vib_x"])[0, 1] > 0.8
    assert np.corrcoef(current, series["speed"])[0, 1] > 0.8
    assert np.corrcoef(current[:-240], series["motor_temp"][240:])[0, 1] > 0.5  # temperature follows, late


def test_warehouse_down_keeps_labels_in_the_file_and_readings_flowing(
    isolated: Settings, plant: Plant, tmp_path: Path
) -> None:
    nowhere = isolated.clickhouse.model_copy(update={"http_port": free_port()})
    settings = isolated.model_copy(update={"state_dir": tmp_path, "clickhouse": nowhere})
    scenario = load_scenario(settings.producer.scenario_file)
    result = run_simulation(settings, plant, scenario, seed=1, start_ms=START_MS, duration_s=60, rate=0)
    assert result.delivered and not result.labels_in_clickhouse
    assert read_labels_file(result.labels_file) == result.labels and len(result.labels) == 3  # those begun by 60 s
    assert sum(len(r.readings()) for r in read_topic(settings)) == result.readings > 0


def series_by_sensor(messages: list[tuple[str, int, list[dict]]]) -> dict[tuple[str, str], dict[int, float]]:
    out: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for machine_id, ts, readings in messages:
        for r in readings:
            out[(machine_id, r["sensor_id"])][ts] = r["value"]
    return out


def test_every_fault_leaves_its_mark_and_its_label(isolated: Settings, plant: Plant, tmp_path: Path) -> None:
    settings = isolated.model_copy(update={"state_dir": tmp_path})
    scenario = load_scenario(settings.producer.scenario_file)
    assert {f.kind for f in scenario.faults} == set(FaultKind)
    assert len({f.machine for f in scenario.faults}) == len(scenario.faults)

    result = run_simulation(settings, plant, scenario, seed=11, start_ms=START_MS, duration_s=DURATION_S, rate=0,
                            run_id="faults-1")  # fmt: skip
    assert result.delivered and result.labels_in_clickhouse

    # What reached Kafka, against the same seed without faults.
    sent = [(r.key.decode(), rd) for r in read_topic(settings) for rd in r.readings()]
    seen: dict[tuple[str, str], dict[int, float]] = defaultdict(dict)
    for machine_id, rd in sent:
        seen[(machine_id, rd.sensor_id)][rd.ts_ms] = rd.value
    normal = series_by_sensor(list(simulate(plant, NO_FAULTS, seed=11, start_ms=START_MS, duration_s=DURATION_S)))
    faulted_machines = {f.machine for f in scenario.faults}
    labels = {lb.fault_kind: lb for lb in result.labels}
    assert set(labels) == set(FaultKind)

    def window(kind: FaultKind, sensor: str) -> tuple[np.ndarray, np.ndarray]:
        lb = labels[kind]
        got = seen[(lb.machine_id, sensor)]
        ts = [t for t in normal[(lb.machine_id, sensor)] if lb.start_ms <= t < lb.end_ms]
        return np.array([got.get(t, np.nan) for t in ts]), np.array([normal[(lb.machine_id, sensor)][t] for t in ts])

    # Machines without a fault are untouched.
    for key, values in normal.items():
        if key[0] not in faulted_machines:
            assert seen[key] == values

    spiked, base = window(FaultKind.SPIKE, "vib_x")
    assert (spiked - base).min() > 10  # mm/s, against a normal of a few
    wear, base = window(FaultKind.DRIFT, "vib_x")
    assert (wear - base)[-10:].mean() > 5 and abs((wear - base)[:5]).max() < 1  # creeping up, not a jump
    hot, base = window(FaultKind.DRIFT, "bearing_temp")
    assert abs(hot - base)[: len(hot) // 4].max() < 1e-9 and (hot - base)[-10:].mean() > 10  # temperature follows
    flat, base = window(FaultKind.STUCK, "discharge_pressure")
    assert np.ptp(flat) == 0 and np.ptp(base) > 0
    silent, _ = window(FaultKind.DROPOUT, "flow")
    assert np.isnan(silent).all()
    garbage, _ = window(FaultKind.OUT_OF_RANGE, "hydraulic_pressure")
    spec = plant.machine(labels[FaultKind.OUT_OF_RANGE].machine_id).sensor("hydraulic_pressure")
    assert ((garbage < spec.low) | (garbage > spec.high)).all()
    off, base = window(FaultKind.SHUTDOWN, "current")
    assert off.max() < 5 and base.min() > 20
    broken, base = window(FaultKind.RELATION_BREAK, "current")
    spec = plant.machine(labels[FaultKind.RELATION_BREAK].machine_id).sensor("current")
    assert abs(broken - base).min() > 0.3 * spec.gain  # no longer what the load says ...
    assert spec.idle - 3 < broken.min() and broken.max() < spec.idle + spec.gain + 3  # ... though in its normal range
    vib, base = window(FaultKind.RELATION_BREAK, "vib_x")
    assert (vib == base).all()  # while the other sensors still follow the load
    valve, base = window(FaultKind.SHIFT, "flow")
    assert abs((valve - base).mean() + 30) < 1  # a step of the size the scenario names, for as long as it lasts

    # A dropout leaves a gap in the sequence numbers.
    dropout = labels[FaultKind.DROPOUT]
    seqs = sorted(rd.seq for m, rd in sent if m == dropout.machine_id and rd.sensor_id == "flow")
    gap = round((dropout.end_ms - dropout.start_ms) / plant.sample_period_ms)
    assert len(seqs) == DURATION_S - gap and seqs[-1] == DURATION_S - 1

    # Ground truth: the labels file and ClickHouse agree with the scenario.
    in_file = read_labels_file(result.labels_file)
    assert in_file == result.labels
    for f in scenario.faults:
        lb = labels[f.kind]
        assert (lb.machine_id, lb.start_ms, lb.end_ms) == (
            f.machine,
            START_MS + f.start_s * 1000,
            START_MS + (f.start_s + f.duration_s) * 1000,
        )
    rows = (
        warehouse.client(settings)
        .query(
            "SELECT fault_kind, machine_id, sensor_ids, severity, toUnixTimestamp64Milli(start_time), "
            f"toUnixTimestamp64Milli(end_time), source FROM {settings.clickhouse.fault_labels_table} "
            "WHERE run_id = 'faults-1' ORDER BY fault_kind"
        )
        .result_rows
    )
    assert [tuple(r) for r in rows] == sorted(
        (lb.fault_kind, lb.machine_id, list(lb.sensor_ids), lb.severity, lb.start_ms, lb.end_ms, "simulator")
        for lb in result.labels
    )
