"""The plant: lines of machines, each machine of a type that lists its sensors and how they respond to load.

Loaded from YAML (``producers/plants/*.yaml`` ship with the repo: ``default.yaml`` is the demo's plant, the others
look like plants this project met in real exports). A machine type says how its load cycles and, for each sensor,
``value = idle + gain * load`` (load in 0..1, lagged by ``lag_s`` for slow quantities such as temperature) plus
Gaussian noise, plus ``drift_per_hour`` times the hours since the run began, rounded to a multiple of ``quantum``;
``stopped`` is the value while the machine is shut down. ``low``/``high`` are the sensor's physical range, used to
keep faults such as the relation break inside it and garbage outside it. ``sample_period_ms`` is the plant's
cadence: one reading per sensor per period, from 10 Hz to one every few minutes.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from plantwatch.reading import IDENTIFIER, SensorKind


class SensorSpec(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=IDENTIFIER.pattern)
    kind: SensorKind
    unit: str
    idle: float
    gain: float
    stopped: float
    noise: float = Field(ge=0)
    lag_s: float = Field(default=0.0, ge=0)
    low: float
    high: float
    # What real sensors do and a textbook signal does not: a slow healthy drift (units per hour of simulated time,
    # e.g. a rig warming up over a run) and quantization (readings are multiples of this step, e.g. a pressure
    # transmitter with a coarse ADC that sits still for many samples).
    drift_per_hour: float = 0.0
    quantum: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _range(self) -> SensorSpec:
        if not self.low < self.high:
            raise ValueError(f"sensor {self.id}: low must be below high")
        return self


class LoadCycle(BaseModel):
    """Load follows a sine of this period between low and high, plus a slow random walk."""

    period_s: float = Field(gt=0)
    low: float = Field(ge=0, le=1)
    high: float = Field(ge=0, le=1)
    wander: float = Field(default=0.02, ge=0)


class MachineType(BaseModel):
    load: LoadCycle
    sensors: list[SensorSpec] = Field(min_length=1)


class MachineGroup(BaseModel):
    """``count`` machines of one type, named ``<line>-<type><nn>`` unless ``ids`` are given."""

    type: str
    count: int = Field(default=1, ge=1)
    ids: list[str] | None = None


class Line(BaseModel):
    id: str = Field(pattern=IDENTIFIER.pattern)
    machines: list[MachineGroup]


class Machine(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(pattern=IDENTIFIER.pattern)
    line: str
    type: str
    load: LoadCycle
    sensors: tuple[SensorSpec, ...]

    def sensor(self, sensor_id: str) -> SensorSpec:
        for spec in self.sensors:
            if spec.id == sensor_id:
                return spec
        raise KeyError(f"machine {self.id} has no sensor {sensor_id!r}")


class Plant(BaseModel):
    name: str
    sample_period_ms: int = Field(default=1000, gt=0)
    machine_types: dict[str, MachineType]
    lines: list[Line] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_types(self) -> Plant:
        unknown = {g.type for line in self.lines for g in line.machines} - set(self.machine_types)
        if unknown:
            raise ValueError(f"unknown machine type(s) {sorted(unknown)}")
        ids = [m.id for m in self.machines]
        if len(ids) != len(set(ids)):
            raise ValueError("machine ids must be unique")
        return self

    @cached_property
    def machines(self) -> list[Machine]:
        out = []
        for line in self.lines:
            for group in line.machines:
                mtype = self.machine_types[group.type]
                ids = group.ids or [f"{line.id}-{group.type}{n:02d}" for n in range(1, group.count + 1)]
                out += [Machine(id=i, line=line.id, type=group.type, load=mtype.load, sensors=tuple(mtype.sensors))
                        for i in ids]  # fmt: skip
        return out

    def machine(self, machine_id: str) -> Machine:
        for machine in self.machines:
            if machine.id == machine_id:
                return machine
        raise KeyError(f"no machine {machine_id!r} in plant {self.name}")

    @property
    def sensor_count(self) -> int:
        return sum(len(m.sensors) for m in self.machines)


_Model = TypeVar("_Model", bound=BaseModel)


class PlantConfigError(ValueError):
    """A file that is not a plant (or fault scenario) config: one line naming it and what is wrong."""


def load_yaml_model(path: Path, model: type[_Model], what: str) -> _Model:
    """``path`` read as YAML into ``model``; a PlantConfigError naming the file when it is not one."""
    try:
        return model.model_validate(yaml.safe_load(path.read_text()))
    except OSError as exc:
        raise PlantConfigError(f"{what} {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PlantConfigError(f"{what} {path}: not YAML ({' '.join(str(exc).split())[:120]})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or "the document"
        raise PlantConfigError(f"{what} {path}: not a {what} ({where}: {first['msg']})") from exc


def load_plant(path: Path) -> Plant:
    return load_yaml_model(path, Plant, "plant config")
