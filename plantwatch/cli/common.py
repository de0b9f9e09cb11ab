"""What several commands share: option parsing, the producer commands' metrics and SIGTERM handling."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console

from plantwatch.durations import parse_duration
from plantwatch.metrics import serve_metrics
from plantwatch.settings import get_settings


def time_ms(text: str, option: str = "--start") -> int:
    """An ISO 8601 time (UTC if naive) as epoch milliseconds; a bad one names its option."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 time", param_hint=option) from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def duration(text: str, option: str) -> timedelta:
    """A positive duration ('90s', '30m', '1h30m', '1d' or plain seconds); a bad one names its option."""
    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    if value <= timedelta(0):
        raise typer.BadParameter(f"{text!r} is not positive", param_hint=option)
    return value


def positive(value: float | None, option: str, zero: bool = False) -> None:
    """Counts, durations and rates are positive (a rate of 0 meaning: as fast as possible)."""
    if value is not None and (value < 0 or (value == 0 and not zero)):
        raise typer.BadParameter(f"{value} is not {'0 or more' if zero else 'positive'}", param_hint=option)


def serve_producer_metrics(console: Console, enabled: bool, port: int | None, host: str = "127.0.0.1") -> None:
    if enabled:
        port = serve_metrics(get_settings(), "producer", port, host)
        console.print(f"[dim]metrics on http://{host}:{port}/metrics[/]")


def stop_on_sigterm() -> threading.Event:
    """SIGTERM (Kubernetes stopping the pod) sets the returned event: the simulation stops between two messages and
    the logger writes its last block, delivers the rest and saves its cursor. (Raising SystemExit from the handler
    could interrupt the logger's delivery bookkeeping, leaving it waiting for an acknowledgement it had counted.)"""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    return stop
