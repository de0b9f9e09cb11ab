"""`plantwatch ingest`: the stream app (plantwatch.streams.ingest)."""

from __future__ import annotations

from typing import Annotated

import typer

from plantwatch.settings import get_settings

app = typer.Typer()


@app.command("ingest")
def ingest(
    shard: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="With kafka.topic_per_shard: the ClickHouse shard (0-based) whose readings topic this "
            "ingest lands (PLANTWATCH_INGEST__SHARD).",
        ),
    ] = None,
) -> None:
    """Land readings from Kafka in ClickHouse (invalid ones to the dead-letter topic) until SIGTERM or Ctrl-C.

    Settings: PLANTWATCH_INGEST__* (consumer group, batch size, flush interval, metrics port, enrich hook).
    """
    from plantwatch.streams.ingest import IngestError, configure_logging, run  # Quix Streams takes a second to import

    configure_logging()
    settings = get_settings()
    if shard is not None:
        settings = settings.model_copy(update={"ingest": settings.ingest.model_copy(update={"shard": shard})})
    try:
        run(settings)
    except IngestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
