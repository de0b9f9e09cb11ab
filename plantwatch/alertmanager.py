"""Alertmanager's v2 API, as plantwatch uses it: push alerts, read them back, silence a machine.

    plantwatch silence --machine L1-pump01 --for 2h --reason "bearing replacement"
    plantwatch silence --expire SILENCE_ID

A silence matches the machine's alerts of the configured database (labels ``machine_id`` and ``database``, which
`plantwatch alerts --every` puts on every alert): while it lasts, Alertmanager notifies nothing about the machine,
but the evaluator still records every state change in ``alert_events`` and dbt still flags the readings.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson


class AlertmanagerError(RuntimeError):
    """Alertmanager did not answer, or refused the request (the message says which)."""


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def request(url: str, method: str = "GET", body: Any = None, timeout: float = 5.0) -> Any:
    """One API call; the decoded JSON answer (None when empty). Raises AlertmanagerError."""
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as exc:
        raise AlertmanagerError(f"{method} {url}: HTTP {exc.code} {exc.read()[:300]!r}") from exc
    except OSError as exc:
        raise AlertmanagerError(f"{method} {url}: {exc}") from exc
    return orjson.loads(payload) if payload.strip() else None


def post_alerts(base_url: str, alerts: list[dict[str, Any]], timeout: float = 5.0) -> None:
    """POST /api/v2/alerts: each {labels, annotations, startsAt, endsAt, generatorURL}."""
    if alerts:
        request(f"{base_url}/api/v2/alerts", "POST", alerts, timeout)


def get_alerts(base_url: str, timeout: float = 5.0, **filters: bool) -> list[dict[str, Any]]:
    """GET /api/v2/alerts (active, silenced, inhibited and unprocessed ones unless filtered out)."""
    query = urllib.parse.urlencode({k: str(v).lower() for k, v in filters.items()})
    return request(f"{base_url}/api/v2/alerts" + (f"?{query}" if query else ""), timeout=timeout)


def create_silence(
    base_url: str, matchers: dict[str, str], duration: timedelta, comment: str, created_by: str, timeout: float = 5.0
) -> str:
    """POST /api/v2/silences from now for `duration`, every matcher an equality; returns the silence id."""
    now = datetime.now(UTC)
    body = {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
        "startsAt": rfc3339(now),
        "endsAt": rfc3339(now + duration),
        "createdBy": created_by,
        "comment": comment,
    }
    return request(f"{base_url}/api/v2/silences", "POST", body, timeout)["silenceID"]


def expire_silence(base_url: str, silence_id: str, timeout: float = 5.0) -> None:
    request(f"{base_url}/api/v2/silence/{urllib.parse.quote(silence_id)}", "DELETE", timeout=timeout)
