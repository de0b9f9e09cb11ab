"""`plantwatch alerts`: evaluate Grafana's alert rule file against ClickHouse, without Grafana.

The rules live once, in Grafana's file-provisioning YAML (grafana/provisioning/alerting/rules.yaml). This module
reads that file and evaluates each rule the way Grafana's expression engine does for the shapes we use:

- the datasource query (ClickHouse SQL, ``model.rawSql``) returns rows; string columns are labels, the one numeric
  column is the value, an optional DateTime column orders the values into a time series per label set;
- ``reduce`` turns each series into one number (last, mean, min, max, sum, count, median; strict NaN handling);
- ``threshold`` turns each number into 1 (firing) or 0;
- no rows means NoData and an error means Error, each resolved by the rule's ``noDataState``/``execErrState``.

Each label set whose condition is 1 is a firing alert instance, with the rule's labels and rendered annotations.

One-shot (`plantwatch alerts`): one evaluation, printed; a rule's ``for`` is shown but not applied, and
``--webhook URL`` posts the firing alerts as JSON in the shape of Grafana's webhook contact point.

Continuous (`plantwatch alerts --every 15s`, :class:`Evaluator`): each label set's state (normal, pending for
``for``, firing, resolved) is kept across evaluations and restarts in ClickHouse (plantwatch/alert_state.py), every
change goes to the history table ``alert_events``, and firing and resolved alerts are pushed to Alertmanager
(startsAt/endsAt, the labels plus ``database``, annotations with the summary, the runbook and the machine's
dashboard), which notifies, groups, inhibits and silences (alertmanager/alertmanager.yml). Firing alerts are re-sent
every evaluation and resolved ones for a while after, so an Alertmanager that was down or restarted loses nothing.
"""

from __future__ import annotations

import hashlib
import math
import re
import signal
import statistics
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import yaml
from clickhouse_connect.driver.client import Client
from rich.console import Console
from rich.table import Table

from plantwatch import warehouse
from plantwatch.alert_state import FIRING, RESOLVED, AlertStore, Event, Firing, Instance, Key, advance, fingerprint
from plantwatch.alertmanager import AlertmanagerError, post_alerts, rfc3339
from plantwatch.settings import Settings, get_settings

EXPRESSION_DATASOURCE = "__expr__"
NUMERIC_TYPE = re.compile(r"^(Nullable\()?(U?Int\d+|Float\d+|Decimal)")
TIME_TYPE = re.compile(r"^(Nullable\()?DateTime")
TEMPLATE_FIELD = re.compile(r"\{\{\s*\.(Labels\.(\w+)|Values\.(\w+)\.Value|Value)\s*\}\}")

REDUCERS: dict[str, Callable[[list[float]], float]] = {
    "last": lambda v: v[-1] if v else math.nan,
    "mean": lambda v: statistics.fmean(v) if v else math.nan,
    "min": lambda v: min(v) if v else math.nan,
    "max": lambda v: max(v) if v else math.nan,
    "sum": lambda v: math.fsum(v),
    "count": lambda v: float(len(v)),
    "median": lambda v: statistics.median(v) if v else math.nan,
}
EVALUATORS: dict[str, Callable[[float, list[float]], bool]] = {
    "gt": lambda x, p: x > p[0],
    "lt": lambda x, p: x < p[0],
    "eq": lambda x, p: x == p[0],
    "ne": lambda x, p: x != p[0],
    "gte": lambda x, p: x >= p[0],
    "lte": lambda x, p: x <= p[0],
    "within_range": lambda x, p: p[0] < x < p[1],
    "outside_range": lambda x, p: x < p[0] or x > p[1],
    "within_range_included": lambda x, p: p[0] <= x <= p[1],
    "outside_range_included": lambda x, p: x <= p[0] or x >= p[1],
}


class RuleFileError(ValueError):
    """The rule file uses something this evaluator does not implement (or is malformed)."""


