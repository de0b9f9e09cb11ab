"""Commissioning baselines: `plantwatch baseline fit --machine M` on a period the machine ran well.

The period is named by times (``--from T1 --to T2``), by its end (``--until T``: from the machine's first reading),
or by rows (``--first N``: its first N readings, the usual healthy commissioning part of a replayed run). The fit
(dbt macro ``fit_baseline`` in dbt_project/macros/baselines.sql, the same SQL that fits the trailing baselines)
takes that machine's complete windows without an impossible value or a dropout in the period and appends the
baseline to the baselines table with when, by what and on which period it was fitted, plus one fit per stretch of
the period left out (what the detectors' thresholds are calibrated on, out of sample).

It takes effect on the next `plantwatch transform`: that run rescores the machine's history by itself (no
--full-refresh needed). A fit applies to the machine's windows from the start of its period on, its first fit to the
history before it too. After maintenance that moves a machine to a new operating point, fit it again on a period
after the maintenance (`--from T --first N`): its alerts would otherwise stay open for good, and its history before
keeps the old baseline. (Machines on trailing baselines adapt by themselves within their reference period.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from plantwatch import warehouse
from plantwatch.reading import IDENTIFIER
from plantwatch.settings import Settings
from plantwatch.transform import Transformer

FITTED_BY = re.compile(r"[\w ./:()+-]{1,120}")


class BaselineError(ValueError):
    """The period cannot give a baseline (no such machine, too few readings, a malformed request)."""


@dataclass(frozen=True)
class Fit:
    machine_id: str
    fitted_at: datetime
    fitted_from: datetime
    fitted_to: datetime
    fitted_by: str
    windows: int
    sensors: int
    drifting: list[str]  # sensors fitted with a healthy drift they may go on with


def _query(settings: Settings, name: str, **parameters: object) -> list[dict[str, object]]:
    sql = warehouse.query_sql(name)
    return list(warehouse.client(settings).query(sql, parameters=parameters).named_results())


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def first_rows_period(
    settings: Settings, machine_id: str, rows: int, after: datetime = EPOCH
) -> tuple[datetime, datetime]:
    """[first reading, reading number `rows`) of a machine: its first `rows` readings (rows: instants), or its
    first `rows` from `after` on (a re-baselining after maintenance)."""
    if rows < 1:
        raise BaselineError("--first takes a positive number of rows")
    [found] = _query(settings, "machine_period", readings=settings.clickhouse.readings_view, machine=machine_id,
                     rows=rows, after=after)  # fmt: skip
    since = "" if after == EPOCH else f" from {after.isoformat()} on"
    if not found["rows_seen"]:
        raise BaselineError(f"machine {machine_id!r} has no readings{since} in {settings.clickhouse.database}")
    if found["row_at"] is None:
        raise BaselineError(f"machine {machine_id!r} has {found['rows_seen']} rows{since}, fewer than --first {rows} "
                            f"and the rows after them that the detectors score")  # fmt: skip
    return _utc(found["first_at"]), _utc(found["row_at"])


def _machine(settings: Settings, machine_id: str) -> dict[str, object]:
    [found] = _query(settings, "machine_period", readings=settings.clickhouse.readings_view, machine=machine_id,
                     rows=0, after=EPOCH)  # fmt: skip
    if not found["rows_seen"]:
        raise BaselineError(f"machine {machine_id!r} has no readings in {settings.clickhouse.database}")
    return found


def machine_start(settings: Settings, machine_id: str) -> datetime:
    """The machine's first reading."""
    return _utc(_machine(settings, machine_id)["first_at"])


def machine_rows(settings: Settings, machine_id: str) -> int:
    """The machine's rows (instants with readings)."""
    return int(_machine(settings, machine_id)["rows_seen"])


def fit(
    settings: Settings,
    machine_id: str,
    start: datetime,
    end: datetime,
    fitted_by: str = "plantwatch baseline fit",
    transformer: Transformer | None = None,
) -> Fit:
    """Fit and store a commissioning baseline of machine_id on [start, end) (its readings must have been through
    `transform`); pass a Transformer to fit many machines without parsing the dbt project each time."""
    if not IDENTIFIER.fullmatch(machine_id):
        raise BaselineError(f"not a machine id: {machine_id!r}")
    if not FITTED_BY.fullmatch(fitted_by):
        raise BaselineError(f"fitted_by must be plain text, not {fitted_by!r}")
    if not start < end:
        raise BaselineError("the period must start before it ends")
    args = {
        "machine_id": machine_id,
        "date_from": start.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "date_to": end.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
        "fitted_by": fitted_by,
    }
    (transformer or Transformer(settings)).operation("fit_baseline", args)
    return fits(settings, machine_id)[0]


def fits(settings: Settings, machine_id: str | None = None) -> list[Fit]:
    """Every stored fit (newest first), optionally of one machine."""
    rows = _query(settings, "baseline_fits", baselines=settings.clickhouse.baselines_table, machine=machine_id or "")
    return [Fit(**{k: _utc(v) if isinstance(v, datetime) else v for k, v in row.items()}) for row in rows]


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
