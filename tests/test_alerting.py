"""Every Grafana alert rule's SQL, run by `plantwatch alerts` against the real ClickHouse, on rows that must fire it
and rows that must not. The seeds and marts are the fixture tables of tests/fixtures/marts.sql (contract columns).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from plantwatch import warehouse
from plantwatch.alerting import Rule, RuleResult, evaluate, load_rules
from plantwatch.cli import app
from plantwatch.settings import Settings, get_settings

FIXTURES = Path(__file__).parent / "fixtures"
ALERT_COLUMNS = [
    "alert_id", "machine_id", "sensor_id", "category", "kind", "severity", "status",
    "started_at", "ended_at", "last_flag_at", "flag_count", "max_score",
]  # fmt: skip


@pytest.fixture
def marts(isolated: Settings) -> Settings:
    """The isolated database with the seed and mart tables the rules read (plus dq_results from the migrations)."""
    admin = warehouse.client(isolated, database="default")
    for statement in warehouse.render(FIXTURES / "marts.sql", isolated):
        admin.command(statement)
    return isolated


@pytest.fixture(scope="module")
def rules(settings: Settings) -> dict[str, Rule]:
    return {rule.uid: rule for rule in load_rules(settings.alerting.rules_file)}


def now() -> datetime:
    return datetime.now(UTC)


def run(rule: Rule, settings: Settings) -> RuleResult:
    return evaluate(rule, warehouse.client(settings))


def insert_alert(settings: Settings, machine: str, sensor: str, category: str, kind: str, status: str) -> None:
    t = now()
    row = [f"{machine}-{sensor}-{kind}", machine, sensor, category, kind, "critical", status, t, None, t, 3, 9.5]
    warehouse.client(settings).insert("alerts", [row], column_names=ALERT_COLUMNS)


def firing_labels(result: RuleResult, key: str) -> set[str]:
    return {alert.labels[key] for alert in result.alerts}


def test_rule_file_has_the_five_rules(rules: dict[str, Rule]) -> None:
    assert set(rules) == {
        "pw-machine-anomaly",
        "pw-sensor-fault",
        "pw-stale-data",
        "pw-data-quality",
        "pw-pipeline-lag",
    }


def test_machine_anomaly_fires_for_open_machine_episodes_only(marts: Settings, rules: dict[str, Rule]) -> None:
    rule = rules["pw-machine-anomaly"]
    insert_alert(marts, "L1-pump01", "", "machine", "spike", "resolved")
    insert_alert(marts, "L1-pump02", "vib_x", "sensor", "stuck", "open")
    quiet = run(rule, marts)
    assert quiet.state == "normal" and not quiet.alerts

    insert_alert(marts, "L1-pump03", "", "machine", "drift", "open")
    fired = run(rule, marts)
    assert fired.state == "firing"
    [alert] = fired.alerts
    assert alert.labels | {"machine_id": "L1-pump03", "kind": "drift", "severity": "critical"} == alert.labels
    assert alert.labels["alertname"] == "Machine anomaly" and alert.labels["category"] == "machine"
    assert alert.annotations["summary"] == "Machine L1-pump03: open drift anomaly (score 9.5)"
    assert alert.annotations["runbook"]


def test_sensor_fault_fires_per_sensor(marts: Settings, rules: dict[str, Rule]) -> None:
    rule = rules["pw-sensor-fault"]
    insert_alert(marts, "L1-pump01", "", "machine", "spike", "open")
    insert_alert(marts, "L1-pump02", "vib_x", "sensor", "stuck", "resolved")
    assert run(rule, marts).state == "normal"

    insert_alert(marts, "L1-pump02", "vib_y", "sensor", "dropout", "open")
    insert_alert(marts, "L1-pump04", "temp", "sensor", "impossible_value", "open")
    fired = run(rule, marts)
    assert fired.state == "firing"
    assert {(a.labels["machine_id"], a.labels["sensor_id"], a.labels["kind"]) for a in fired.alerts} == {
        ("L1-pump02", "vib_y", "dropout"),
        ("L1-pump04", "temp", "impossible_value"),
    }


def insert_health(settings: Settings, machine: str, last_reading_at: datetime) -> None:
    columns = ["machine_id", "line_id", "model", "status", "last_reading_at", "open_alerts", "open_sensor_faults"]
    row = [machine, "L1", "pump", "ok", last_reading_at, 0, 0]
    warehouse.client(settings).insert("machine_health", [row], column_names=columns)


def test_stale_data_fires_for_silent_and_never_seen_machines(marts: Settings, rules: dict[str, Rule]) -> None:
    rule = rules["pw-stale-data"]
    insert_health(marts, "M1", now())
    insert_health(marts, "M2", now() - timedelta(seconds=20))
    assert run(rule, marts).state == "normal"

    insert_health(marts, "M3", now() - timedelta(minutes=10))
    insert_health(marts, "M4", datetime.fromtimestamp(0, UTC))  # in the seed, never reported
    fired = run(rule, marts)
    assert fired.state == "firing"
    assert firing_labels(fired, "machine_id") == {"M3", "M4"}
    by_machine = {a.labels["machine_id"]: a.values["B"] for a in fired.alerts}
    assert 590 <= by_machine["M3"] <= 700
    assert by_machine["M4"] > 86_400 * 365
    assert fired.alerts[0].annotations["summary"].startswith("No readings from M")


def test_stale_data_alerts_when_no_machine_is_known(marts: Settings, rules: dict[str, Rule]) -> None:
    """No machines at all is NoData, which this rule treats as alerting (the pipeline lost its inventory)."""
    result = run(rules["pw-stale-data"], marts)
    assert result.state == "firing" and result.error == "no data"


def insert_dq(settings: Settings, run_id: str, at: datetime, suite: str, successes: list[bool]) -> None:
    rows = [[run_id, at, suite, f"e{i}", "", ok, "", "{}"] for i, ok in enumerate(successes)]
    columns = ["run_id", "run_at", "suite", "expectation", "column", "success", "observed", "details"]
    warehouse.client(settings).insert(settings.clickhouse.dq_results_table, rows, column_names=columns)


def test_data_quality_failure_looks_at_each_suites_latest_run(marts: Settings, rules: dict[str, Rule]) -> None:
    rule = rules["pw-data-quality"]
    t = now()
    insert_dq(marts, "old", t - timedelta(minutes=5), "readings", [True, False, False])
    insert_dq(marts, "new", t, "readings", [True, True, True])
    insert_dq(marts, "new", t, "freshness", [True])
    assert run(rule, marts).state == "normal"

    insert_dq(marts, "newer", t + timedelta(seconds=1), "freshness", [False])
    fired = run(rule, marts)
    assert fired.state == "firing"
    [alert] = fired.alerts
    assert alert.labels["suite"] == "freshness" and alert.values["B"] == 1.0
    assert alert.annotations["summary"] == "Data-quality suite freshness: 1 failed expectations"


def test_pipeline_lag_fires_on_recent_delay_only(marts: Settings, rules: dict[str, Rule]) -> None:
    rule = rules["pw-pipeline-lag"]
    client = warehouse.client(marts)
    columns = ["minute", "readings", "machines", "max_ingest_delay_s"]
    minute = now().replace(second=0, microsecond=0)
    client.insert(
        "pipeline_stats", [[minute - timedelta(hours=1), 100, 4, 120.0], [minute, 100, 4, 2.5]], column_names=columns
    )
    assert run(rule, marts).state == "normal"

    client.insert("pipeline_stats", [[minute - timedelta(minutes=1), 100, 4, 45.0]], column_names=columns)
    fired = run(rule, marts)
    assert fired.state == "firing"
    assert fired.alerts[0].values["B"] == 45.0


def test_a_failing_query_is_the_rules_error_state(isolated: Settings, rules: dict[str, Rule]) -> None:
    result = run(rules["pw-machine-anomaly"], isolated)  # no marts in this database
    assert result.state == "error" and "alerts" in result.error


class Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_plantwatch_alerts_prints_and_posts_what_fires(marts: Settings, webhook: str) -> None:
    insert_health(marts, "L1-pump01", now())
    insert_alert(marts, "L1-pump01", "", "machine", "spike", "open")
    # The test database is not one the component users are granted on: connect as the admin (roles off).
    env = {
        "PLANTWATCH_CLICKHOUSE__DATABASE": marts.clickhouse.database,
        "PLANTWATCH_CLICKHOUSE__ROLES": "false",
        "COLUMNS": "200",
    }
    get_settings.cache_clear()  # the CLI reads its settings (and so the database) from the environment
    try:
        done = CliRunner().invoke(app, ["alerts", "--webhook", webhook], env=env)
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    assert "Machine anomaly" in done.output and "firing" in done.output
    assert "1 alert(s) firing from 1 rule(s)" in done.output
    assert f"posted 1 alert(s) to {webhook}" in done.output

    [payload] = Receiver.received
    assert payload["status"] == "firing"
    [alert] = payload["alerts"]
    assert alert["labels"]["alertname"] == "Machine anomaly"
    assert alert["labels"]["machine_id"] == "L1-pump01"
    assert alert["annotations"]["summary"].startswith("Machine L1-pump01: open spike anomaly")
