"""Each sensor kind's physically possible value range, read from the dbt seed ``spec_limits`` (one copy of limits).

The seed has one row per (machine model, sensor kind) with ``physical_min``/``physical_max``; a raw reading is
plausible when it lies inside the widest physical range any model allows for its kind.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Range:
    low: float
    high: float


class MissingLimits(FileNotFoundError):
    """The spec_limits seed is not there (the dbt project provides it)."""


def physical_ranges(seed_csv: Path) -> dict[str, Range]:
    """sensor kind -> the widest physical range over all machine models."""
    if not seed_csv.exists():
        raise MissingLimits(f"spec limits seed not found: {seed_csv}")
    ranges: dict[str, Range] = {}
    with seed_csv.open(newline="") as handle:
        for row in csv.DictReader(handle):
            kind, low, high = row["sensor_kind"], float(row["physical_min"]), float(row["physical_max"])
            if kind in ranges:
                low, high = min(low, ranges[kind].low), max(high, ranges[kind].high)
            ranges[kind] = Range(low, high)
    return ranges
