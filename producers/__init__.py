"""Producers of sensor readings: the plant simulator, the historian CSV replay and the SDK logger they share.

The library API for other code (the demo, benchmarks, a user's gateway)::

    from plantwatch.producers import SdkLogger, load_plant, load_scenario, run_simulation, simulate
"""

from plantwatch.producers.faults import NO_FAULTS, FaultKind, FaultLabel, Scenario, load_scenario
from plantwatch.producers.plant import Plant, load_plant
from plantwatch.producers.replay import ReplayReport, replay_csv
from plantwatch.producers.sdk_logger import SdkLogger
from plantwatch.producers.simulator import RunResult, Simulation, run_simulation, simulate

__all__ = [
    "NO_FAULTS",
    "FaultKind",
    "FaultLabel",
    "Plant",
    "ReplayReport",
    "RunResult",
    "Scenario",
    "SdkLogger",
    "Simulation",
    "load_plant",
    "load_scenario",
    "replay_csv",
    "run_simulation",
    "simulate",
]
