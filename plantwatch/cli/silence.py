"""`plantwatch silence`: an Alertmanager silence for a machine in maintenance (plantwatch.alertmanager)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from plantwatch.alertmanager import AlertmanagerError, create_silence, expire_silence
from plantwatch.cli.common import duration as duration_option
from plantwatch.settings import get_settings

app = typer.Typer()


@app.command("silence")
def silence(
    machine: Annotated[str | None, typer.Option("--machine", help="The machine (machine_id) to silence.")] = None,
    duration: Annotated[str, typer.Option("--for", help="How long: 90s, 30m, 2h, 1d.")] = "2h",
    reason: Annotated[str, typer.Option("--reason", help="Why (shown with the silence).")] = "maintenance",
    by: Annotated[str, typer.Option("--by", help="Who asks (default: $USER).")] = "",
    expire: Annotated[str | None, typer.Option("--expire", help="Expire this silence id instead.")] = None,
) -> None:
    """Silence a machine in Alertmanager for its maintenance (no notification; alert history still recorded)."""
    import getpass

    settings = get_settings()
    console = Console()
    url = settings.alertmanager.url
    timeout = settings.alertmanager.timeout_seconds
    try:
        if expire:
            expire_silence(url, expire, timeout)
            console.print(f"expired silence {expire}")
            return
        if not machine:
            raise typer.BadParameter("--machine is required (or --expire ID)")
        matchers = {"machine_id": machine, "database": settings.clickhouse.database}
        silence_id = create_silence(
            url, matchers, duration_option(duration, "--for"), reason, by or getpass.getuser(), timeout
        )
    except AlertmanagerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"silenced {machine} for {duration}: silence {silence_id} (see {url})")
