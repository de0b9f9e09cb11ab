"""`plantwatch transform`: the dbt project built once or kept fresh (plantwatch.transform)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from plantwatch.cli.common import duration
from plantwatch.settings import get_settings
from plantwatch.transform import (
    RunSummary,
    Transformer,
    TransformError,
    transform,
    transform_every,
    transform_shards,
)

app = typer.Typer()
console = Console(stderr=True)


def _report(summary: RunSummary) -> None:
    if summary.command == "skip":
        console.print("nothing ingested since the last pass: skipped")
    else:
        console.print(f"dbt {summary.command}: {summary.nodes} nodes in {summary.seconds:.1f}s")


@app.command("transform")
def transform_command(
    every: Annotated[
        str | None, typer.Option("--every", help="Keep running, one pass per interval (e.g. 10s, 1m).")
    ] = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh", help="Rebuild incremental models.")] = False,
    no_test: Annotated[bool, typer.Option("--no-test", help="dbt seed + run, without the dbt tests.")] = False,
    docs: Annotated[bool, typer.Option("--docs", help="Then `dbt docs generate` (prints where the site is).")] = False,
    shard: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="With transform.per_shard: only this shard (0-based), one process per shard "
            "(PLANTWATCH_TRANSFORM__SHARD); unset: every shard in turn.",
        ),
    ] = None,
) -> None:
    """Run the dbt project (`dbt build`) once, or keep it fresh with --every (a build, then every interval the
    models that hold state: `dbt run --selector refresh`)."""
    settings = get_settings()
    if shard is not None:
        settings = settings.model_copy(update={"transform": settings.transform.model_copy(update={"shard": shard})})
        try:
            transform_shards(settings)
        except TransformError as exc:
            raise typer.BadParameter(str(exc), param_hint="--shard") from exc
    try:
        if every is None:
            _report(transform(settings, full_refresh=full_refresh, test=not no_test))
            if docs:
                console.print(f"docs: {Transformer(settings).docs() / 'index.html'}")
            return
        if full_refresh:
            _report(transform(settings, full_refresh=True, test=not no_test))
        transform_every(settings, duration(every, "--every").total_seconds(), report=_report, on_error=_warn)
    except TransformError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc


def _warn(exc: TransformError) -> None:
    console.print(f"[yellow]transform failed, retrying next interval:[/] {exc}")
