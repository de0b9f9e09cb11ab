"""`plantwatch produce`, `plantwatch replay FILE` and `plantwatch archive replay` (registered in plantwatch.cli)."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from confluent_kafka import Producer
from plantwatch.producers.archive import iter_range
from plantwatch.producers.faults import NO_FAULTS, load_scenario
from plantwatch.producers.plant import load_plant
from plantwatch.producers.replay import ReplayError, parse_speed, replay_csv
from plantwatch.producers.sdk_logger import archive_root, producer_config
from plantwatch.producers.simulator import run_simulation
from rich.console import Console

from plantwatch.metrics import serve_metrics
from plantwatch.reading import SensorKind
from plantwatch.settings import get_settings

console = Console(stderr=True, soft_wrap=True)


class CliError(ValueError):
    """A command's input that cannot be used: plantwatch.cli prints it as one line, exit 2."""


archive_app = typer.Typer(help="The SDK logger's local archive.", no_args_is_help=True)


def _metrics(enabled: bool, port: int | None, host: str = "127.0.0.1") -> None:
    if enabled:
        port = serve_metrics(get_settings(), "producer", port, host)
        console.print(f"[dim]metrics on http://{host}:{port}/metrics[/]")


def _stop_on_sigterm() -> threading.Event:
    """SIGTERM (Kubernetes stopping the pod) sets the returned event: the simulation stops between two messages and
    the logger writes its last block, delivers the rest and saves its cursor. (Raising SystemExit from the handler
    could interrupt the logger's delivery bookkeeping, leaving it waiting for an acknowledgement it had counted.)"""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop


def _time_ms(text: str, option: str = "--start") -> int:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _positive(value: float | None, option: str, zero: bool = False) -> None:
    """Counts, durations and rates are positive (a rate of 0 meaning: as fast as possible)."""
    if value is not None and (value < 0 or (value == 0 and not zero)):
        raise typer.BadParameter(f"{value} is not {'0 or more' if zero else 'positive'}", param_hint=option)


def produce(
    plant: Annotated[Path | None, typer.Option(help="Plant config (default: the shipped one).")] = None,
    faults: Annotated[Path | None, typer.Option(help="Fault scenario YAML (default: the shipped one).")] = None,
    no_faults: Annotated[bool, typer.Option("--no-faults", help="Normal operation only.")] = False,
    seed: int = 0,
    rate: Annotated[float | None, typer.Option(help="Wall-clock readings/s; 0 = as fast as possible.")] = None,
    duration: Annotated[float | None, typer.Option(help="Simulated seconds to produce.")] = None,
    count: Annotated[int | None, typer.Option(help="Readings to produce.")] = None,
    start: Annotated[str | None, typer.Option(help="Simulated start, ISO 8601 (default: now).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Names the run in the labels.")] = None,
    no_archive: Annotated[bool, typer.Option("--no-archive", help="Kafka only, no local archive.")] = False,
    metrics: Annotated[bool, typer.Option(help="Serve Prometheus metrics.")] = True,
    metrics_port: Annotated[int | None, typer.Option(help="Metrics port (default: a free one).")] = None,
    metrics_host: Annotated[str, typer.Option(help="Metrics address (0.0.0.0 in a container).")] = "127.0.0.1",
) -> None:
    """Simulate the plant (with its faults) and publish every reading; labels go to a file and ClickHouse.

    Without --rate the plant runs in real time; without --duration or --count it runs until stopped."""
    settings = get_settings()
    _positive(rate, "--rate", zero=True)
    _positive(duration, "--duration")
    _positive(count, "--count")
    start_ms = _time_ms(start) if start else None
    the_plant = load_plant(plant or settings.producer.plant_file)
    scenario = NO_FAULTS if no_faults else load_scenario(faults or settings.producer.scenario_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = _stop_on_sigterm()
    _metrics(metrics, metrics_port, metrics_host)
    try:
        result = run_simulation(
            settings, the_plant, scenario, seed=seed, start_ms=start_ms,
            duration_s=duration, count=count, rate=rate, archive=not no_archive, run_id=run_id, stop=stop,
        )  # fmt: skip
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    console.print(
        f"run {result.run_id}: {result.readings} readings in {result.messages} messages, "
        f"{result.seconds:.1f}s ({result.readings / max(result.seconds, 1e-9):,.0f} readings/s); "
        f"{len(result.labels)} fault labels in {result.labels_file}"
    )
    if result.labels and not result.labels_in_clickhouse:
        console.print("[yellow]the fault labels are only in the file:[/] ClickHouse did not take them")
    if not result.delivered:
        console.print("[yellow]not all delivered yet:[/] the archive keeps the rest for the next run")
        raise typer.Exit(1)
    if stop.is_set():
        raise typer.Exit(143)  # stopped by SIGTERM, with everything delivered


def _kinds(pairs: list[str]) -> dict[str, SensorKind]:
    out = {}
    for pair in pairs:
        column, _, kind = pair.rpartition("=")
        if not column:
            raise typer.BadParameter(f"--kind takes COLUMN=KIND, not {pair!r}")
        out[column] = SensorKind(kind)
    return out


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
    _metrics(metrics, metrics_port)
    try:
        report = replay_csv(
            settings, file, machine, delimiter=delimiter, time_column=time_column, time_format=time_format,
            label_column=label_column, label_kind=label_kind, kinds=_kinds(kind or []),
            ignore=tuple(ignore or []),
            rebase_to_ms=_time_ms(datetime.now(UTC).isoformat()) if rebase else None,
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


@archive_app.command("replay")
def archive_replay(
    from_: Annotated[str, typer.Option("--from", help="Start of the event-time range, ISO 8601 (UTC if naive).")],
    to: Annotated[str, typer.Option(help="End of the range (exclusive).")],
    machine: Annotated[list[str] | None, typer.Option(help="Only these machines.")] = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: the readings topic).")] = None,
) -> None:
    """Publish the archived messages of a time range to Kafka again (downstream folds the duplicates)."""
    settings = get_settings()
    producer = Producer(producer_config(settings))
    topic = topic or settings.kafka.readings_topic
    sent = 0
    start_ms, end_ms = _time_ms(from_, "--from"), _time_ms(to, "--to")
    for machine_id, payload in iter_range(archive_root(settings), start_ms, end_ms, set(machine or []) or None):
        while True:
            try:
                producer.produce(topic, payload, machine_id.encode())
                break
            except BufferError:
                producer.poll(0.1)
        sent += 1
    left = producer.flush(60)
    console.print(f"republished {sent - left} messages to {topic}" + (f", {left} not delivered" if left else ""))
    if left:
        raise typer.Exit(1)
