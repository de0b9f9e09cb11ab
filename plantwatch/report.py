"""A PNG for people who would rather look than read: one machine's sensors with the flags and injected faults."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from plantwatch import warehouse
from plantwatch.settings import Settings

COLOURS = {"machine": "tab:red", "sensor": "tab:orange"}
NOTIFIED = {"firing": "darkred", "resolved": "darkgreen"}


def _query(settings: Settings, name: str, machine: str) -> list[tuple]:
    sql = warehouse.query_sql(name)
    return warehouse.client(settings).query(sql, parameters={"machine": machine}).result_rows


def plot_machine(
    settings: Settings, machine: str, out: Path, notifications: list[tuple[datetime, str, str]] | None = None
) -> Path:
    """One panel per sensor: the readings, machine-anomaly flags (red) and sensor-fault flags (orange) as bands,
    and the injected faults (ground truth) as a grey band. ``notifications`` (time, firing or resolved, alert
    name) of the machine are marked as vertical lines: when each went out."""
    from matplotlib.figure import Figure  # heavy: imported only when a report is drawn

    readings = _query(settings, "machine_readings", machine)
    flags = _query(settings, "machine_flags", machine)
    labels = _query(settings, "machine_labels", machine)
    sensors = sorted({row[0] for row in readings})
    fig = Figure(figsize=(11, 1.7 * len(sensors) + 1))
    axes = fig.subplots(len(sensors), 1, sharex=True, squeeze=False)
    for ax, sensor in zip(axes[:, 0], sensors, strict=True):
        rows = [r for r in readings if r[0] == sensor]
        ax.plot([r[3] for r in rows], [r[4] for r in rows], lw=0.8, color="tab:blue")
        ax.set_ylabel(f"{sensor}\n[{rows[0][2]}]", fontsize=8)
        for start, end, sensor_ids in labels:
            if not sensor_ids or sensor in sensor_ids:
                ax.axvspan(start, end, color="grey", alpha=0.2, lw=0)
        for category, flag_sensor, _kind, start, end in flags:
            if flag_sensor in ("", sensor):
                ax.axvspan(start, end, color=COLOURS[category], alpha=0.35, lw=0)
        for at, status, _name in notifications or []:
            ax.axvline(at, color=NOTIFIED.get(status, "black"), ls="--", lw=1.2)
    for at, status, name in notifications or []:
        axes[0, 0].annotate(
            f"{name} {status}", (at, 1.0), xycoords=("data", "axes fraction"), rotation=90, fontsize=7,
            va="top", ha="right", color=NOTIFIED.get(status, "black"),
        )  # fmt: skip
    kinds = sorted({f"{f[0]}:{f[2]}" for f in flags}) or ["none"]
    marks = ", dashed = notification sent (red firing, green resolved)" if notifications else ""
    fig.suptitle(
        f"{machine}: grey = injected fault, red = machine anomaly, orange = sensor fault{marks}\n"
        f"flags: {', '.join(kinds)}",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return out
