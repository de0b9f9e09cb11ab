"""Incremental passes against a full rebuild, on real ClickHouse: the crafted series of test_warehouse_dbt (faults
included) landed in four slices, the first built with `dbt build` and each later one folded in by the periodic pass
(`Transformer.refresh`), must leave every table the pass maintains as `--full-refresh` over the same readings
rebuilds it; and a pass writes the windows it was given, not the history it reads for context.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from plantwatch import warehouse
from plantwatch.reading import COLUMN_NAMES
from plantwatch.settings import Settings
from plantwatch.stack import Stack
from plantwatch.transform import Transformer
from tests.test_warehouse_dbt import MACHINES, SECONDS, START, insert, own_database, readings

SLICES = 4
# What a pass maintains (dbt_project/selectors.yml, `refresh`), by the key of its rows.
TABLES = {
    "int_sensor_windows": "machine_id, sensor_id, window_start",
    "int_sensor_window_checks": "machine_id, sensor_id, window_start",
    "int_trailing_baselines": "machine_id, block_start",
    "int_machine_window_scores": "machine_id, window_start",
    "int_sensor_window_scores": "machine_id, sensor_id, window_start",
    "int_detector_thresholds": "machine_id, baseline_kind, baseline_version",
    "rolling_aggregates": "machine_id, sensor_id, window_seconds, window_start",
    "alerts": "machine_id, sensor_id, category, kind, started_at",
}
COUNTED = ("int_sensor_windows", "int_sensor_window_checks")  # the rows a pass writes to these are counted


@pytest.fixture(scope="module")
def sliced(stack: Stack, settings: Settings) -> Iterator[tuple[Settings, Transformer, dict[str, int]]]:
    """A database of its own with the series landed slice by slice, a pass after each; also the rows the last pass
    wrote to the COUNTED tables (row versions: their merges are stopped after the first build)."""
    with own_database(settings, "test_incr") as mine:
        client = warehouse.client(mine)
        transformer = Transformer(mine)
        written: dict[str, int] = {}
        series = [readings(START, m, np.arange(SECONDS, dtype=float), seed=i) for i, m in enumerate(MACHINES)]
        seq = COLUMN_NAMES.index("seq")  # the reading's offset in seconds here
        step = SECONDS // SLICES
        for k in range(SLICES):
            for cols in series:
                rows = [i for i, offset in enumerate(cols[seq]) if k * step <= offset < (k + 1) * step]
                insert(client, mine, [[col[i] for i in rows] for col in cols])
            if k == 0:
                transformer.build()
                for table in COUNTED:
                    client.command(f"SYSTEM STOP MERGES {table}")
                continue
            before = {table: client.command(f"select count() from {table}") for table in COUNTED}
            assert transformer.refresh().command == "run"
            written = {table: client.command(f"select count() from {table}") - n for table, n in before.items()}
        yield mine, transformer, written


def contents(settings: Settings, table: str, key: str) -> list[tuple]:
    """The table's rows in their latest version, without computed_at (when the row was computed), in key order."""
    client = warehouse.client(settings)
    columns = [c for (c,) in client.query(f"select name from system.columns where database = currentDatabase() "
                                          f"and table = '{table}' and name != 'computed_at'").result_rows]  # fmt: skip
    final = "final" if table != "alerts" else ""
    return client.query(f"select {', '.join(columns)} from {table} {final} order by {key}").result_rows


def close(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 relative (sums over the same values in another order), arrays element by element."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_a_pass_writes_the_new_windows_not_its_context(sliced: tuple[Settings, Transformer, dict[str, int]]) -> None:
    """The checks read an hour of windows before the new ones (how long a sensor has sat still) but write, like the
    windows themselves, only from where the new readings begin (a few more: the sensors that missed a window)."""
    _, _, written = sliced
    assert written["int_sensor_windows"] > 0
    assert written["int_sensor_window_checks"] <= 1.05 * written["int_sensor_windows"], written


def test_incremental_passes_equal_a_full_rebuild(sliced: tuple[Settings, Transformer, dict[str, int]]) -> None:
    settings, transformer, _ = sliced
    incremental = {table: contents(settings, table, key) for table, key in TABLES.items()}
    client = warehouse.client(settings)
    for table in COUNTED:
        client.command(f"SYSTEM START MERGES {table}")
    transformer.run(full_refresh=True)
    for table, key in TABLES.items():
        rebuilt = contents(settings, table, key)
        assert rebuilt, table
        assert len(incremental[table]) == len(rebuilt), table
        differ = [(a, b) for a, b in zip(incremental[table], rebuilt, strict=True) if not close(a, b)]
        assert not differ, (table, differ[:2])
