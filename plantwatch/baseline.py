"""Commissioning baselines: `plantwatch baseline fit --machine M --from T1 --to T2`.

An engineer names a period in which a machine ran well; the fit (dbt macro ``fit_baseline`` in
dbt_project/macros/baselines.sql, the same SQL that fits the trailing baselines) takes that machine's complete,
sensor-fault-free detector windows in the period and appends the baseline to the baselines table with when, by
what and on which period it was fitted. The spike, drift and multivariate detectors use a machine's newest
commissioning baseline for every window processed after the fit (`plantwatch transform --full-refresh` rescores
the history with it), and the trailing baseline for machines that have none.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from plantwatch import warehouse
from plantwatch.reading import IDENTIFIER
from plantwatch.settings import Settings, get_settings
from plantwatch.transform import Transformer, TransformError

baseline_app = typer.Typer(help="Commissioning baselines for the detectors.", no_args_is_help=True)
console = Console(stderr=True)


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fit(
    settings: Settings,
    machine_id: str,
    start: datetime,
    end: datetime,
    fitted_by: str = "",
    transformer: Transformer | None = None,
) -> None:
    """Fit and store a commissioning baseline of machine_id on [start, end) (needs `transform` to have run);
    pass a Transformer to fit many machines without parsing the dbt project each time."""
    if not IDENTIFIER.fullmatch(machine_id):
        raise ValueError(f"not a machine id: {machine_id!r}")
    if not start < end:
        raise ValueError("the period must start before it ends")
    args = {
        "machine_id": machine_id,
        "date_from": start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "date_to": end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "fitted_by": fitted_by or "plantwatch baseline fit",
    }
    (transformer or Transformer(settings)).operation("fit_baseline", args)


def fits(settings: Settings, machine_id: str | None = None) -> list[dict[str, object]]:
    """Every stored fit (newest first), optionally of one machine."""
    ch = settings.clickhouse
    where = "where machine_id = {machine:String}" if machine_id else ""
    result = warehouse.client(settings).query(
        f"select machine_id, fitted_at, fitted_from, fitted_to, fitted_by, windows, length(sensor_ids) as sensors "
        f"from {ch.database}.{ch.baselines_table} {where} order by fitted_at desc",
        parameters={"machine": machine_id} if machine_id else None,
    )
    return list(result.named_results())


@baseline_app.command("fit")
def fit_command(
    machine: Annotated[str, typer.Option("--machine", "-m", help="Machine id, e.g. L1-pump01.")],
    start: Annotated[str, typer.Option("--from", help="Start of the healthy period (ISO 8601, UTC if no zone).")],
    end: Annotated[str, typer.Option("--to", help="End of the healthy period (exclusive).")],
) -> None:
    """Fit a machine's commissioning baseline on a period it ran well (used from the next transform on)."""
    try:
        fit(get_settings(), machine, _utc(start), _utc(end))
    except (ValueError, TransformError) as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    _print_fits(fits(get_settings(), machine)[:1])


@baseline_app.command("list")
def list_command(machine: Annotated[str | None, typer.Option("--machine", "-m")] = None) -> None:
    """Show the stored commissioning baselines, newest first."""
    _print_fits(fits(get_settings(), machine))


def _print_fits(rows: list[dict[str, object]]) -> None:
    table = Table("machine", "fitted at", "from", "to", "by", "windows", "sensors")
    for row in rows:
        table.add_row(*(str(row[k]) for k in ("machine_id", "fitted_at", "fitted_from", "fitted_to", "fitted_by",
                                              "windows", "sensors")))  # fmt: skip
    Console().print(table)
