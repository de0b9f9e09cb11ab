"""`plantwatch replay FILE`: a historian CSV export as one machine's readings (plantwatch.producers.replay)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plantwatch.cli.common import serve_producer_metrics, time_ms
from plantwatch.producers.replay import ReplayError, parse_speed, replay_csv
from plantwatch.reading import SensorKind
from plantwatch.settings import get_settings

app = typer.Typer()
console = Console(stderr=True, soft_wrap=True)


def _kinds(pairs: list[str]) -> dict[str, SensorKind]:
    out = {}
    for pair in pairs:
        column, _, kind = pair.rpartition("=")
        if not column:
            raise typer.BadParameter(f"--kind takes COLUMN=KIND, not {pair!r}")
        out[column] = SensorKind(kind)
    return out


@app.command("replay")
def replay(
    file: Path,
    machine: Annotated[str, typer.Option(help="The machine id the rows belong to.")],
    delimiter: Annotated[str | None, typer.Option(help="Field delimiter (default: detected).")] = None,
    time_column: Annotated[str | None, typer.Option(help="Time column (default: detected).")] = None,
    time_format: Annotated[str | None, typer.Option(help="strptime format (default: ISO 8601 or epoch).")] = None,
    label_column: Annotated[str | None, typer.Option(help="0/1 column to record as ground truth.")] = None,
    label_kind: str = "labelled",
    kind: Annotated[list[str] | None, typer.Option(help="COLUMN=KIND for a column whose kind is not guessed.")] = None,
    ignore: Annotated[list[str] | None, typer.Option(help="A column that is not a sensor.")] = None,
    rebase: Annotated[bool, typer.Option(help="Move the first row to now, keeping the spacing.")] = False,
    speed: Annotated[str, typer.Option(help="1x, 10x, ... or max.")] = "max",
    no_archive: Annotated[bool, typer.Option("--no-archive")] = False,
    metrics: bool = False,
    metrics_port: int | None = None,
) -> None:
    """Replay a historian CSV export as one machine's readings."""
    settings = get_settings()
    serve_producer_metrics(console, metrics, metrics_port)
    try:
        report = replay_csv(
            settings, file, machine, delimiter=delimiter, time_column=time_column, time_format=time_format,
            label_column=label_column, label_kind=label_kind, kinds=_kinds(kind or []),
            ignore=tuple(ignore or []),
            rebase_to_ms=time_ms(datetime.now(UTC).isoformat()) if rebase else None,
            speed=parse_speed(speed), archive=not no_archive,
        )  # fmt: skip
    except (ReplayError, ValueError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    for note in report.notes:
        console.print(f"[dim]note:[/] {note}")
    console.print(
        f"{report.replayed} of {report.rows} rows replayed: {report.readings} readings in {report.messages} "
        f"messages; {len(report.labels)} labelled episodes"
    )
    if report.repeated_times:
        console.print(f"[yellow]warning:[/] {report.repeated_times} rows repeat an earlier row's time for machine "
                      f"{machine}: replayed as further readings (each sensor's seq goes on)")  # fmt: skip
    if report.malformed:
        console.print(f"[yellow]{len(report.malformed)} malformed rows:[/]")
        for line, why in report.malformed:
            console.print(f"  line {line}: {why}")
    if not report.delivered:
        raise typer.Exit(1)
