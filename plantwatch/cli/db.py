"""`plantwatch db migrate` and `plantwatch db users`."""

from __future__ import annotations

import typer
from confluent_kafka import KafkaException
from rich.console import Console

from plantwatch import access, warehouse
from plantwatch.settings import get_settings
from plantwatch.topics import ensure_topics

app = typer.Typer(help="ClickHouse: the raw tables and the component users.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("migrate")
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


@app.command("users")
def db_users() -> None:
    """Print CREATE USER / GRANT statements for a real clickhouse-server (the local stack loads them itself).

    Passwords are taken from PLANTWATCH_CLICKHOUSE__<ROLE>_PASSWORD and appear only as SHA-256 hashes.
    """
    for statement in access.sql_statements(get_settings()):
        print(f"{statement};")
