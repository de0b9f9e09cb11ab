"""`plantwatch limits set`: spec limits per model and sensor kind (plantwatch.plant_config)."""

from __future__ import annotations

import math
from typing import Annotated

import typer
from rich.console import Console

from plantwatch.plant_config import ConfigError, SpecLimits, set_limits
from plantwatch.settings import get_settings

app = typer.Typer(help="Spec limits per model and sensor kind (over the spec_limits seed).", no_args_is_help=True)
console = Console(stderr=True)


@app.command("set")
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
