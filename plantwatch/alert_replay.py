"""`plantwatch demo`'s alert lifecycle: its simulated minutes replayed through the continuous evaluator, the
stack's Alertmanager and a local webhook receiver.

The demo publishes its minutes of readings at once, so the alerts mart it builds already holds every episode,
most of them resolved. To show the lifecycle, the replay steps a clock through the simulated period (STEP of
simulated time per evaluation, SPEED times faster than real time). At each step the machine and sensor rules of
the rule file (their SQL reads only the alerts mart) run against a view of the mart as it stood then (episodes
started by then, open until ALERT_RESOLVE_AFTER past their last flag, the mart's own rule), in a scratch
database; the :class:`~plantwatch.alerting.Evaluator` applies `for`, records the history in the demo's
``alert_events`` and pushes to Alertmanager, whose demo route (alertmanager/alertmanager.yml) notifies a webhook
receiver on ``alertmanager.demo_webhook_port``. Each notification is dated on the simulated clock, so the PNG
report can mark when it went out. At the step with the most alerts firing, a headless Chromium screenshots the
Alertmanager UI. The time-of-day rules (stale data, pipeline lag, data quality) are left to the demo's final,
one-shot evaluation: against a replayed clock they would only say the data is old.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from plantwatch import warehouse
from plantwatch.alert_state import FIRING, Event
from plantwatch.alerting import Evaluator
from plantwatch.alertmanager import AlertmanagerError, get_alerts, post_alerts, rfc3339
from plantwatch.settings import Settings

RULES = {"pw-machine-anomaly", "pw-sensor-fault"}
STEP = timedelta(seconds=15)  # simulated time between two evaluations
SPEED = 10.0  # simulated seconds per second: a step (1.5 s) outlasts the demo route's group_wait and group_interval
ALERT_RESOLVE_AFTER = timedelta(seconds=60)  # dbt var alert_resolve_after_seconds
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
AS_OF = warehouse.SQL_DIR / "replay" / "alerts_as_of.sql"


@dataclass
class Notification:
    at: datetime  # on the simulated clock
    status: str  # firing | resolved
    alertname: str
    machine_id: str
    labels: dict[str, str]
    starts_at: str


@dataclass
class Lifecycle:
    notifications: list[Notification] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    screenshot: Path | None = None
    ui_alerts: list[str] = field(default_factory=list)  # "alertname machine_id" listed by the API at the screenshot
    problem: str = ""


@contextmanager
def receiver(port: int) -> Iterator[list[tuple[float, dict[str, Any]]]]:
    """A webhook receiver on 127.0.0.1:port: (monotonic time, payload) of each notification."""
    received: list[tuple[float, dict[str, Any]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((time.monotonic(), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def screenshot(url: str, out: Path) -> bool:
    """A headless Chromium's PNG of `url` (False when Chromium is not installed or failed)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        return False
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=4000",
             "--window-size=1280,900", f"--screenshot={out}", url],
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    return done.returncode == 0 and out.exists()


def _resolve_leftovers(settings: Settings, url: str) -> None:
    """Alerts of an earlier demo run still firing in Alertmanager would absorb this run's (same labels)."""
    database = settings.clickhouse.database
    now = rfc3339(datetime.now(UTC))
    left = [a for a in get_alerts(url) if a["labels"].get("database") == database]
    post_alerts(url, [{"labels": a["labels"], "startsAt": a["startsAt"], "endsAt": now} for a in left])