@dataclass(frozen=True)
class Rule:
    uid: str
    title: str
    group: str
    folder: str
    condition: str
    data: list[dict[str, Any]]
    no_data_state: str
    exec_err_state: str
    pending_for: str
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass
class Alert:
    """One firing alert instance."""

    rule: Rule
    labels: dict[str, str]
    values: dict[str, float]
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass
class RuleResult:
    rule: Rule
    state: str  # "firing", "normal", "nodata" or "error"
    alerts: list[Alert] = field(default_factory=list)
    error: str = ""


def load_rules(path: Path) -> list[Rule]:
    """The rules of a Grafana alert-rule provisioning file, in file order."""
    document = yaml.safe_load(path.read_text())
    if document.get("apiVersion") != 1:
        raise RuleFileError(f"{path}: apiVersion 1 expected")
    rules = []
    for group in document.get("groups", []):
        for rule in group["rules"]:
            rules.append(
                Rule(
                    uid=rule["uid"],
                    title=rule["title"],
                    group=group["name"],
                    folder=group["folder"],
                    condition=rule["condition"],
                    data=rule["data"],
                    no_data_state=rule.get("noDataState", "NoData"),
                    exec_err_state=rule.get("execErrState", "Error"),
                    pending_for=str(rule.get("for", "0s")),
                    labels={k: str(v) for k, v in (rule.get("labels") or {}).items()},
                    annotations={k: str(v) for k, v in (rule.get("annotations") or {}).items()},
                )
            )
    return rules


# A frame is a list of (labels, values): a time series per label set from a query, one number each after reduce.
Frame = list[tuple[dict[str, str], list[float]]]


def _query_frame(client: Client, sql: str) -> Frame:
    result = client.query(sql)
    if not result.result_rows:
        return []
    types = [t.name for t in result.column_types]
    numeric = [i for i, t in enumerate(types) if NUMERIC_TYPE.match(t)]
    time_columns = [i for i, t in enumerate(types) if TIME_TYPE.match(t)]
    if len(numeric) != 1:
        raise RuleFileError(f"the query must return exactly one numeric column, got {len(numeric)}: {types}")
    label_columns = [i for i in range(len(types)) if i not in numeric and i not in time_columns]
    rows = result.result_rows
    if time_columns:
        rows = sorted(rows, key=lambda row: row[time_columns[0]])
    series: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for row in rows:
        labels = tuple((result.column_names[i], str(row[i])) for i in label_columns)
        value = row[numeric[0]]
        series.setdefault(labels, []).append(math.nan if value is None else float(value))
    return [(dict(labels), values) for labels, values in series.items()]


def _reduce(frame: Frame, reducer: str) -> Frame:
    if reducer not in REDUCERS:
        raise RuleFileError(f"reducer {reducer!r} not implemented")
    reduce = REDUCERS[reducer]
    # Grafana's default (strict) mode: any NaN in the series makes the result NaN.
    return [(labels, [math.nan if any(map(math.isnan, v)) else reduce(v)]) for labels, v in frame]


def _threshold(frame: Frame, conditions: list[dict[str, Any]]) -> Frame:
    if len(conditions) != 1:
        raise RuleFileError("a threshold expression with exactly one condition expected")
    evaluator = conditions[0]["evaluator"]
    check = EVALUATORS.get(evaluator["type"])
    if check is None:
        raise RuleFileError(f"threshold type {evaluator['type']!r} not implemented")
    params = [float(p) for p in evaluator["params"]]
    out = []
    for labels, values in frame:
        if len(values) != 1:
            raise RuleFileError("a threshold needs one number per series: reduce the query first")
        out.append((labels, [float(not math.isnan(values[0]) and check(values[0], params))]))
    return out


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def render(template: str, labels: dict[str, str], values: dict[str, float]) -> str:
    """Fill Grafana annotation fields ``{{ .Labels.x }}``, ``{{ .Values.B.Value }}`` and ``{{ .Value }}``."""

    def field_value(match: re.Match[str]) -> str:
        if match.group(2) is not None:
            return labels.get(match.group(2), "")
        if match.group(3) is not None:
            return _number(values.get(match.group(3), math.nan))
        return ", ".join(f"{ref}={_number(v)}" for ref, v in values.items())

    return TEMPLATE_FIELD.sub(field_value, template)


