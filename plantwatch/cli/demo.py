"""`plantwatch demo`: the whole mission on a simulated plant (plantwatch.demo), shown as it goes and summed up."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from plantwatch.alert_replay import Lifecycle, first_sent
from plantwatch.cli.alerts import results_table
from plantwatch.cli.check import print_run
from plantwatch.settings import Settings, get_settings

if TYPE_CHECKING:
    from plantwatch.demo import DemoResult

app = typer.Typer()


class RichProgress:
    """The demo's steps as a spinner line, and the readings landing as a bar."""

    def __init__(self, console: Console) -> None:
        self.bar = Progress(
            SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(), console=console,
        )  # fmt: skip
        self._step: TaskID | None = None
        self._landing: TaskID | None = None

    def step(self, description: str) -> None:
        if self._landing is not None:
            self.bar.remove_task(self._landing)
            self._landing = None
        if self._step is None:
            self._step = self.bar.add_task(description, total=None)
        else:
            self.bar.update(self._step, description=description)

    def finish(self) -> None:
        """The run is over: no step spinning on."""
        for task in (self._step, self._landing):
            if task is not None:
                self.bar.remove_task(task)
        self._step = self._landing = None

    def landed(self, count: int, total: int) -> None:
        if self._landing is None:
            if self._step is not None:
                self.bar.remove_task(self._step)
                self._step = None
            self._landing = self.bar.add_task("readings landing in ClickHouse", total=total)
        self.bar.update(self._landing, completed=count)


def run_demo(
    settings: Settings, console: Console, minutes: float = 6.0, seed: int = 7, history: float = 40.0
) -> DemoResult:
    """The demo run, its progress and its summary on `console`; returns plantwatch.demo's DemoResult."""
    from plantwatch import demo  # the stack, the simulator, dbt and Great Expectations: only when the demo runs

    progress = RichProgress(console)
    with progress.bar:
        result = demo.run_demo(settings, progress, minutes, seed, history)
        progress.finish()
    run = result.run
    console.print(f"[bold]{run.readings:,}[/] readings from {result.machines} machines published in "
                  f"{run.seconds:.1f}s; [bold]{result.landed:,}[/] landed in ClickHouse")  # fmt: skip
    print_run(result.checks, console)
    console.print(results_table(result.results))
    for rule_result in result.results:
        if rule_result.state == "firing" and (why := demo.FIRING_BY_DESIGN.get(rule_result.rule.uid)):
            reason = why.format(minutes=result.minutes)
            console.print(f"[dim]{rule_result.rule.title} fires by design here: {reason}.[/]")
    table = Table("machine", "injected fault", "alerts raised (category:kind)", "detected", title="Faults vs alerts")
    for machine, kind, alerts, hit in result.detected:
        table.add_row(machine, kind, alerts, "[green]yes[/]" if hit else "[red]no[/]")
    console.print(table)
    print_lifecycle(console, result.lifecycle, settings)
    console.print(f"report: {result.report}")
    return result


def print_lifecycle(console: Console, lifecycle: Lifecycle, settings: Settings) -> None:
    table = Table(
        "simulated time", "notification", "alert", "machine", "labels",
        title="Alert lifecycle: notifications received by the demo's webhook (via Alertmanager)",
    )  # fmt: skip
    for n in sorted(first_sent(lifecycle.notifications), key=lambda n: n.at):
        colour = "red" if n.status == "firing" else "green"
        own = {k: v for k, v in n.labels.items() if k in ("kind", "severity", "sensor_id")}
        labels = ", ".join(f"{k}={v}" for k, v in own.items())
        table.add_row(n.at.strftime("%H:%M:%S"), f"[{colour}]{n.status}[/]", n.alertname, n.machine_id, labels)
    console.print(table)
    changes = len(lifecycle.events)
    console.print(
        f"{changes} alert state changes recorded in {settings.clickhouse.alert_events_table} (mart alert_history); "
        f"Alertmanager UI: {settings.alertmanager.url}"
        + (f", screenshot {lifecycle.screenshot}" if lifecycle.screenshot else "")
    )
    if lifecycle.problem:
        console.print(f"[yellow]alert lifecycle: {lifecycle.problem}[/]")


@app.command("demo")
def demo(
    minutes: float = 6.0,
    seed: int = 7,
    history: float = 40.0,
) -> None:
    """Run the whole mission on a simulated plant with injected faults (its own topics and database)."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    console = Console()
    result = run_demo(get_settings(), console, minutes, seed, history)
    missed = [d for d in result.detected if not d[3]]
    if result.landed < result.run.readings:
        console.print("[red]not every reading landed[/]")
        raise SystemExit(1)
    console.print(
        f"[bold]{len(result.detected) - len(missed)}/{len(result.detected)}[/] injected faults raised an alert; "
        f"{len(result.firing)} alert rule(s) firing."
    )
