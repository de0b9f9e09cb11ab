"""`plantwatch check`: the data-quality checkpoint, once or with --watch (plantwatch.expectations.check)."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch.expectations import GROUPS
from plantwatch.expectations.check import METRICS_JOB, check_once
from plantwatch.expectations.limits import MissingLimits
from plantwatch.metrics import serve_metrics
from plantwatch.settings import get_settings

if TYPE_CHECKING:
    from plantwatch.expectations.checkpoint import CheckRun

app = typer.Typer()


def summary(run: CheckRun) -> Table:
    """Per suite: passed and failed expectations, and what the failures saw."""
    table = Table(title=f"data quality · {run.database} · run {run.run_id[:8]}", title_justify="left")
    for column in ("suite", "passed", "failed", "failures"):
        table.add_column(column, overflow="fold")
    by_suite: dict[str, list] = {}
    for outcome in run.outcomes:
        by_suite.setdefault(outcome.suite, []).append(outcome)
    for suite, outcomes in by_suite.items():
        failed = [o for o in outcomes if not o.success]
        notes = "\n".join(f"[red]{o.expectation}[/]: {o.observed}" for o in failed)
        colour = "red" if failed else "green"
        table.add_row(f"[{colour}]{suite}[/]", str(len(outcomes) - len(failed)), str(len(failed)), notes)
    return table


def print_run(run: CheckRun, console: Console) -> None:
    console.print(summary(run))
    verdict = "[green]PASSED[/]" if run.success else f"[red]FAILED[/] ({len(run.failures)} expectations)"
    console.print(f"{len(run.outcomes)} expectations, {verdict}; results in dq_results (run_id {run.run_id})")


Suites = Annotated[
    list[str] | None, typer.Option("--suite", "-s", help=f"Suite groups to run: {', '.join(GROUPS)} (default: all).")
]


@app.command("check")
def check(
    suite: Suites = None,
    watch: Annotated[
        bool,
        typer.Option(
            help="Repeat every quality.check_interval_seconds, serving /metrics for Prometheus (Ctrl-C stops)."
        ),
    ] = False,
    metrics_port: Annotated[int | None, typer.Option(help="Port for /metrics with --watch (default: free).")] = None,
) -> None:
    """Run the data-quality checkpoint; exit 1 when an expectation fails."""
    settings = get_settings()
    groups = tuple(suite or GROUPS)
    unknown = set(groups) - set(GROUPS)
    console = Console()
    if unknown:
        console.print(f"[red]error:[/] unknown suite group(s) {', '.join(sorted(unknown))}; choose from {GROUPS}")
        raise typer.Exit(2)
    # Ctrl-C or Kubernetes' SIGTERM ends the watch after the run in progress: raised inside a checkpoint, the
    # interrupt could be swallowed by the libraries underneath and the loop go on.
    stop = threading.Event()
    if watch:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        port = serve_metrics(settings, METRICS_JOB, metrics_port)
        console.print(f"serving data-quality metrics on http://127.0.0.1:{port}/metrics")
    while True:
        try:
            run = check_once(settings, groups)
        except MissingLimits as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        print_run(run, console)
        if not watch:
            raise typer.Exit(0 if run.success else 1)
        if stop.wait(settings.quality.check_interval_seconds):
            raise typer.Exit(0)