def _number(value: float) -> str:
    return f"{value:.6g}"


def evaluate(rule: Rule, client: Client) -> RuleResult:
    """One evaluation of one rule: which label sets fire."""
    frames: dict[str, Frame] = {}
    try:
        for item in rule.data:
            model = item["model"]
            ref = item["refId"]
            if item["datasourceUid"] != EXPRESSION_DATASOURCE:
                frames[ref] = _query_frame(client, model["rawSql"])
                if not frames[ref]:
                    return _no_data(rule)
            elif model["type"] == "reduce":
                frames[ref] = _reduce(frames[model["expression"]], model["reducer"])
            elif model["type"] == "threshold":
                frames[ref] = _threshold(frames[model["expression"]], model["conditions"])
            else:
                raise RuleFileError(f"expression type {model['type']!r} not implemented")
    except RuleFileError:
        raise
    except Exception as exc:  # a query error is the rule's Error state, as in Grafana
        return _error(rule, str(exc).strip().splitlines()[0][:300])
    alerts = []
    by_ref = {ref: {_key(labels): values for labels, values in frame} for ref, frame in frames.items()}
    for labels, values in frames[rule.condition]:
        if values[0] != 1.0:
            continue
        numbers = {
            ref: series[_key(labels)][-1]
            for ref, series in by_ref.items()
            if ref != rule.condition and _key(labels) in series and len(series[_key(labels)]) == 1
        }
        all_labels = {"alertname": rule.title, "grafana_folder": rule.folder, **rule.labels, **labels}
        annotations = {k: render(v, all_labels, numbers) for k, v in rule.annotations.items()}
        alerts.append(Alert(rule, all_labels, numbers, annotations))
    return RuleResult(rule, "firing" if alerts else "normal", alerts)


def _no_data(rule: Rule) -> RuleResult:
    if rule.no_data_state == "Alerting":
        labels = {"alertname": rule.title, "grafana_folder": rule.folder, **rule.labels}
        annotations = {k: render(v, labels, {}) for k, v in rule.annotations.items()}
        return RuleResult(rule, "firing", [Alert(rule, labels, {}, annotations)], "no data")
    return RuleResult(rule, "normal" if rule.no_data_state == "OK" else "nodata")


def _error(rule: Rule, message: str) -> RuleResult:
    if rule.exec_err_state == "Alerting":
        labels = {"alertname": rule.title, "grafana_folder": rule.folder, **rule.labels}
        return RuleResult(rule, "firing", [Alert(rule, labels, {}, {"summary": message})], message)
    return RuleResult(rule, "normal" if rule.exec_err_state == "OK" else "error", error=message)


def evaluate_rules(settings: Settings, rules_file: Path | None = None) -> list[RuleResult]:
    """Evaluate every rule of the rule file against the settings' ClickHouse database, as Grafana's user: a rule
    reading a table Grafana may not read fails here as it would there."""
    client = warehouse.client(settings, role="grafana")
    return [evaluate(rule, client) for rule in load_rules(rules_file or settings.alerting.rules_file)]


