"""The stream apps' commands, registered on the `plantwatch` CLI."""

from __future__ import annotations

from plantwatch.settings import get_settings


def ingest() -> None:
    """Land readings from Kafka in ClickHouse (invalid ones to the dead-letter topic) until SIGTERM or Ctrl-C.

    Settings: PLANTWATCH_INGEST__* (consumer group, batch size, flush interval, metrics port, enrich hook).
    """
    from streams.ingest import run  # Quix Streams takes about a second to import: only for this command

    run(get_settings())
