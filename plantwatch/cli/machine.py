"""`plantwatch machine set|list`: a machine's model and line (plantwatch.plant_config)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch.plant_config import ConfigError, machines, set_machine
from plantwatch.settings import get_settings

app = typer.Typer(help="The plant's machines: their model and line (over the machines seed).", no_args_is_help=True)
console = Console(stderr=True)


@app.command("set")
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


@app.command("list")
def machine_list() -> None:
    """Every machine: configured, shipped in the seed, or only seen in the readings."""
    table = Table("machine", "line", "model", "last reading")
    for row in machines(get_settings()):
        table.add_row(str(row["machine_id"]), str(row["line_id"]), str(row["model"]), str(row["last_reading_at"]))
    Console().print(table)