def webhook_payload(results: list[RuleResult], now: datetime | None = None) -> dict[str, Any]:
    """The firing alerts in the shape of Grafana's webhook contact point (Alertmanager's webhook, plus title)."""
    starts = (now or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
    alerts = [alert for result in results for alert in result.alerts]
    items = [
        {
            "status": "firing",
            "labels": alert.labels,
            "annotations": alert.annotations,
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": hashlib.sha256(orjson.dumps(_key(alert.labels))).hexdigest()[:16],
            "values": alert.values,
        }
        for alert in alerts
    ]
    common = {k: v for k, v in alerts[0].labels.items() if all(a.labels.get(k) == v for a in alerts)} if alerts else {}
    return {
        "receiver": "plantwatch-alerts",
        "status": "firing" if alerts else "resolved",
        "orgId": 1,
        "alerts": items,
        "groupLabels": {},
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "",
        "version": "1",
        "groupKey": "plantwatch-alerts",
        "truncatedAlerts": 0,
        "title": f"[FIRING:{len(items)}] plantwatch",
        "state": "alerting" if alerts else "ok",
        "message": "\n".join(a["annotations"].get("summary", a["labels"]["alertname"]) for a in items),
    }


def post_webhook(url: str, payload: dict[str, Any], timeout: float) -> int:
    """POST the payload as JSON; returns the HTTP status (raises on connection errors and 4xx/5xx)."""
    request = urllib.request.Request(
        url, data=orjson.dumps(payload), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


def results_table(results: list[RuleResult]) -> Table:
    table = Table(title="alert rules (one evaluation; `for` not applied)", title_justify="left")
    for column in ("rule", "state", "for", "labels", "values", "summary"):
        table.add_column(column, overflow="fold")
    colours = {"firing": "red", "normal": "green", "nodata": "yellow", "error": "magenta"}
    for result in results:
        state = f"[{colours[result.state]}]{result.state}[/]"
        if not result.alerts:
            table.add_row(result.rule.title, state, result.rule.pending_for, "", "", result.error)
        for alert in result.alerts:
            own = {k: v for k, v in alert.labels.items() if k not in ("alertname", "grafana_folder")}
            labels = ", ".join(f"{k}={v}" for k, v in own.items())
            values = ", ".join(f"{ref}={_number(v)}" for ref, v in alert.values.items())
            summary = alert.annotations.get("summary", "")
            table.add_row(result.rule.title, state, result.rule.pending_for, labels, values, summary)
    return table


DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """A Grafana/Prometheus duration ('0s', '90s', '2m', '1h30m') or plain seconds."""
    text = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    parts = DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise RuleFileError(f"{text!r} is not a duration (e.g. 30s, 2m, 1h30m)")
    return timedelta(seconds=sum(float(n) * DURATION_UNITS[u] for n, u in parts))


@dataclass
class Evaluation:
    """One evaluation of the continuous evaluator."""

    at: datetime
    results: list[RuleResult]
    events: list[Event]
    pushed: int = 0  # alerts Alertmanager accepted (firing and resolved)
    push_error: str = ""
    save_error: str = ""

    @property
    def firing(self) -> int:
        return sum(e.to_state == FIRING for e in self.events)


class Evaluator:
    """`plantwatch alerts --every`: the rule file evaluated again and again, with state, history and Alertmanager.

    ``uids`` limits the rules evaluated and ``rules_client`` runs their queries elsewhere (the demo's replay);
    ``alertmanager_url`` None pushes nowhere (state and history only). Evaluate with :meth:`evaluate` (``now``
    may be a simulated time: it dates pending, firing, resolution and the history; Alertmanager's validity of a
    firing alert is always counted from the wall clock).
    """

    def __init__(
        self,
        settings: Settings,
        rules_file: Path | None = None,
        alertmanager_url: str | None = None,
        uids: set[str] | None = None,
        interval: float = 15.0,
        rules_client: Client | None = None,
        extra_labels: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.rules = [r for r in load_rules(rules_file or settings.alerting.rules_file) if not uids or r.uid in uids]
        self.pending_for = {rule.uid: parse_duration(rule.pending_for) for rule in self.rules}
        self.alertmanager_url = alertmanager_url
        # Like Prometheus: a firing alert is valid for 4 evaluation intervals (at least 4 minutes) unless re-sent,
        # so Alertmanager resolves it by itself only if the evaluator is gone that long.
        self.valid_for = timedelta(seconds=4 * max(interval, 60.0))
        self.instances: dict[Key, Instance] | None = None
        self.unsaved: tuple[list[Instance], list[Event]] = ([], [])
        self._rules_client = rules_client  # the rules' queries on another client (the demo's replay)
        self.extra_labels = extra_labels or {}  # put on every alert (the demo's run)
        self._reader: Client | None = None
        self._store: AlertStore | None = None

    def _clients(self) -> tuple[Client, AlertStore]:
        if self._reader is None or self._store is None:
            # Rules read as Grafana's user (what it may not read fails here too); state is the evaluator's own,
            # a derived table like the dbt models, written as the transform user.
            self._reader = self._rules_client or warehouse.client(self.settings, role="grafana")
            self._store = AlertStore(self.settings, warehouse.client(self.settings, role="transform"))
        return self._reader, self._store

    def evaluate(self, now: datetime | None = None) -> Evaluation:
        now = now or datetime.now(UTC)
        try:
            reader, store = self._clients()
            if self.instances is None:
                self.instances = store.load()
        except Exception as exc:  # ClickHouse down: nothing evaluated, nothing changed; the next call retries
            self._reader = self._store = None
            return Evaluation(now, [], [], push_error="", save_error=f"ClickHouse: {_first_line(exc)}")
        results = [evaluate(rule, reader) for rule in self.rules]
        found = [self._firing(result) for result in results]
        self.instances, events, touched = advance(
            self.instances, found, now, timedelta(seconds=self.settings.alerting.resolved_resend_seconds)
        )
        evaluation = Evaluation(now, results, events)
        self._push(evaluation, touched)
        self._save(evaluation, touched, events, store)
        return evaluation

    def _firing(self, result: RuleResult) -> Firing:
        rule = result.rule
        firing = Firing(rule.uid, rule.title, self.pending_for[rule.uid], failed=result.state == "error")
        for alert in result.alerts:
            labels = {**alert.labels, "database": self.settings.clickhouse.database, **self.extra_labels}
            firing.alerts[fingerprint(labels)] = (labels, self._annotations(rule, alert), alert.values)
        return firing

    def _annotations(self, rule: Rule, alert: Alert) -> dict[str, str]:
        links = {"runbook_url": f"{self.settings.alerting.runbook_url}#{rule.uid}"}
        if machine := alert.labels.get("machine_id"):
            query = urllib.parse.urlencode({"var-machine": machine})
            links["dashboard_url"] = f"{self.settings.alerting.grafana_url}/d/pw-machine-detail/machine-detail?{query}"
        return {**alert.annotations, **links}

    def alertmanager_alerts(self, wall_now: datetime | None = None) -> list[tuple[Instance, dict[str, Any]]]:
        """What Alertmanager should hold now: the firing instances and the resolved ones still re-sent."""
        until = (wall_now or datetime.now(UTC)) + self.valid_for
        out = []
        for inst in (self.instances or {}).values():
            if inst.state not in (FIRING, RESOLVED) or inst.fired_at is None:
                continue
            ends = inst.resolved_at if inst.state == RESOLVED and inst.resolved_at else until
            out.append(
                (
                    inst,
                    {
                        "labels": inst.labels,
                        "annotations": inst.annotations,
                        "startsAt": rfc3339(inst.fired_at),
                        "endsAt": rfc3339(ends),
                        "generatorURL": f"{self.settings.alerting.grafana_url}/alerting/grafana/{inst.rule_uid}/view",
                    },
                )
            )
        return out

    def _push(self, evaluation: Evaluation, touched: list[Instance]) -> None:
        if not self.alertmanager_url:
            return
        batch = self.alertmanager_alerts()
        try:
            post_alerts(self.alertmanager_url, [body for _, body in batch], self.settings.alertmanager.timeout_seconds)
        except AlertmanagerError as exc:
            evaluation.push_error = str(exc)
            return
        sent_at = datetime.now(UTC)
        for inst, _ in batch:
            inst.sent_at = sent_at
            if inst not in touched:
                touched.append(inst)
        evaluation.pushed = len(batch)

    def _save(self, evaluation: Evaluation, touched: list[Instance], events: list[Event], store: AlertStore) -> None:
        instances, pending_events = self.unsaved
        keep = {id(i) for i in touched}
        instances = touched + [i for i in instances if id(i) not in keep]
        pending_events = pending_events + events
        try:
            store.save(instances, pending_events)
        except Exception as exc:  # kept, and written with the next evaluation's
            self.unsaved = (instances, pending_events)
            self._reader = self._store = None
            evaluation.save_error = f"ClickHouse: {_first_line(exc)}"
        else:
            self.unsaved = ([], [])


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def run_every(
    evaluator: Evaluator, seconds: float, stop: threading.Event, report: Callable[[Evaluation], None]
) -> None:
    """Evaluate every `seconds` (start to start) until `stop` is set."""
    while not stop.is_set():
        began = time.monotonic()
        report(evaluator.evaluate())
        stop.wait(max(0.0, seconds - (time.monotonic() - began)))


def print_evaluation(console: Console, evaluation: Evaluation) -> None:
    at = evaluation.at.astimezone(UTC).strftime("%H:%M:%S")
    for event in evaluation.events:
        colour = {"firing": "red", "resolved": "green", "pending": "yellow"}.get(event.to_state, "dim")
        console.print(f"{at} [{colour}]{event.describe()}[/]")
    errors = [f"{r.rule.title}: {r.error}" for r in evaluation.results if r.state == "error"]
    for problem in (*errors, evaluation.push_error, evaluation.save_error):
        if problem:
            console.print(f"{at} [magenta]{problem}[/]")


def alerts(
    webhook: Annotated[str | None, typer.Option(help="POST firing alerts to this URL (default: settings).")] = None,
    rules: Annotated[Path | None, typer.Option(help="Rule file (default: the Grafana provisioning file).")] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every", help="Keep evaluating (e.g. 15s): `for` applied, state and history kept, Alertmanager notifies."
        ),
    ] = None,
    alertmanager: Annotated[
        str | None, typer.Option("--alertmanager", help="Alertmanager's URL with --every (default: settings).")
    ] = None,
) -> None:
    """Evaluate the Grafana alert rules against ClickHouse and print what fires; exit 1 if a rule errors.

    With --every, evaluate continuously and push firing and resolved alerts to Alertmanager."""
    settings = get_settings()
    console = Console()
    if every is not None:
        try:
            seconds = parse_duration(every).total_seconds()
            evaluator = Evaluator(settings, rules, alertmanager or settings.alertmanager.url, interval=seconds)
        except (RuleFileError, OSError, KeyError) as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(2) from exc
        if seconds <= 0:
            console.print("[red]error:[/] --every must be positive")
            raise typer.Exit(2)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        console.print(
            f"evaluating {len(evaluator.rules)} rules every {every} on {settings.clickhouse.database}, "
            f"alerts to {evaluator.alertmanager_url}"
        )
        run_every(evaluator, seconds, stop, lambda evaluation: print_evaluation(console, evaluation))
        return
    try:
        results = evaluate_rules(settings, rules)
    except (RuleFileError, OSError, KeyError) as exc:
        console.print(f"[red]error:[/] rule file: {exc}")
        raise typer.Exit(2) from exc
    console.print(results_table(results))
    firing = [alert for result in results for alert in result.alerts]
    console.print(f"{len(firing)} alert(s) firing from {sum(r.state == 'firing' for r in results)} rule(s)")
    url = webhook or settings.alerting.webhook_url
    if url and firing:
        status = post_webhook(url, webhook_payload(results), settings.alerting.webhook_timeout_seconds)
        console.print(f"posted {len(firing)} alert(s) to {url} (HTTP {status})")
    if any(r.state == "error" for r in results):
        raise typer.Exit(1)
