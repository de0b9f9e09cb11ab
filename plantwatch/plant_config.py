"""The plant as an engineer configures it, without editing the dbt seeds: a machine's line and model, and the spec
limits and physical range of a model's sensor kind.

Rows go to the machine_config and spec_limit_config tables (plantwatch/sql/080_plant_config.sql); the dbt models
int_machines and int_spec_limits lay them over the shipped seeds (newest wins), and the dictionaries the spec-breach
materialized view reads reload within a minute. A machine nobody configured is still scored by the statistical
detectors and shows as model 'unassigned'; a sensor kind without limits gets no spec check.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from plantwatch import warehouse
from plantwatch.reading import IDENTIFIER, UNIT
from plantwatch.settings import Settings


class ConfigError(ValueError):
    """A configuration value that cannot be stored (not an identifier, limits out of order)."""


@dataclass(frozen=True)
class SpecLimits:
    model: str
    sensor_kind: str
    lower: float
    upper: float
    unit: str = ""
    physical_min: float = -math.inf
    physical_max: float = math.inf

    def check(self) -> None:
        for name in ("model", "sensor_kind"):
            if not IDENTIFIER.fullmatch(getattr(self, name)):
                raise ConfigError(f"{name} must be a plain identifier, not {getattr(self, name)!r}")
        if not UNIT.fullmatch(self.unit):
            raise ConfigError(f"unit {self.unit!r} is not a plain unit")
        if not self.physical_min <= self.lower <= self.upper <= self.physical_max:
            raise ConfigError("need physical_min <= lower <= upper <= physical_max")


def set_machine(settings: Settings, machine_id: str, model: str, line_id: str = "") -> None:
    """Record a machine's model (and line): the spec limits of that model apply to its readings from then on."""
    for name, value in (("machine", machine_id), ("model", model)):
        if not IDENTIFIER.fullmatch(value):
            raise ConfigError(f"{name} must be a plain identifier, not {value!r}")
    if line_id and not IDENTIFIER.fullmatch(line_id):
        raise ConfigError(f"line must be a plain identifier, not {line_id!r}")
    warehouse.client(settings).insert(
        settings.clickhouse.machine_config_table, [[machine_id, line_id, model]],
        column_names=["machine_id", "line_id", "model"],
    )  # fmt: skip


def set_limits(settings: Settings, limits: SpecLimits) -> None:
    """Record the spec limits (and physical range) of a model's sensor kind."""
    limits.check()
    columns = ["model", "sensor_kind", "lower", "upper", "unit", "physical_min", "physical_max"]
    warehouse.client(settings).insert(
        settings.clickhouse.spec_limit_config_table, [[getattr(limits, c) for c in columns]], column_names=columns
    )


def machines(settings: Settings) -> list[dict[str, object]]:
    """Every machine, configured, shipped in the seed, or only seen in the readings (model 'unassigned')."""
    sql = warehouse.query_sql("configured_machines")
    return list(
        warehouse.client(settings)
        .query(sql, parameters={"readings": settings.clickhouse.readings_view})
        .named_results()
    )
