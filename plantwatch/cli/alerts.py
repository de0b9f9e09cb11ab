"""`plantwatch alerts`: the Grafana alert rules evaluated against ClickHouse, once or continuously
(plantwatch.alerting)."""

from __future__ import annotations

import signal
import threading
from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch.alerting import (
    Evaluation,
    Evaluator,
    RuleFileError,
    RuleResult,
    evaluate_rules,
    format_value,
    post_webhook,
    run_every,
    webhook_payload,
)
from plantwatch.cli.common import duration
from plantwatch.settings import get_settings

app = typer.Typer()


def results_table(results: list[RuleResult]) -> Table:
    table = Table(title="alert rules (one evaluation; `for` not applied)", title_justify="left")
    for column in ("rule", "state", "for", "labels", "values", "summary"):
        table.add_column(column, overflow="fold")
    colours = {"firing": "red", "normal": "green", "nodata": "yellow", "error": "magenta"}
    for result in results:
        state = f"[{colours[result.state]}]{result.state}[/]"
        if not result.alerts:
            table.add_row(result.rule.title, state, result.rule.pending_for, "", "", result.error)
        for alert in result.alerts:
            own = {k: v for k, v in alert.labels.items() if k not in ("alertname", "grafana_folder")}
            labels = ", ".join(f"{k}={v}" for k, v in own.items())
            values = ", ".join(f"{ref}={format_value(v)}" for ref, v in alert.values.items())
            summary = alert.annotations.get("summary", "")
            table.add_row(result.rule.title, state, result.rule.pending_for, labels, values, summary)
    return table


def print_evaluation(console: Console, evaluation: Evaluation) -> None:
    at = evaluation.at.astimezone(UTC).strftime("%H:%M:%S")
    for event in evaluation.events:
        colour = {"firing": "red", "resolved": "green", "pending": "yellow"}.get(event.to_state, "dim")
        console.print(f"{at} [{colour}]{event.describe()}[/]")
    errors = [f"{r.rule.title}: {r.error}" for r in evaluation.results if r.state == "error"]
    for problem in (*errors, evaluation.push_error, evaluation.save_error):
        if problem:
            console.print(f"{at} [magenta]{problem}[/]")


@app.command("alerts")
def alerts(
    webhook: Annotated[str | None, typer.Option(help="POST firing alerts to this URL (default: settings).")] = None,
    rules: Annotated[Path | None, typer.Option(help="Rule file (default: the Grafana provisioning file).")] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every", help="Keep evaluating (e.g. 15s): `for` applied, state and history kept, Alertmanager notifies."
        ),
    ] = None,
    alertmanager: Annotated[
        str | None, typer.Option("--alertmanager", help="Alertmanager's URL with --every (default: settings).")
    ] = None,
) -> None:
    """Evaluate the Grafana alert rules against ClickHouse and print what fires; exit 1 if a rule errors.

    With --every, evaluate continuously and push firing and resolved alerts to Alertmanager."""
    settings = get_settings()
    console = Console()
    if every is not None:
        try:
            seconds = duration(every, "--every").total_seconds()
            evaluator = Evaluator(settings, rules, alertmanager or settings.alertmanager.url, interval=seconds)
        except (RuleFileError, OSError, KeyError) as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        console.print(
            f"evaluating {len(evaluator.rules)} rules every {every} on {settings.clickhouse.database}, "
            f"alerts to {evaluator.alertmanager_url}"
        )
        run_every(evaluator, seconds, stop, lambda evaluation: print_evaluation(console, evaluation))
        return
    try:
        results = evaluate_rules(settings, rules)
    except (RuleFileError, OSError, KeyError) as exc:
        console.print(f"[red]error:[/] rule file: {exc}")
        raise typer.Exit(2) from exc
    console.print(results_table(results))
    firing = [alert for result in results for alert in result.alerts]
    console.print(f"{len(firing)} alert(s) firing from {sum(r.state == 'firing' for r in results)} rule(s)")
    url = webhook or settings.alerting.webhook_url
    if url and firing:
        status = post_webhook(url, webhook_payload(results), settings.alerting.webhook_timeout_seconds)
        console.print(f"posted {len(firing)} alert(s) to {url} (HTTP {status})")
    if any(r.state == "error" for r in results):
        raise typer.Exit(1)
