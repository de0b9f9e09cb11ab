"""`plantwatch alerts --every` on the real services: the rule file evaluated repeatedly against ClickHouse, its
state and history in ClickHouse, notifications through a private Alertmanager (short timings) to a webhook
receiver. Rules are the provisioned ones with short `for` durations; the alerts mart is a fixture table
(tests/fixtures/marts.sql) whose rows open and close episodes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from plantwatch.alert_state import FIRING, PENDING
from plantwatch.alerting import Evaluator
from plantwatch.alertmanager import get_alerts
from plantwatch.cli import app
from plantwatch.settings import Settings, environment, get_settings
from plantwatch.stack.alertmanager import Alertmanager
from tests.alerting_support import (
    Receiver,
    create_marts,
    events,
    private_alertmanager,
    set_open_alerts,
    short_rules,
    webhook_receiver,
)
from tests.fixtures.pipeline import wait_for
from tests.test_alerting import insert_health

MACHINE = "pw-machine-anomaly"
SENSOR = "pw-sensor-fault"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as receiver:
        yield receiver


@pytest.fixture
def alertmanager(isolated: Settings, tmp_path: Path, receiver: Receiver) -> Iterator[Alertmanager]:
    service = private_alertmanager(isolated, tmp_path / "state", receiver.url)
    yield service
    service.stop()


@pytest.fixture
def marts(isolated: Settings) -> Settings:
    create_marts(isolated)
    return isolated


def evaluator(settings: Settings, am: Alertmanager, rules: Path) -> Evaluator:
    return Evaluator(settings, rules, am.address, interval=1)


def run_for(ev: Evaluator, seconds: float, every: float = 0.5) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ev.evaluate()
        time.sleep(every)


def until(ev: Evaluator, what: str, predicate, timeout: float = 20) -> None:
    def step() -> bool:
        ev.evaluate()
        return predicate()

    wait_for(what, step, timeout=timeout, every=0.5)


def test_one_firing_and_one_resolved_notification_per_episode(
    marts: Settings, alertmanager: Alertmanager, receiver: Receiver, tmp_path: Path
) -> None:
    ev = evaluator(marts, alertmanager, short_rules(tmp_path / "rules.yaml", marts, {MACHINE: "1s"}))
    for episode in (1, 2):
        set_open_alerts(marts, ("M1", "machine", ""))
        until(ev, f"episode {episode} notified", lambda n=episode: len(receiver.alerts("M1", "firing")) == n)
        run_for(ev, 3)  # still firing, re-sent every evaluation: no second notification
        assert len(receiver.alerts("M1", "firing")) == episode
        set_open_alerts(marts)
        until(ev, f"episode {episode} resolved", lambda n=episode: len(receiver.alerts("M1", "resolved")) == n)
        # Alertmanager may notify the resolution within milliseconds of accepting it (its group's tick just then),
        # before the evaluation that retires the delivered resolution to normal: that one runs before the next
        # episode begins (a new episode straight from resolved is right too, but not what this test checks).
        ev.evaluate()
    run_for(ev, 3)
    assert len(receiver.alerts("M1", "firing")) == 2 and len(receiver.alerts("M1", "resolved")) == 2
    [(_, firing), (_, resolved)] = receiver.alerts("M1", "firing")[:1] + receiver.alerts("M1", "resolved")[:1]
    assert (
        firing["labels"]["alertname"] == "Machine anomaly" and firing["labels"]["database"] == marts.clickhouse.database
    )
    assert firing["annotations"]["summary"].startswith("Machine M1: open spike anomaly")
    assert firing["annotations"]["runbook_url"].endswith(f"#{MACHINE}") and firing["annotations"]["runbook"]
    assert "var-machine=M1" in firing["annotations"]["dashboard_url"]
    assert firing["startsAt"] == resolved["startsAt"] and resolved["endsAt"] > resolved["startsAt"]
    # The second episode starts from normal: the first one's resolution was accepted, so no longer re-sent.
    episode = [("pending", "firing"), ("firing", "resolved")]
    assert events(marts, "M1") == [("normal", "pending"), *episode, ("normal", "pending"), *episode]


def test_for_delays_firing_and_a_blip_shorter_than_for_notifies_nothing(
    marts: Settings, alertmanager: Alertmanager, receiver: Receiver, tmp_path: Path
) -> None:
    ev = evaluator(marts, alertmanager, short_rules(tmp_path / "rules.yaml", marts, {MACHINE: "4s"}))
    set_open_alerts(marts, ("M1", "machine", ""))
    began = time.monotonic()
    first = ev.evaluate()
    assert [e.to_state for e in first.events] == [PENDING]
    run_for(ev, 2)
    set_open_alerts(marts)  # gone after ~2 s, before its 4 s `for`
    run_for(ev, 3)
    assert receiver.received == [] and events(marts, "M1") == [("normal", "pending"), ("pending", "normal")]

    set_open_alerts(marts, ("M2", "machine", ""))
    opened = time.monotonic()
    until(ev, "M2 notified", lambda: receiver.alerts("M2", "firing"))
    [(arrived, _)] = receiver.alerts("M2", "firing")
    assert arrived - opened >= 4.0, "fired before its `for`"
    assert arrived - opened < 20.0
    assert began < opened


def test_a_slow_evaluation_dates_its_alerts_when_their_results_are_known(
    marts: Settings, alertmanager: Alertmanager, receiver: Receiver, tmp_path: Path
) -> None:
    # Alertmanager notifies a new group at once if its alert started more than group_wait ago, before an inhibiting
    # alert of the same push may have reached the inhibitor: an alert dated when a slow evaluation began did that.
    rules = short_rules(tmp_path / "rules.yaml", marts, {MACHINE: "0s"})
    document = yaml.safe_load(rules.read_text())
    for query in (item["model"] for group in document["groups"] for rule in group["rules"] for item in rule["data"]):
        if "rawSql" in query:
            query["rawSql"] = f"SELECT * FROM ({query['rawSql']}) WHERE sleep(1.5) = 0"
    rules.write_text(yaml.safe_dump(document, sort_keys=False))
    set_open_alerts(marts, ("M1", "machine", ""))
    began = datetime.now(UTC)
    evaluation = evaluator(marts, alertmanager, rules).evaluate()
    [event] = evaluation.events
    assert event.to_state == FIRING and event.instance.fired_at >= began + timedelta(seconds=1.5)
    [alert] = get_alerts(alertmanager.address)
    pushed = datetime.fromisoformat(alert["startsAt"])
    assert abs(pushed - event.instance.fired_at) < timedelta(milliseconds=1)


def start_evaluator(settings: Settings, rules: Path, am: Alertmanager, log: Path) -> subprocess.Popen[bytes]:
    """`plantwatch alerts --every 1s` as its own process, as a user runs it; returned once it says it evaluates (its
    SIGTERM handler is set then: on a loaded machine the imports alone take several seconds)."""

    def banners() -> int:
        return log.read_text().count("evaluating ") if log.exists() else 0

    before = banners()
    env = {**os.environ, **environment(settings)}
    process = subprocess.Popen(
        [sys.executable, "-m", "plantwatch.cli", "alerts", "--every", "1s", "--rules", str(rules),
         "--alertmanager", am.address],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    wait_for("the evaluator started", lambda: banners() > before or process.poll() is not None, timeout=60)
    assert process.poll() is None, log.read_text()[-2000:]
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0


def test_evaluator_restart_neither_repeats_nor_loses_a_notification(
    marts: Settings, alertmanager: Alertmanager, receiver: Receiver, tmp_path: Path
) -> None:
    rules = short_rules(tmp_path / "rules.yaml", marts, {MACHINE: "3s"})
    log = tmp_path / "evaluator.log"
    set_open_alerts(marts, ("M1", "machine", ""))
    process = start_evaluator(marts, rules, alertmanager, log)
    try:
        wait_for("M1 notified", lambda: receiver.alerts("M1", "firing"), timeout=30)
        # M2 becomes pending, then the evaluator stops before its `for` ends; M1 resolves while it is down.
        set_open_alerts(marts, ("M1", "machine", ""), ("M2", "machine", ""))
        wait_for("M2 pending", lambda: ("normal", "pending") in events(marts, "M2"), timeout=15)
        stop(process)
        set_open_alerts(marts, ("M2", "machine", ""))
        stopped = time.monotonic()
        process = start_evaluator(marts, rules, alertmanager, log)
        wait_for("M1 resolved", lambda: receiver.alerts("M1", "resolved"), timeout=30)
        wait_for("M2 notified", lambda: receiver.alerts("M2", "firing"), timeout=30)
        time.sleep(3)
        stop(process)
        process = start_evaluator(marts, rules, alertmanager, log)  # a second restart while M2 fires
        time.sleep(6)
    finally:
        if process.poll() is None:
            stop(process)
    assert len(receiver.alerts("M1", "firing")) == 1 and len(receiver.alerts("M1", "resolved")) == 1
    assert len(receiver.alerts("M2", "firing")) == 1 and receiver.alerts("M2", "resolved") == []
    # M2's pending time carried over the restart: it fired 3 s after it became pending, not 3 s after the restart
    assert events(marts, "M2") == [("normal", "pending"), ("pending", "firing")]
    [(arrived, _)] = receiver.alerts("M2", "firing")
    assert arrived - stopped < 25, log.read_text()[-2000:]


def test_alertmanager_down_for_30_seconds_loses_no_notification(
    marts: Settings, alertmanager: Alertmanager, receiver: Receiver, tmp_path: Path
) -> None:
    ev = evaluator(marts, alertmanager, short_rules(tmp_path / "rules.yaml", marts, {MACHINE: "1s"}))
    set_open_alerts(marts, ("M1", "machine", ""))
    until(ev, "M1 notified", lambda: receiver.alerts("M1", "firing"))
    alertmanager.stop()
    # While it is down: M1 resolves and M2 fires; the pushes fail and are retried every evaluation.
    set_open_alerts(marts, ("M2", "machine", ""))
    down = time.monotonic()
    tries = failed = 0
    while time.monotonic() - down < 30:
        tries += 1
        failed += bool(ev.evaluate().push_error)
        time.sleep(1)
    assert failed == tries >= 10 and len(receiver.received) == 1
    assert next(s for s in ev.instances.values() if s.labels["machine_id"] == "M2").state == FIRING
    alertmanager.start()
    alertmanager.wait_healthy(30)
    until(
        ev, "M1 resolved and M2 notified", lambda: receiver.alerts("M1", "resolved") and receiver.alerts("M2", "firing")
    )
    set_open_alerts(marts)
    until(ev, "M2 resolved", lambda: receiver.alerts("M2", "resolved"))
    run_for(ev, 3)
    for machine in ("M1", "M2"):
        assert len(receiver.alerts(machine, "firing")) == 1 and len(receiver.alerts(machine, "resolved")) == 1


def silence_cli(settings: Settings, am: Alertmanager, *args: str) -> str:
    env = {
        "PLANTWATCH_CLICKHOUSE__DATABASE": settings.clickhouse.database,
        "PLANTWATCH_ALERTMANAGER__PORT": str(am.settings.alertmanager.port),
        "COLUMNS": "200",
    }
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["silence", *args], env=env)
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    return done.output


def test_a_silenced_machine_notifies_nothing_but_its_alerts_are_recorded(
    marts: Settings, alertmanager: Alertmanager, receiver: Receiver, tmp_path: Path
) -> None:
    out = silence_cli(marts, alertmanager, "--machine", "M1", "--for", "2h", "--reason", "bearing replacement")
    assert "silenced M1 for 2h" in out
    ev = evaluator(marts, alertmanager, short_rules(tmp_path / "rules.yaml", marts, {MACHINE: "0s", SENSOR: "0s"}))
    set_open_alerts(marts, ("M1", "machine", ""), ("M1", "sensor", "temp"), ("M2", "machine", ""))
    until(ev, "M2 notified", lambda: receiver.alerts("M2", "firing"))
    run_for(ev, 3)
    listed = {
        (a["labels"]["machine_id"], a["labels"]["category"]): a["status"]
        for a in get_alerts(alertmanager.address)
        if a["labels"].get("database") == marts.clickhouse.database
    }
    assert listed[("M1", "machine")]["state"] == listed[("M1", "sensor")]["state"] == "suppressed"
    assert listed[("M1", "sensor")]["silencedBy"] and listed[("M2", "machine")]["state"] == "active"
    set_open_alerts(marts)
    until(ev, "M2 resolved", lambda: receiver.alerts("M2", "resolved"))
    run_for(ev, 2)
    assert receiver.alerts("M1", "firing") == [] and receiver.alerts("M1", "resolved") == []
    assert events(marts, "M1") == [("normal", "firing")] * 2 + [("firing", "resolved")] * 2  # machine and sensor


def test_a_sensor_fault_inhibits_its_machines_anomalies_and_stale_data_the_rest(
    marts: Settings, alertmanager: Alertmanager, receiver: Receiver, tmp_path: Path
) -> None:

    rules = short_rules(tmp_path / "rules.yaml", marts, {MACHINE: "0s", SENSOR: "0s", "pw-stale-data": "0s"})
    ev = evaluator(marts, alertmanager, rules)
    for machine, age in (("M1", 0), ("M2", 0), ("M3", 600)):
        insert_health(marts, machine, datetime.now(UTC) - timedelta(seconds=age))
    set_open_alerts(
        marts, ("M1", "machine", ""), ("M1", "sensor", "temp"), ("M2", "machine", ""), ("M3", "machine", "")
    )
    until(ev, "M2 notified", lambda: receiver.alerts("M2", "firing"))
    run_for(ev, 3)
    notified = {
        (a["labels"]["machine_id"], a["labels"]["alertname"]) for _, p in receiver.received for a in p["alerts"]
    }
    assert notified == {("M1", "Sensor fault"), ("M2", "Machine anomaly"), ("M3", "Stale data")}
    states = {
        (a["labels"]["machine_id"], a["labels"]["alertname"]): a["status"]["inhibitedBy"]
        for a in get_alerts(alertmanager.address)
    }
    assert (
        states[("M1", "Machine anomaly")]
        and states[("M3", "Machine anomaly")]
        and not states[("M2", "Machine anomaly")]
    )
