"""The life of an alert between evaluations: normal -> pending (for `for`) -> firing -> resolved -> normal.

Each rule and label set (its fingerprint) is one :class:`Instance`. :func:`advance` is the state machine, applied
to one evaluation's results, as Grafana's alerting applies it:

- the condition holds and the instance was normal (or resolved): pending, or firing at once when `for` is 0;
- it still holds and has held for `for` since it became pending: firing (Alertmanager's startsAt is that moment);
- it no longer holds (or the label set is gone): a pending instance goes back to normal, a firing one is resolved
  (endsAt); a resolved instance stays (and is re-sent) for ``resolved_resend_seconds``, then is normal;
- a rule whose query failed keeps its instances as they were: an outage of ClickHouse resolves nothing.

Every change is an :class:`Event` (the history, table ``alert_events``); the instances that are not normal are
the state (table ``alert_state``, read back on start, so that a restart neither repeats nor forgets an alert).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from clickhouse_connect.driver.client import Client

from plantwatch.settings import Settings

NORMAL, PENDING, FIRING, RESOLVED = "normal", "pending", "firing", "resolved"
Key = tuple[str, str]  # (rule uid, fingerprint)


def fingerprint(labels: dict[str, str]) -> str:
    return hashlib.sha256(orjson.dumps(sorted(labels.items()))).hexdigest()[:16]


@dataclass
class Instance:
    rule_uid: str
    rule_title: str
    fingerprint: str
    labels: dict[str, str]
    annotations: dict[str, str]
    values: dict[str, float]
    state: str
    active_at: datetime
    fired_at: datetime | None = None
    resolved_at: datetime | None = None
    evaluated_at: datetime | None = None
    sent_at: datetime | None = None

    @property
    def key(self) -> Key:
        return self.rule_uid, self.fingerprint


@dataclass(frozen=True)
class Event:
    at: datetime
    instance: Instance
    from_state: str
    to_state: str

    def describe(self) -> str:
        own = {k: v for k, v in self.instance.labels.items() if k not in ("alertname", "grafana_folder", "database")}
        labels = ", ".join(f"{k}={v}" for k, v in own.items())
        return f"{self.instance.rule_title} {{{labels}}}: {self.from_state} -> {self.to_state}"


@dataclass
class Firing:
    """What one evaluation found firing for one rule (condition true), by fingerprint."""

    rule_uid: str
    rule_title: str
    pending_for: timedelta
    alerts: dict[str, tuple[dict[str, str], dict[str, str], dict[str, float]]] = field(default_factory=dict)
    failed: bool = False  # the query failed: keep this rule's instances as they are


def advance(
    instances: dict[Key, Instance], evaluated: list[Firing], now: datetime, resolved_resend: timedelta
) -> tuple[dict[Key, Instance], list[Event], list[Instance]]:
    """One evaluation applied to the state: (new state, events, instances that changed or were evaluated).

    Instances of rules not in ``evaluated`` are left as they are."""
    state = dict(instances)
    events: list[Event] = []
    touched: list[Instance] = []

    def move(inst: Instance, to: str) -> None:
        events.append(Event(now, dataclasses.replace(inst), inst.state, to))
        inst.state = to

    for rule in evaluated:
        if rule.failed:
            continue
        for fp, (labels, notes, values) in rule.alerts.items():
            inst = state.get((rule.rule_uid, fp))
            if inst is None or inst.state in (NORMAL, RESOLVED):
                previous = inst.state if inst else NORMAL
                inst = Instance(rule.rule_uid, rule.rule_title, fp, labels, notes, values, previous, now)
                state[inst.key] = inst
                if rule.pending_for <= timedelta(0):
                    inst.fired_at = now
                    move(inst, FIRING)
                else:
                    move(inst, PENDING)
            else:
                inst.labels, inst.annotations, inst.values = labels, notes, values
                if inst.state == PENDING and now - inst.active_at >= rule.pending_for:
                    inst.fired_at = now
                    move(inst, FIRING)
            inst.evaluated_at = now
            touched.append(inst)
        for key, inst in list(state.items()):
            if key[0] != rule.rule_uid or key[1] in rule.alerts:
                continue
            if inst.state == PENDING:
                move(inst, NORMAL)
            elif inst.state == FIRING:
                inst.resolved_at = now
                move(inst, RESOLVED)
            elif inst.state == RESOLVED:
                delivered = (
                    inst.sent_at is not None and inst.resolved_at is not None and inst.sent_at >= inst.resolved_at
                )
                if delivered and now - inst.resolved_at >= resolved_resend:
                    inst.state = NORMAL  # no longer re-sent: not a change of the alert itself, no event
            inst.evaluated_at = now
            touched.append(inst)
            if inst.state == NORMAL:
                del state[key]
    return state, events, touched


STATE_COLUMNS = [
    "rule_uid", "fingerprint", "rule_title", "labels", "annotations", "values", "state", "active_at", "fired_at",
    "resolved_at", "evaluated_at", "sent_at", "version",
]  # fmt: skip
EVENT_COLUMNS = [
    "at", "rule_uid", "rule_title", "fingerprint", "labels", "from_state", "to_state", "values", "summary",
]  # fmt: skip


class AlertStore:
    """The state and the history in ClickHouse (plantwatch/sql/060_alert_state.sql, 070_alert_events.sql)."""

    def __init__(self, settings: Settings, client: Client) -> None:
        self.client = client
        self.state_table = settings.clickhouse.alert_state_table
        self.events_table = settings.clickhouse.alert_events_table

    def load(self) -> dict[Key, Instance]:
        """Every instance that is not normal, as last saved."""
        rows = self.client.query(
            "SELECT * EXCEPT version FROM {table:Identifier} FINAL WHERE state != {normal:String}",
            parameters={"table": self.state_table, "normal": NORMAL},
        ).named_results()
        out = {}
        for row in rows:
            row = {k: _utc(v) if isinstance(v, datetime) else v for k, v in row.items()}
            inst = Instance(**row)
            out[inst.key] = inst
        return out

    def save(self, instances: list[Instance], events: list[Event]) -> None:
        """The events first, then the state (a crash in between repeats a change in the history, never loses it)."""
        if events:
            rows = [
                [e.at, e.instance.rule_uid, e.instance.rule_title, e.instance.fingerprint, e.instance.labels,
                 e.from_state, e.to_state, e.instance.values, e.instance.annotations.get("summary", "")]
                for e in events
            ]  # fmt: skip
            self.client.insert(self.events_table, rows, column_names=EVENT_COLUMNS)
        if instances:
            version = time.time_ns()
            rows = [
                [i.rule_uid, i.fingerprint, i.rule_title, i.labels, i.annotations, i.values, i.state, i.active_at,
                 i.fired_at, i.resolved_at, i.evaluated_at or i.active_at, i.sent_at, version]
                for i in instances
            ]  # fmt: skip
            self.client.insert(self.state_table, rows, column_names=STATE_COLUMNS)


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