def replay(settings: Settings, start: datetime, end: datetime, out_dir: Path) -> Lifecycle:
    """Replay [start, end] of the demo database's alerts mart through the evaluator and Alertmanager."""
    lifecycle = Lifecycle()
    out_dir.mkdir(parents=True, exist_ok=True)  # a fresh clone has no reports/ yet: Chromium would fail to write
    url = settings.alertmanager.url
    database = settings.clickhouse.database
    replay_db = f"{database}_replay"
    admin = warehouse.client(settings, database="default")
    admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": replay_db})
    admin.command("CREATE DATABASE {db:Identifier}", parameters={"db": replay_db})
    rules_client = warehouse.client(settings, database=replay_db)
    # Each run's alerts carry its own label: its simulated past overlaps an earlier run's alerts, which
    # Alertmanager would otherwise merge with these (same labels, overlapping activity).
    run = start.astimezone(UTC).strftime("%Y%m%dT%H%M%S")
    evaluator = Evaluator(
        settings, None, url, uids=RULES, interval=STEP.total_seconds() / SPEED, rules_client=rules_client,
        extra_labels={"demo_run": run},
    )  # fmt: skip
    try:
        _resolve_leftovers(settings, url)
        with receiver(settings.alertmanager.demo_webhook_port) as received:
            began, paused, most = time.monotonic(), 0.0, 0
            anchors: list[tuple[float, datetime]] = [(began, start)]  # (wall, simulated) at each step

            def clock(wall: float) -> datetime:
                anchor_wall, anchor_at = max((a for a in anchors if a[0] <= wall), default=anchors[0])
                return anchor_at + timedelta(seconds=(wall - anchor_wall) * SPEED)

            at = start
            while at <= end:
                [as_of] = warehouse.render(
                    AS_OF, settings, replay=replay_db, resolve_seconds=int(ALERT_RESOLVE_AFTER.total_seconds()),
                    at=at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                )  # fmt: skip
                admin.command(as_of)
                time.sleep(max(0.0, (at - start).total_seconds() / SPEED - (time.monotonic() - began - paused)))
                anchors.append((time.monotonic(), at))
                evaluation = evaluator.evaluate(now=at)
                lifecycle.events += evaluation.events
                if evaluation.push_error:
                    lifecycle.problem = evaluation.push_error
                firing = sum(i.state == FIRING for i in (evaluator.instances or {}).values())
                if firing > most:
                    most = firing
                    stopped = time.monotonic()
                    time.sleep(1.5)  # Alertmanager's group_wait on the demo route: the UI has them then
                    lifecycle.ui_alerts = [
                        f"{a['labels']['alertname']} {a['labels'].get('machine_id', '')}"
                        for a in get_alerts(url, active=True)
                        if a["labels"].get("database") == database
                    ]
                    shot = out_dir / "demo-alertmanager.png"
                    if screenshot(f"{url}/", shot) or screenshot(f"{url}/", shot):  # a loaded machine: once more
                        lifecycle.screenshot = shot  # a failed later one keeps the earlier
                    paused += time.monotonic() - stopped
                    anchors.append((time.monotonic(), at))  # the clock stood still meanwhile
                at += STEP
            # the last notifications (group_wait, group_interval: a second or two)
            expected = sum(e.to_state in ("firing", "resolved") for e in lifecycle.events)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(first_sent(_notifications(received, clock, run))) < expected:
                time.sleep(0.2)
            lifecycle.notifications = _notifications(received, clock, run)
    except (AlertmanagerError, OSError) as exc:
        lifecycle.problem = str(exc)
    finally:
        admin.command("DROP DATABASE IF EXISTS {db:Identifier}", parameters={"db": replay_db})
    return lifecycle


def _notifications(received: list[tuple[float, dict[str, Any]]], clock: Any, run: str) -> list[Notification]:
    """Each notified alert of this run (not an earlier run's leftovers), dated on the replay clock."""
    out = []
    for wall, payload in list(received):
        for alert in payload["alerts"]:
            if alert["labels"].get("demo_run") != run:
                continue
            labels = alert["labels"]
            out.append(
                Notification(clock(wall), alert["status"], labels["alertname"], labels.get("machine_id", ""), labels,
                             alert["startsAt"])
            )  # fmt: skip
    return out


def first_sent(notifications: list[Notification]) -> list[Notification]:
    """The notification that first announced each episode firing, and the one that announced it resolved.

    Alertmanager notifies per group (a machine): while an alert fires, each new notification of its group lists it
    again; a resolved alert is listed once, then dropped from its group."""
    seen: dict[tuple[str, str, str], Notification] = {}
    for n in notifications:
        seen.setdefault((json.dumps(n.labels, sort_keys=True), n.starts_at, n.status), n)
    return list(seen.values())
