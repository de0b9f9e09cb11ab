"""What the alerting tests share: a webhook receiver, a private Alertmanager, a short-`for` rule file, and the
mart rows (tests/fixtures/marts.sql) that open and close alert episodes."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from plantwatch import warehouse
from plantwatch.metrics import free_port
from plantwatch.settings import Settings
from plantwatch.stack.alertmanager import Alertmanager

FIXTURES = Path(__file__).parent / "fixtures"
# A private Alertmanager notifies within a second or two; no repeat within a test.
FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
ALERT_COLUMNS = [
    "alert_id", "machine_id", "sensor_id", "category", "kind", "severity", "status",
    "started_at", "ended_at", "last_flag_at", "flag_count", "max_score",
]  # fmt: skip


@dataclass
class Receiver:
    """A webhook receiver: every notification Alertmanager posts, with the time it arrived."""

    url: str = ""
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)

    def alerts(self, machine: str, status: str) -> list[tuple[float, dict[str, Any]]]:
        """(arrival, alert) of every notified alert of `machine` with `status` (firing or resolved)."""
        return [
            (at, alert)
            for at, payload in list(self.received)
            for alert in payload["alerts"]
            if alert["labels"].get("machine_id") == machine and alert["status"] == status
        ]


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            receiver.received.append((time.monotonic(), json.loads(body)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    receiver.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def private_alertmanager(settings: Settings, state_dir: Path, webhook: str) -> Alertmanager:
    """An Alertmanager of the test's own (free port, state under state_dir, FAST timings, the test's webhook),
    started; stop it with .stop(). `settings` (a test's isolated ones) get its address."""
    own = settings.model_copy(
        update={
            "state_dir": state_dir,
            "alertmanager": settings.alertmanager.model_copy(update={"port": free_port()}),
            "alerting": settings.alerting.model_copy(update={"webhook_url": webhook}),
        }
    )
    service = Alertmanager(own, timings=FAST)
    service.prepare()
    service.start()
    service.wait_healthy(30)
    return service


def short_rules(out: Path, settings: Settings, pending: dict[str, str]) -> Path:
    """The provisioned rule file with only the rules named (uid -> their `for`, shortened for a test)."""
    document = yaml.safe_load(settings.alerting.rules_file.read_text())
    for group in document["groups"]:
        group["rules"] = [{**rule, "for": pending[rule["uid"]]} for rule in group["rules"] if rule["uid"] in pending]
    document["groups"] = [g for g in document["groups"] if g["rules"]]
    out.write_text(yaml.safe_dump(document, sort_keys=False))
    return out


def create_marts(settings: Settings) -> None:
    admin = warehouse.client(settings, database="default")
    for statement in warehouse.render(FIXTURES / "marts.sql", settings):
        admin.command(statement)


def set_open_alerts(settings: Settings, *alerts: tuple[str, str, str]) -> None:
    """The alerts mart holds exactly these open episodes: (machine, category, sensor)."""
    client = warehouse.client(settings)
    client.command("TRUNCATE TABLE alerts")
    now = datetime.now(UTC)
    rows = [
        [f"{m}-{s}-{c}", m, s, c, "stuck" if c == "sensor" else "spike", "critical", "open", now, None, now, 3, 9.5]
        for m, c, s in alerts
    ]
    if rows:
        client.insert("alerts", rows, column_names=ALERT_COLUMNS)


def events(settings: Settings, machine: str) -> list[tuple[str, str]]:
    """(from, to) of every recorded state change of the machine's alerts, in order."""
    table = settings.clickhouse.alert_events_table
    rows = warehouse.client(settings).query(
        f"SELECT from_state, to_state FROM {table} WHERE machine_id = {{m:String}} ORDER BY at",
        parameters={"m": machine},
    )
    return [tuple(r) for r in rows.result_rows]
