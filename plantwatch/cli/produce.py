"""`plantwatch produce`: the plant simulator (plantwatch.producers.simulator)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from plantwatch.cli.common import positive, serve_producer_metrics, stop_on_sigterm, time_ms
from plantwatch.producers.faults import NO_FAULTS, load_scenario
from plantwatch.producers.plant import load_plant
from plantwatch.producers.simulator import run_simulation
from plantwatch.settings import get_settings

app = typer.Typer()
console = Console(stderr=True, soft_wrap=True)


@app.command("produce")
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
    positive(rate, "--rate", zero=True)
    positive(duration, "--duration")
    positive(count, "--count")
    start_ms = time_ms(start) if start else None
    the_plant = load_plant(plant or settings.producer.plant_file)
    scenario = NO_FAULTS if no_faults else load_scenario(faults or settings.producer.scenario_file)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop = stop_on_sigterm()
    serve_producer_metrics(console, metrics, metrics_port, metrics_host)
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
