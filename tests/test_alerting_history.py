"""The alert history: the evaluator's state changes in alert_events, the dbt mart alert_history over them (its two
models built by dbt against the real ClickHouse), and the Grafana panel that shows it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from plantwatch import dashboards, warehouse
from plantwatch.alert_state import AlertStore, Firing, advance
from plantwatch.settings import Settings
from plantwatch.transform import Transformer

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def firing(uid: str, pending_for: float, *machines: str) -> Firing:
    out = Firing(uid, uid.title(), timedelta(seconds=pending_for))
    for m in machines:
        labels = {"alertname": uid, "machine_id": m, "category": "machine", "severity": "critical"}
        out.alerts[f"fp-{m}"] = (labels, {"summary": f"{m} is odd"}, {"B": 1.0})
    return out


def test_alert_history_mart_has_one_row_an_episode(isolated: Settings) -> None:
    store = AlertStore(isolated, warehouse.client(isolated))
    state: dict = {}
    # M1: pending at 0 s, fires at 60 s, resolved at 120 s; M2: pending at 0 s, gone at 30 s (cancelled);
    # M1 again from 180 s (a second episode, still pending); M3 (for 0): fires at 60 s and stays.
    timeline = [
        (0, [firing("rule", 60, "M1", "M2")]),
        (30, [firing("rule", 60, "M1")]),
        (60, [firing("rule", 60, "M1"), firing("now", 0, "M3")]),
        (120, [firing("rule", 60), firing("now", 0, "M3")]),
        (180, [firing("rule", 60, "M1"), firing("now", 0, "M3")]),
    ]
    for second, evaluated in timeline:
        state, events, touched = advance(state, evaluated, T0 + timedelta(seconds=second), timedelta(seconds=300))
        store.save(touched, events)
    Transformer(isolated)._invoke(["build", "--select", "stg_alert_events+"])
    rows = warehouse.client(isolated).query(
        "SELECT machine_id, episode, status, dateDiff('second', toDateTime64('2026-01-05 08:00:00', 3, 'UTC'), "
        "started_at), pending_seconds, firing_seconds, summary FROM alert_history ORDER BY machine_id, episode"
    )
    assert rows.result_rows == [
        ("M1", 1, "resolved", 0, 60.0, 60.0, "M1 is odd"),
        ("M1", 2, "pending", 180, None, None, "M1 is odd"),
        ("M2", 1, "cancelled", 0, None, None, "M2 is odd"),
        ("M3", 1, "firing", 60, 0.0, None, "M3 is odd"),
    ]
    # the state table holds the current state of each label set
    assert {(k[1], v.state) for k, v in store.load().items()} == {("fp-M1", "pending"), ("fp-M3", "firing")}


def test_the_plant_overview_shows_the_alert_history() -> None:
    [history] = [p for p in dashboards.plant_overview()["panels"] if p["title"].startswith("Alert history")]
    assert "FROM alert_history" in history["targets"][0]["rawSql"]
