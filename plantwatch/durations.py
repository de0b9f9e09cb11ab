"""Durations as Grafana, Prometheus and people write them: '90s', '2m', '1h30m', '1d', or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """The duration `text` names; ValueError if it names none."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration (e.g. 30s, 2m, 1h30m, 1d)")
    return timedelta(seconds=sum(float(n) * UNITS[u] for n, u in parts))
