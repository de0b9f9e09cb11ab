"""The `plantwatch` command line: one entry point for the stack, the pipeline's apps and the demo."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch import access, warehouse
from plantwatch.alerting import alerts
from plantwatch.alertmanager import silence
from plantwatch.baseline_command import baseline_app
from plantwatch.checks import check
from plantwatch.demo import demo
from plantwatch.plant_command import limits_app, machine_app
from plantwatch.settings import environment, get_settings
from plantwatch.stack import Stack, StackError
from plantwatch.transform import transform_command
from producers.cli import archive_app, produce, replay
from streams.cli import ingest

app = typer.Typer(
    help="Real-time monitoring and alerting for industrial machines.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
stack_app = typer.Typer(
    help="The local stack: Kafka, ClickHouse, Prometheus and Alertmanager on loopback.", no_args_is_help=True
)
app.add_typer(stack_app, name="stack")
app.command("demo")(demo)
app.command("check")(check)
app.command("alerts")(alerts)
app.command("silence")(silence)
app.command("produce")(produce)
app.command("replay")(replay)
app.command("ingest")(ingest)
app.add_typer(archive_app, name="archive")
app.command("transform")(transform_command)
app.add_typer(baseline_app, name="baseline")
app.add_typer(machine_app, name="machine")
app.add_typer(limits_app, name="limits")
console = Console(stderr=True)

Services = Annotated[list[str] | None, typer.Argument(help="Services (default: all).", show_default=False)]


def _stack(names: list[str] | None) -> Stack:
    try:
        return Stack(get_settings(), names)
    except StackError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@stack_app.command("up")
def stack_up(services: Services = None, timeout: float = 180.0) -> None:
    """Start the local services (a no-op for those already running) and wait until each answers."""
    stack = _stack(services)
    began = time.monotonic()
    try:
        with console.status("starting the stack") as spinner:
            started = stack.up(timeout=timeout, progress=lambda msg: spinner.update(msg))
    except StackError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    took = time.monotonic() - began
    console.print(f"started {', '.join(started)} in {took:.1f}s" if started else "already up")
    _print_status(stack)


@stack_app.command("down")
def stack_down(services: Services = None) -> None:
    """Stop the processes `stack up` started (by PID); data stays in the state folder."""
    stopped = _stack(services).down()
    console.print(f"stopped {', '.join(stopped)}" if stopped else "nothing was running")


def _print_status(stack: Stack) -> bool:
    table = Table("service", "state", "address", "pid", "memory (MiB)")
    colours = {"running": "green", "starting": "yellow", "dead": "red", "stopped": "dim"}
    statuses = stack.status()
    for st in statuses:
        state = f"[{colours[st.state]}]{st.state}[/]"
        table.add_row(st.name, state, st.address, str(st.pid or "-"), str(st.rss_mb or "-"))
    Console().print(table)
    return all(st.state == "running" for st in statuses)


@stack_app.command("status")
def stack_status(services: Services = None) -> None:
    """Show each service, its address, PID and memory; exit 1 unless all are running."""
    if not _print_status(_stack(services)):
        raise typer.Exit(1)


@stack_app.command("logs")
def stack_logs(service: str, lines: Annotated[int, typer.Option("-n")] = 50) -> None:
    """Print the last lines of a service's log."""
    stack = _stack([service])
    log = stack.service(service)
    console.print(f"[dim]{log.log_file}[/]")
    print(log.log_tail(lines))


db_app = typer.Typer(help="ClickHouse: the raw tables and the component users.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database and the raw tables if missing (idempotent)."""
    for name in warehouse.migrate(get_settings()):
        console.print(f"applied {name}")


@db_app.command("users")
def db_users() -> None:
    """Print CREATE USER / GRANT statements for a real clickhouse-server (the local stack loads them itself).

    Passwords are taken from PLANTWATCH_CLICKHOUSE__<ROLE>_PASSWORD and appear only as SHA-256 hashes.
    """
    for statement in access.sql_statements(get_settings()):
        print(f"{statement};")


@app.command("config")
def show_config() -> None:
    """Print the effective settings, each with the environment variable that sets it."""
    table = Table("environment variable", "value")
    for name, value in environment(get_settings()).items():
        table.add_row(name, "***" if "PASSWORD" in name and value else value)
    Console().print(table)


if __name__ == "__main__":
    app()
