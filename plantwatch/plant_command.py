"""`plantwatch machine set|list` and `plantwatch limits set`: the plant's configuration (plantwatch.plant_config)."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch.plant_config import ConfigError, SpecLimits, machines, set_limits, set_machine
from plantwatch.settings import get_settings

machine_app = typer.Typer(help="The plant's machines: their model and line (over the machines seed).",
                          no_args_is_help=True)  # fmt: skip
limits_app = typer.Typer(help="Spec limits per model and sensor kind (over the spec_limits seed).",
                         no_args_is_help=True)  # fmt: skip
console = Console(stderr=True)


@machine_app.command("set")
def machine_set(
    machine: Annotated[str, typer.Argument(help="Machine id, as its readings carry it.")],
    model: Annotated[str, typer.Option(help="Its model: the spec limits of that model apply.")],
    line: Annotated[str, typer.Option(help="Its production line.")] = "",
) -> None:
    """Set a machine's model and line (a machine that reports without being set is 'unassigned')."""
    try:
        set_machine(get_settings(), machine, model, line)
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"{machine}: model {model}{f', line {line}' if line else ''} (spec checks within a minute)")


@machine_app.command("list")
def machine_list() -> None:
    """Every machine: configured, shipped in the seed, or only seen in the readings."""
    table = Table("machine", "line", "model", "last reading")
    for row in machines(get_settings()):
        table.add_row(str(row["machine_id"]), str(row["line_id"]), str(row["model"]), str(row["last_reading_at"]))
    Console().print(table)


@limits_app.command("set")
def limits_set(
    model: Annotated[str, typer.Option(help="Machine model, e.g. pump.")],
    kind: Annotated[str, typer.Option(help="Sensor kind, e.g. temperature.")],
    lower: Annotated[float, typer.Option(help="Lowest reading in normal operation.")],
    upper: Annotated[float, typer.Option(help="Highest reading in normal operation.")],
    unit: Annotated[str, typer.Option(help="Unit of the limits.")] = "",
    physical_min: Annotated[
        float, typer.Option(help="Below this a reading is impossible (a sensor fault).")
    ] = -math.inf,
    physical_max: Annotated[float, typer.Option(help="Above this a reading is impossible.")] = math.inf,
) -> None:
    """Set the spec limits (and physical range) of a model's sensor kind."""
    try:
        set_limits(get_settings(), SpecLimits(model, kind, lower, upper, unit, physical_min, physical_max))
    except ConfigError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    console.print(f"{model} {kind}: normal {lower:g}..{upper:g} {unit} (spec checks within a minute)")
