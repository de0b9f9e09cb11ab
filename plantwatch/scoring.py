"""Detection quality: the dbt marts' flags and alerts scored against the ground-truth fault labels.

Works on any database holding readings, fault_labels and the dbt marts (a simulator run, a replayed CSV with a
label column). The SQL is dbt's: the analyses in dbt_project/analyses/scoring/ (dbt resolves the models they
read); this module runs them with their values as query parameters and turns counts into rates:

- per reading, per category (machine anomalies vs sensor faults): precision, recall, F1 and false-alarm rate
  (FP / (FP + TN)), and recall per fault kind; readings just around a label (one window before, the grace after)
  are left out of the counts;
- per episode: a labelled fault is detected when a flag of its category overlaps it (grace included), delay from
  its start to the end of the first flag's window; an alert is a true positive when it overlaps a label of its
  category; precision, recall, F1 and false alarms per machine-hour;
- separation: machine anomaly flags raised during a sensor fault (must be 0).

A replayed export (labelled rows of real machines) is scored by :func:`score_instants` instead: per row (one instant
of one machine, from the end of its healthy period on) F1, false-alarm rate (FP / (FP + TN)) and missed-alarm rate
(FN / (FN + TP)), pooled over machines; per labelled episode, detected or not and the delay; and the false-alarm
episodes (machine alerts overlapping no label) an engineer would have been called out for.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from plantwatch import warehouse

if TYPE_CHECKING:
    from plantwatch.transform import Transformer

CATEGORIES = ("machine", "sensor")


@dataclass
class Rates:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_alarm_rate(self) -> float:
        return self.fp / (self.fp + self.tn) if self.fp + self.tn else float("nan")

    def __add__(self, other: Rates) -> Rates:
        return Rates(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)


@dataclass
class Episode:
    run_id: str
    machine_id: str
    category: str
    fault_kind: str
    start_time: datetime
    end_time: datetime
    detected: bool
    delay_s: float
    cross_flags: int


@dataclass
class DetectionScore:
    readings: dict[str, Rates]  # per category
    reading_recall_by_kind: dict[str, Rates]  # per fault kind: tp, fn
    episodes: list[Episode]
    alerts_true: dict[str, int]  # per category
    alerts_false: dict[str, int]
    machine_hours: float
    cross_readings: int = 0
    excluded_readings: int = 0
    alert_false_kinds: dict[str, int] = field(default_factory=dict)

    @property
    def overall_readings(self) -> Rates:
        return self.readings.get("machine", Rates()) + self.readings.get("sensor", Rates())

    def episode_recall(self, category: str | None = None) -> float:
        chosen = [e for e in self.episodes if category in (None, e.category)]
        return sum(e.detected for e in chosen) / len(chosen) if chosen else float("nan")

    def episode_precision(self, category: str | None = None) -> float:
        cats = [category] if category else list(CATEGORIES)
        true = sum(self.alerts_true.get(c, 0) for c in cats)
        false = sum(self.alerts_false.get(c, 0) for c in cats)
        return true / (true + false) if true + false else float("nan")

    def episode_f1(self, category: str | None = None) -> float:
        p, r = self.episode_precision(category), self.episode_recall(category)
        return 2 * p * r / (p + r) if p + r else 0.0

    def median_delay_s(self, kind: str | None = None) -> float:
        delays = [e.delay_s for e in self.episodes if e.detected and kind in (None, e.fault_kind)]
        return statistics.median(delays) if delays else float("nan")

    @property
    def cross_flags(self) -> int:
        return sum(e.cross_flags for e in self.episodes)


@dataclass
class LabelledEpisode:
    machine_id: str
    fault_kind: str
    start_time: datetime
    end_time: datetime
    detected: bool
    delay_s: float


@dataclass
class FalseAlarm:
    machine_id: str
    started_at: datetime
    last_flag_at: datetime
    kinds: list[str]


@dataclass
class InstantScore:
    """A replayed export's detection score (see the module docstring)."""

    per_machine: dict[str, Rates]
    episodes: list[LabelledEpisode]
    false_alarms: list[FalseAlarm]

    @property
    def rows(self) -> Rates:
        return sum(self.per_machine.values(), Rates())

    @property
    def missed_alarm_rate(self) -> float:
        rows = self.rows
        return rows.fn / (rows.fn + rows.tp) if rows.fn + rows.tp else float("nan")

    @property
    def hits(self) -> int:
        return sum(e.detected for e in self.episodes)

    def median_delay_s(self) -> float:
        delays = [e.delay_s for e in self.episodes if e.detected]
        return statistics.median(delays) if delays else float("nan")


def _query(transformer: Transformer, name: str, parameters: dict[str, object]) -> list[tuple]:
    sql = transformer.analyses("scoring")[f"score_{name}"]
    return warehouse.client(transformer.settings).query(sql, parameters=parameters).result_rows


def score_instants(transformer: Transformer, scored_from: dict[str, datetime]) -> InstantScore:
    """Score each machine's rows from scored_from[machine] on (the end of its healthy period) against its labels."""
    parameters = {"machines": list(scored_from), "scored_from": list(scored_from.values())}

    def rows(name: str) -> list[tuple]:
        return _query(transformer, name, parameters)

    per_machine = {machine: Rates(tp, fp, fn, tn) for machine, tp, fp, fn, tn in rows("instants")}
    episodes = [LabelledEpisode(*row) for row in rows("labelled_episodes")]
    false_alarms = [FalseAlarm(*row) for row in rows("false_alarm_episodes")]
    return InstantScore(per_machine, episodes, false_alarms)


