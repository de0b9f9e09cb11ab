"""`plantwatch ingest`: the stream app (plantwatch.streams.ingest)."""

from __future__ import annotations

import typer

from plantwatch.settings import get_settings

app = typer.Typer()


@app.command("ingest")
def ingest() -> None:
    """Land readings from Kafka in ClickHouse (invalid ones to the dead-letter topic) until SIGTERM or Ctrl-C.

    Settings: PLANTWATCH_INGEST__* (consumer group, batch size, flush interval, metrics port, enrich hook).
    """
    from plantwatch.streams.ingest import IngestError, configure_logging, run  # Quix Streams takes a second to import

    configure_logging()
    try:
        run(get_settings())
    except IngestError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
