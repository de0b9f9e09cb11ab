"""Producers of sensor readings: the plant simulator, the historian CSV replay and the SDK logger they share.

The library API for other code (the demo, benchmarks, a user's gateway)::

    from producers import SdkLogger, load_plant, load_scenario, run_simulation, simulate
"""

from producers.faults import NO_FAULTS, FaultKind, FaultLabel, Scenario, load_scenario
from producers.plant import Plant, load_plant
from producers.replay import ReplayReport, replay_csv
from producers.sdk_logger import SdkLogger
from producers.simulator import RunResult, Simulation, run_simulation, simulate

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
