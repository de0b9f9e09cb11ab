"""`plantwatch archive replay`: the SDK logger's local archive published again (plantwatch.producers.archive)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from plantwatch.cli.common import time_ms
from plantwatch.producers.sdk_logger import republish
from plantwatch.settings import get_settings
from plantwatch.topics import readings_topics

app = typer.Typer(help="The SDK logger's local archive.", no_args_is_help=True)
console = Console(stderr=True, soft_wrap=True)


@app.command("replay")
def archive_replay(
    from_: Annotated[str, typer.Option("--from", help="Start of the event-time range, ISO 8601 (UTC if naive).")],
    to: Annotated[str, typer.Option(help="End of the range (exclusive).")],
    machine: Annotated[list[str] | None, typer.Option(help="Only these machines.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: each machine's readings topic).")] = None,
) -> None:
    """Publish the archived messages of a time range to Kafka again (downstream folds the duplicates)."""
    settings = get_settings()
    start_ms, end_ms = time_ms(from_, "--from"), time_ms(to, "--to")
    sent, left = republish(settings, topic, start_ms, end_ms, set(machine or []) or None)
    where = topic or ", ".join(readings_topics(settings))
    console.print(f"republished {sent - left} messages to {where}" + (f", {left} not delivered" if left else ""))
    if left:
        raise typer.Exit(1)
