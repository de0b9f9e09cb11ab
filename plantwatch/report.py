"""A PNG for people who would rather look than read: one machine's sensors with the flags and injected faults."""

from __future__ import annotations

from pathlib import Path

from plantwatch import warehouse
from plantwatch.settings import Settings

QUERIES = Path(__file__).parent / "sql" / "queries"
COLOURS = {"machine": "tab:red", "sensor": "tab:orange"}


def _query(settings: Settings, name: str, machine: str) -> list[tuple]:
    sql = (QUERIES / name).read_text()
    return warehouse.client(settings).query(sql, parameters={"machine": machine}).result_rows


def plot_machine(settings: Settings, machine: str, out: Path) -> Path:
    """One panel per sensor: the readings, machine-anomaly flags (red) and sensor-fault flags (orange) as bands,
    and the injected faults (ground truth) as a grey band."""
    from matplotlib.figure import Figure  # heavy: imported only when a report is drawn

    readings = _query(settings, "machine_readings.sql", machine)
    flags = _query(settings, "machine_flags.sql", machine)
    labels = _query(settings, "machine_labels.sql", machine)
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
    kinds = sorted({f"{f[0]}:{f[2]}" for f in flags}) or ["none"]
    fig.suptitle(
        f"{machine}: grey = injected fault, red = machine anomaly, orange = sensor fault\nflags: {', '.join(kinds)}",
        fontsize=10,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    return out
