"""`plantwatch baseline fit` and `plantwatch baseline list`: the commands over plantwatch.baseline."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch.baseline import EPOCH, BaselineError, Fit, first_rows_period, fit, fits, machine_start
from plantwatch.settings import get_settings
from plantwatch.transform import TransformError

app = typer.Typer(help="Commissioning baselines for the detectors.", no_args_is_help=True)
console = Console(stderr=True)


def _utc(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@app.command("fit")
def fit_command(
    machine: Annotated[str, typer.Option("--machine", "-m", help="Machine id, e.g. L1-pump01.")],
    start: Annotated[str | None, typer.Option("--from", help="Start of the healthy period (ISO 8601, UTC).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="End of the healthy period (exclusive).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="From the first reading to this time.")] = None,
    first: Annotated[int | None, typer.Option("--first", help="The machine's first N rows (instants).")] = None,
) -> None:
    """Fit a machine's commissioning baseline on a period it ran well; the next `plantwatch transform` rescores its
    history against it. Name the period with --from/--to, --until, or --first N (a replay's healthy rows; with
    --from, the first N rows from then on: a re-baselining after maintenance)."""
    settings = get_settings()
    named = [name for name, given in (("--to", end), ("--until", until), ("--first", first)) if given]
    if len(named) != 1 or (start and until):
        raise typer.BadParameter("name the healthy period one way: --from and --to, --until, or --first N "
                                 "(with --from: the first N rows from then on)")  # fmt: skip
    try:
        if first is not None:
            after = _utc(start, "--from") if start else EPOCH
            period = first_rows_period(settings, machine, first, after)
        elif until is not None:
            period = machine_start(settings, machine), _utc(until, "--until")
        else:
            if not (start and end):
                raise typer.BadParameter("--from and --to go together")
            period = _utc(start, "--from"), _utc(end, "--to")
        fitted = fit(settings, machine, *period)
    except (BaselineError, TransformError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"fitted {fitted.machine_id} on {fitted.windows} healthy windows, {fitted.sensors} sensors, "
        f"{fitted.fitted_from:%Y-%m-%d %H:%M:%S} to {fitted.fitted_to:%Y-%m-%d %H:%M:%S} UTC"
    )
    if fitted.drifting:
        console.print(f"drifting when healthy (may go on drifting at that rate): {', '.join(fitted.drifting)}")
    console.print(f"the next `plantwatch transform` rescores {fitted.machine_id}'s history against it")


@app.command("list")
def list_command(machine: Annotated[str | None, typer.Option("--machine", "-m")] = None) -> None:
    """Show the stored commissioning baselines, newest first."""
    _print_fits(fits(get_settings(), machine))


def _print_fits(rows: list[Fit]) -> None:
    table = Table("machine", "fitted at", "from", "to", "by", "windows", "sensors", "drifting")
    for row in rows:
        table.add_row(row.machine_id, str(row.fitted_at), str(row.fitted_from), str(row.fitted_to), row.fitted_by,
                      str(row.windows), str(row.sensors), ", ".join(row.drifting))  # fmt: skip
    Console().print(table)
