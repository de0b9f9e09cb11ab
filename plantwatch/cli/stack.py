"""`plantwatch stack up|down|status|logs`: the local stack (plantwatch.stack)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch import warehouse
from plantwatch.settings import Settings, get_settings
from plantwatch.stack import Stack, StackError
from plantwatch.stack.cluster import cluster_environment, is_local_cluster, local_cluster
from plantwatch.topics import ensure_topics

app = typer.Typer(
    help="The local stack: Kafka, ClickHouse, Prometheus and Alertmanager on loopback.", no_args_is_help=True
)
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


@app.command("up")
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


@app.command("down")
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


@app.command("status")
def stack_status(services: Services = None, kafka_brokers: Brokers = None, clickhouse_shards: Shards = None) -> None:
    """Show each service, its address, PID and memory; exit 1 unless all are running."""
    if not _print_status(_stack(services, kafka_brokers, clickhouse_shards)):
        raise typer.Exit(1)


@app.command("logs")
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
