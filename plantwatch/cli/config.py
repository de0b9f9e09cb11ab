"""`plantwatch config`: the effective settings."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from plantwatch.settings import environment, get_settings

app = typer.Typer()


@app.command("config")
def show_config() -> None:
    """Print the effective settings, each with the environment variable that sets it."""
    table = Table("environment variable", "value")
    for name, value in environment(get_settings()).items():
        table.add_row(name, "***" if "PASSWORD" in name and value else value)
    Console().print(table)