def instant_report(result: InstantScore) -> str:
    """A plain-text report of a replayed export's score."""
    r = result.rows
    lines = [
        f"per row ({r.tp + r.fp + r.fn + r.tn:,} rows after the healthy periods of {len(result.per_machine)} "
        f"machines): F1 {r.f1:.3f}  false-alarm rate {r.false_alarm_rate:.1%}  missed-alarm rate "
        f"{result.missed_alarm_rate:.1%}  (precision {r.precision:.3f}, recall {r.recall:.3f}; "
        f"TP {r.tp} FP {r.fp} FN {r.fn} TN {r.tn})",
        f"per episode: {result.hits} of {len(result.episodes)} labelled episodes detected, median delay "
        f"{result.median_delay_s():.0f} s; {len(result.false_alarms)} false-alarm episodes",
    ]
    kinds: dict[str, int] = {}
    for alarm in result.false_alarms:
        for kind in alarm.kinds:
            kinds[kind] = kinds.get(kind, 0) + 1
    if kinds:
        lines.append("  false-alarm episodes by flag kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    missed = [e for e in result.episodes if not e.detected]
    for episode in missed[:10]:
        lines.append(f"  missed: {episode.machine_id} {episode.start_time:%Y-%m-%d %H:%M:%S} - "
                     f"{episode.end_time:%H:%M:%S}")  # fmt: skip
    return "\n".join(lines)


def score(
    transformer: Transformer,
    run_ids: list[str] | None = None,
    *,
    grace_seconds: int = 120,
    window_seconds: int = 10,
    include_unlabelled_machines: bool = True,
) -> DetectionScore:
    """Score the database's flags and alerts against its labels (of run_ids, or all)."""
    values = {
        "run_ids": run_ids or [],
        "include_unlabelled_machines": include_unlabelled_machines,
        "grace_seconds": grace_seconds,
        "window_seconds": window_seconds,
    }
    readings: dict[str, Rates] = {c: Rates() for c in CATEGORIES}
    by_kind: dict[str, Rates] = {}
    cross = excluded = 0
    for category, kind, tp, fp, fn, tn, skipped, crossed in _query(transformer, "readings", values):
        readings[category] = readings[category] + Rates(tp, fp, fn, tn)
        if kind:
            by_kind[kind] = by_kind.get(kind, Rates()) + Rates(tp=tp, fn=fn)
        cross += crossed
        excluded += skipped
    episodes = [Episode(*row) for row in _query(transformer, "episodes", values)]
    alerts_true = dict.fromkeys(CATEGORIES, 0)
    alerts_false = dict.fromkeys(CATEGORIES, 0)
    false_kinds: dict[str, int] = {}
    for _, _, category, kind, _, true_positive in _query(transformer, "alerts", values):
        (alerts_true if true_positive else alerts_false)[category] += 1
        if not true_positive:
            false_kinds[kind] = false_kinds.get(kind, 0) + 1
    [(hours,)] = _query(transformer, "machine_hours", {})
    return DetectionScore(readings, by_kind, episodes, alerts_true, alerts_false, float(hours or 0), cross, excluded,
                          false_kinds)  # fmt: skip


def report(result: DetectionScore) -> str:
    """A plain-text report of a score."""
    lines = ["per reading        precision  recall     F1  false-alarm rate      TP      FP      FN        TN"]
    for name, r in [*result.readings.items(), ("overall", result.overall_readings)]:
        lines.append(f"  {name:<16} {r.precision:9.3f} {r.recall:7.3f} {r.f1:6.3f} {r.false_alarm_rate:17.5f} "
                     f"{r.tp:7d} {r.fp:7d} {r.fn:7d} {r.tn:9d}")  # fmt: skip
    lines.append(f"  (left out around labels: {result.excluded_readings} readings)")
    lines.append("per fault kind     reading recall  episodes detected  median delay (s)")
    for kind in sorted({e.fault_kind for e in result.episodes}):
        chosen = [e for e in result.episodes if e.fault_kind == kind]
        recall = result.reading_recall_by_kind.get(kind, Rates()).recall
        lines.append(f"  {kind:<16} {recall:14.3f}  {sum(e.detected for e in chosen):>8d} / {len(chosen):<8d}"
                     f"{result.median_delay_s(kind):16.1f}")  # fmt: skip
    lines.append("per episode        precision  recall     F1  false alarms  false alarms / machine-hour")
    for name in [*CATEGORIES, None]:
        false = sum(result.alerts_false.get(c, 0) for c in ([name] if name else CATEGORIES))
        rate = false / result.machine_hours if result.machine_hours else float("nan")
        p, r, f1 = result.episode_precision(name), result.episode_recall(name), result.episode_f1(name)
        lines.append(f"  {name or 'overall':<16} {p:9.3f} {r:7.3f} {f1:6.3f} {false:13d} {rate:28.3f}")
    if result.alert_false_kinds:
        lines.append(
            "  false alerts by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(result.alert_false_kinds.items()))
        )
    lines.append(f"median detection delay: {result.median_delay_s():.1f} s (event time, fault start to first flag)")
    lines.append(f"sensor faults raised as machine anomalies: {result.cross_flags} flags, "
                 f"{result.cross_readings} readings")  # fmt: skip
    return "\n".join(lines)
