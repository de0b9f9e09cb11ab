"""The `plantwatch` command line: one entry point for the stack, the pipeline's apps and the demo."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from confluent_kafka import KafkaException
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from plantwatch import access, warehouse
from plantwatch.alerting import alerts
from plantwatch.alertmanager import silence
from plantwatch.baseline_command import baseline_app
from plantwatch.checks import check
from plantwatch.demo import demo
from plantwatch.plant_command import limits_app, machine_app
from plantwatch.producers.cli import CliError, archive_app, produce, replay
from plantwatch.producers.plant import PlantConfigError
from plantwatch.producers.replay import ReplayError
from plantwatch.settings import Settings, SettingsError, describe, environment, get_settings
from plantwatch.stack import Stack, StackError
from plantwatch.stack.cluster import cluster_environment, is_local_cluster, local_cluster
from plantwatch.streams.cli import ingest
from plantwatch.topics import ensure_topics
from plantwatch.transform import transform_command

# What a user can cause and fix (a setting, an option, a file): one line on stderr and exit 2, without a traceback
# unless --debug. Anything else is a bug, and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    SettingsError, CliError, ReplayError, PlantConfigError, ValidationError, OSError
)  # fmt: skip


def one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        return describe(exc)
    if isinstance(exc, typer.BadParameter):
        return exc.format_message()
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


class OneLineErrors(TyperGroup):
    """The root command: a user error anywhere below it (a setting, an option's value, a file) is one line naming
    it, exit 2; ``plantwatch --debug ...`` shows the traceback instead."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except (*USER_ERRORS, typer.BadParameter) as exc:
            if ctx.params.get("debug"):
                raise
            typer.echo(f"error: {one_line(exc)}", err=True)
            ctx.exit(2)


app = typer.Typer(
    cls=OneLineErrors,
    help="Real-time monitoring and alerting for industrial machines.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error, not only its line.")] = False,
) -> None:
    """Real-time monitoring and alerting for industrial machines."""


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
# The local cluster (plantwatch.stack.cluster): either option picks it, at its own ports and state folder.
Brokers = Annotated[
    int | None,
    typer.Option("--kafka-brokers", min=1, help="A local Kafka cluster of this many KRaft nodes (ports 19092+).",
                 show_default=False),
]  # fmt: skip
Shards = Annotated[
    int | None,
    typer.Option("--clickhouse-shards", min=1, help="A local ClickHouse cluster of this many shards (18123/19000, "
                 "28123/29000, ...).", show_default=False),
]  # fmt: skip


def _stack_settings(brokers: int | None = None, shards: int | None = None) -> Settings:
    settings = get_settings()
    if brokers is None and shards is None:
        return settings
    return local_cluster(settings, brokers or 1, shards or 1)


def _stack(names: list[str] | None, brokers: int | None = None, shards: int | None = None) -> Stack:
    try:
        return Stack(_stack_settings(brokers, shards), names)
    except StackError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@stack_app.command("up")
def stack_up(
    services: Services = None, timeout: float = 180.0, kafka_brokers: Brokers = None, clickhouse_shards: Shards = None
) -> None:
    """Start the local services (a no-op for those already running) and wait until each answers.

    With --kafka-brokers/--clickhouse-shards: the local cluster instead (Kafka and ClickHouse only; topics created
    replicated, the schema applied to each shard), beside the single-node stack; `stack down` with the same options
    stops it.
    """
    settings = _stack_settings(kafka_brokers, clickhouse_shards)
    cluster = is_local_cluster(settings)
    stack = _stack(services, kafka_brokers, clickhouse_shards)
    began = time.monotonic()
    try:
        with console.status("starting the stack") as spinner:
            started = stack.up(timeout=timeout, progress=lambda msg: spinner.update(msg))
    except StackError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    took = time.monotonic() - began
    console.print(f"started {', '.join(started)} in {took:.1f}s" if started else "already up")
    kafka = any(service.name.startswith("kafka") for service in stack.services)
    if kafka and (created := ensure_topics(settings)):
        console.print(f"created topics {', '.join(created)}")
    if cluster and any(service.name.startswith("clickhouse") for service in stack.services):
        warehouse.migrate(settings)
        console.print(f"schema applied to each of {settings.clickhouse.shards} shard(s)")
    _print_status(stack)
    if cluster:
        console.print("point commands at the cluster with:")
        for name, value in cluster_environment(settings).items():
            print(f"export {name}={value}")


@stack_app.command("down")
def stack_down(services: Services = None, kafka_brokers: Brokers = None, clickhouse_shards: Shards = None) -> None:
    """Stop the processes `stack up` started (by PID); data stays in the state folder."""
    stopped = _stack(services, kafka_brokers, clickhouse_shards).down()
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
def stack_status(services: Services = None, kafka_brokers: Brokers = None, clickhouse_shards: Shards = None) -> None:
    """Show each service, its address, PID and memory; exit 1 unless all are running."""
    if not _print_status(_stack(services, kafka_brokers, clickhouse_shards)):
        raise typer.Exit(1)


@stack_app.command("logs")
def stack_logs(
    service: str,
    lines: Annotated[int, typer.Option("-n", min=0, help="How many lines.")] = 50,
    kafka_brokers: Brokers = None,
    clickhouse_shards: Shards = None,
) -> None:
    """Print the last lines of a service's log (the local cluster's nodes: kafka-1, clickhouse-2, ...)."""
    stack = _stack([service], kafka_brokers, clickhouse_shards)
    log = stack.service(service)
    console.print(f"[dim]{log.log_file}[/]")
    print(log.log_tail(lines))


db_app = typer.Typer(help="ClickHouse: the raw tables and the component users.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@db_app.command("migrate")
def db_migrate() -> None:
    """Create the database and the raw tables, and the readings and dead-letter topics, if missing (idempotent)."""
    settings = get_settings()
    for name in warehouse.migrate(settings):
        console.print(f"applied {name}")
    try:
        created = ensure_topics(settings)
    except KafkaException as exc:
        console.print(f"[red]error:[/] topics not created: Kafka at {settings.kafka.bootstrap_servers}: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"created topics {', '.join(created)}" if created else "topics present")


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

