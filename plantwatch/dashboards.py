"""Grafana dashboards as code: plant overview, machine detail and pipeline health.

``python -m plantwatch.dashboards`` writes them to grafana/dashboards/*.json, which Grafana's file provider loads
(grafana/provisioning/dashboards/plantwatch.yaml); a test checks the committed files match this code and the
dashboard JSON schema of Grafana 11.6. Panels query ClickHouse (the dbt marts, raw readings, dq_results) through
datasource ``plantwatch-clickhouse`` and the pipeline's own metrics through ``plantwatch-prometheus``.
Metric names are those of streams/metrics.py and producers/sdk_logger.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plantwatch.settings import PROJECT_ROOT

OUT_DIR = PROJECT_ROOT / "grafana" / "dashboards"
SCHEMA_VERSION = 41  # Grafana 11.6
CLICKHOUSE = {"type": "grafana-clickhouse-datasource", "uid": "plantwatch-clickhouse"}
PROMETHEUS = {"type": "prometheus", "uid": "plantwatch-prometheus"}
TABLE, TIME_SERIES = 1, 0  # the ClickHouse plugin's query formats (sqlutil.FormatQueryOption)
STATUS_COLOURS = {"ok": "green", "warning": "orange", "critical": "red", "stale": "purple"}
LATEST_DQ_RUN = "(suite, run_id) IN (SELECT suite, argMax(run_id, run_at) FROM dq_results GROUP BY suite)"

Json = dict[str, Any]


def sql(raw: str, fmt: int = TABLE, ref: str = "A") -> Json:
    return {
        "refId": ref,
        "datasource": CLICKHOUSE,
        "editorType": "sql",
        "format": fmt,
        "queryType": "timeSeries" if fmt == TIME_SERIES else "table",
        "rawSql": raw.strip(),
    }


def promql(expr: str, legend: str = "", ref: str = "A") -> Json:
    return {"refId": ref, "datasource": PROMETHEUS, "expr": expr, "legendFormat": legend or "__auto"}


def panel(kind: str, title: str, pos: tuple[int, int, int, int], targets: list[Json], **extra: Any) -> Json:
    x, y, w, h = pos
    datasource = targets[0]["datasource"]
    return {
        "type": kind,
        "title": title,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "datasource": datasource,
        "targets": targets,
        "fieldConfig": extra.pop("fieldConfig", {"defaults": {}, "overrides": []}),
        "options": extra.pop("options", {}),
        **extra,
    }


def override(names: list[str], **properties: Json) -> Json:
    """A field override. The 11.6 schema types matcher options and property values as objects, so overrides match
    with ``byNames`` (object options) and set only object-valued properties (colour, line style, cell options)."""
    return {
        "matcher": {"id": "byNames", "options": {"mode": "include", "names": names}},
        "properties": [{"id": key.replace("__", "."), "value": value} for key, value in properties.items()],
    }


def machine_links() -> list[Json]:
    url = "/d/pw-machine-detail/machine-detail?var-machine=${__data.fields.machine_id}&${__url_time_range}"
    # The schema types field links as dashboard links, hence the fields a data link does not need.
    return [
        {
            "type": "link",
            "title": "machine detail",
            "url": url,
            "icon": "dashboard",
            "tooltip": "open this machine's sensors",
            "tags": [],
            "asDropdown": False,
            "targetBlank": False,
            "includeVars": False,
            "keepTime": True,
        }
    ]


def status_mappings() -> list[Json]:
    return [
        {
            "type": "value",
            "options": {
                status: {"text": status.upper(), "color": colour, "index": i}
                for i, (status, colour) in enumerate(STATUS_COLOURS.items())
            },
        }
    ]


def dashboard(uid: str, title: str, description: str, panels: list[Json], **extra: Any) -> Json:
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    annotations = [
        {
            "name": "Annotations & Alerts",
            "builtIn": 1,
            "type": "dashboard",
            "datasource": {"type": "grafana", "uid": "-- Grafana --"},
            "enable": True,
            "hide": True,
            "iconColor": "rgba(0, 211, 255, 1)",
        },
        *extra.pop("annotations", []),
    ]
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["plantwatch"],
        "timezone": "utc",
        "editable": False,
        "graphTooltip": 1,
        "time": extra.pop("time", {"from": "now-1h", "to": "now"}),
        "refresh": "10s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "templating": {"list": extra.pop("variables", [])},
        "annotations": {"list": annotations},
        "links": [
            {
                "type": "dashboards",
                "title": "plantwatch",
                "tags": ["plantwatch"],
                "asDropdown": True,
                "icon": "external link",
                "tooltip": "the other plantwatch dashboards",
                "targetBlank": False,
                "includeVars": False,
                "keepTime": True,
            }
        ],
        "panels": panels,
    }


def query_variable(name: str, label: str, query: str, multi: bool = False) -> Json:
    return {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": CLICKHOUSE,
        "query": query,
        "definition": query,
        "refresh": 1,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
    }


def plant_overview() -> Json:
    lines = "line_id IN (${line:singlequote})"
    panels = [
        panel(
            "stat",
            "Machines by health",
            (0, 0, 12, 5),
            [
                sql(f"""
SELECT countIf(status = 'ok') AS ok, countIf(status = 'warning') AS warning,
       countIf(status = 'critical') AS critical, countIf(status = 'stale') AS stale
FROM machine_health WHERE {lines}""")
            ],
            fieldConfig={
                "defaults": {"unit": "none"},
                "overrides": [
                    override([status], color={"mode": "fixed", "fixedColor": colour})
                    for status, colour in STATUS_COLOURS.items()
                ],
            },
            options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
        ),
        panel(
            "stat",
            "Open alerts",
            (12, 0, 12, 5),
            [
                sql("""
SELECT countIf(category = 'machine') AS machine_anomalies, countIf(category = 'sensor') AS sensor_faults,
       countIf(severity = 'critical') AS critical
FROM alerts WHERE status = 'open'""")
            ],
            fieldConfig={
                "defaults": {
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
                    }
                },
                "overrides": [],
            },
            options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
        ),
        panel(
            "table",
            "Machines",
            (0, 5, 24, 9),
            [
                sql(f"""
SELECT machine_id, line_id, model, status, last_reading_at, open_alerts, open_sensor_faults
FROM machine_health WHERE {lines}
ORDER BY multiIf(status = 'critical', 0, status = 'warning', 1, status = 'stale', 2, 3), machine_id""")
            ],
            fieldConfig={
                "defaults": {"mappings": status_mappings(), "links": machine_links()},
                "overrides": [override(["status"], custom__cellOptions={"type": "color-background"})],
            },
        ),
        panel(
            "table",
            "Open alerts",
            (0, 14, 24, 9),
            [
                sql("""
SELECT started_at, machine_id, sensor_id, category, kind, severity, flag_count, round(max_score, 2) AS max_score,
       last_flag_at
FROM alerts WHERE status = 'open'
ORDER BY severity = 'critical' DESC, started_at DESC""")
            ],
            fieldConfig={"defaults": {"links": machine_links()}, "overrides": []},
        ),
        panel(
            "timeseries",
            "Anomaly flags by kind",
            (0, 23, 24, 8),
            [
                sql(
                    """
SELECT $__timeInterval(window_start) AS time, flag_kind, count() AS flags
FROM anomaly_flags WHERE $__timeFilter(window_start)
GROUP BY time, flag_kind ORDER BY time""",
                    TIME_SERIES,
                )
            ],
            fieldConfig={
                "defaults": {"custom": {"drawStyle": "bars", "stacking": {"mode": "normal"}}},
                "overrides": [],
            },
        ),
        panel(
            "table",
            "Alert history (plantwatch alerts --every: what fired, when it was notified and resolved)",
            (0, 31, 24, 9),
            [
                sql("""
SELECT started_at, rule_title AS rule, machine_id, sensor_id, severity, status, fired_at, resolved_at,
       pending_seconds, firing_seconds, summary
FROM alert_history WHERE $__timeFilter(started_at)
ORDER BY started_at DESC
LIMIT 500""")
            ],
            fieldConfig={"defaults": {"links": machine_links()}, "overrides": []},
        ),
    ]
    line = query_variable("line", "line", "SELECT DISTINCT line_id FROM machines ORDER BY line_id", multi=True)
    return dashboard(
        "pw-plant-overview",
        "Plant overview",
        "Every machine's health, the open alerts (machine anomalies and sensor faults) and the alert history.",
        panels,
        variables=[line],
    )


def sensor_band_sql() -> str:
    """A sensor's 1-minute means (the rolling_aggregates mart) inside a band from the 5-minute window before:
    its mean plus/minus 3 sigma. Minutes without a preceding window have no band (NULL, not 0)."""
    return """
SELECT m.window_start AS time, m.mean AS value, f.mean - 3 * f.stddev AS band_low, f.mean + 3 * f.stddev AS band_high
FROM
(
    SELECT window_start, mean
    FROM rolling_aggregates FINAL
    WHERE machine_id = '${machine}' AND sensor_id = '${sensor}' AND window_seconds = 60
      AND $__timeFilter(window_start)
) AS m
LEFT JOIN
(
    SELECT toDateTime(window_start + INTERVAL 5 MINUTE, 'UTC') AS follows, mean, stddev
    FROM rolling_aggregates FINAL
    WHERE machine_id = '${machine}' AND sensor_id = '${sensor}' AND window_seconds = 300
) AS f ON f.follows = toDateTime(toStartOfFiveMinutes(m.window_start), 'UTC')
ORDER BY time
SETTINGS join_use_nulls = 1"""


def flag_annotation(name: str, table: str, kind_column: str, colour: str) -> Json:
    text = (
        f"concat({kind_column}, ' (', severity, ')', if(sensor_id = '', '', concat(' on ', sensor_id)), "
        "', score ', toString(round(score, 2)))"
    )
    return {
        "name": name,
        "datasource": CLICKHOUSE,
        "enable": True,
        "iconColor": colour,
        "target": sql(f"""
SELECT window_start AS time, window_end AS timeEnd, {text} AS text, [{kind_column}, severity, sensor_id] AS tags
FROM {table}
WHERE machine_id = '${{machine}}' AND $__timeFilter(window_start)
ORDER BY time"""),
    }


def machine_detail() -> Json:
    panels = [
        panel(
            "timeseries",
            "${sensor}",
            (0, 0, 12, 8),
            [sql(sensor_band_sql(), TIME_SERIES)],
            repeat="sensor",
            repeatDirection="h",
            maxPerRow=2,
            fieldConfig={
                "defaults": {"custom": {"showPoints": "never"}},
                "overrides": [
                    override(
                        ["band_low", "band_high"],
                        color={"mode": "fixed", "fixedColor": "gray"},
                        custom__lineStyle={"fill": "dash", "dash": [6, 4]},
                    )
                ],
            },
        ),
        panel(
            "table",
            "Alerts of this machine",
            (0, 16, 24, 8),
            [
                sql("""
SELECT started_at, ended_at, status, category, kind, sensor_id, severity, flag_count, round(max_score, 2) AS max_score
FROM alerts WHERE machine_id = '${machine}'
ORDER BY status = 'open' DESC, started_at DESC""")
            ],
        ),
    ]
    machine = query_variable("machine", "machine", "SELECT machine_id FROM machines ORDER BY machine_id")
    sensor = query_variable(
        "sensor",
        "sensors",
        "SELECT DISTINCT sensor_id FROM rolling_aggregates WHERE machine_id = '${machine}' ORDER BY sensor_id",
        multi=True,
    )
    return dashboard(
        "pw-machine-detail",
        "Machine detail",
        "Each sensor of one machine: its 1-minute means in a band from the 5-minute window before (mean plus/minus "
        "3 sigma, from rolling_aggregates); "
        "anomaly flags and sensor faults as annotations.",
        panels,
        variables=[machine, sensor],
        annotations=[
            flag_annotation("Anomaly flags", "anomaly_flags", "flag_kind", "red"),
            flag_annotation("Sensor faults", "sensor_fault_flags", "fault_kind", "orange"),
        ],
        time={"from": "now-30m", "to": "now"},
    )


def pipeline_health() -> Json:
    per_second = {"defaults": {"unit": "short"}, "overrides": []}
    panels = [
        panel(
            "timeseries",
            "Throughput (readings/s)",
            (0, 0, 12, 8),
            [
                promql("sum(rate(plantwatch_producer_readings_total[1m]))", "produced", "A"),
                promql("sum(rate(plantwatch_ingest_readings_landed_total[1m]))", "landed in ClickHouse", "B"),
            ],
            fieldConfig=per_second,
        ),
        panel(
            "timeseries",
            "Readings per minute in ClickHouse",
            (12, 0, 12, 8),
            [
                sql(
                    "SELECT minute AS time, readings, machines FROM pipeline_stats FINAL "
                    "WHERE $__timeFilter(minute) ORDER BY time",
                    TIME_SERIES,
                )
            ],
        ),
        panel(
            "timeseries",
            "Consumer lag (messages)",
            (0, 8, 12, 8),
            [promql("sum by (partition) (plantwatch_ingest_consumer_lag)", "partition {{partition}}")],
        ),
        panel(
            "timeseries",
            "Ingest delay (event time to ClickHouse)",
            (12, 8, 12, 8),
            [
                sql(
                    "SELECT minute AS time, max_ingest_delay_s FROM pipeline_stats FINAL "
                    "WHERE $__timeFilter(minute) ORDER BY time",
                    TIME_SERIES,
                )
            ],
            fieldConfig={"defaults": {"unit": "s"}, "overrides": []},
        ),
        panel(
            "timeseries",
            "Dead letters (messages/s by reason)",
            (0, 16, 12, 8),
            [promql("sum by (reason) (rate(plantwatch_ingest_dead_lettered_total[5m]))", "{{reason}}")],
            fieldConfig=per_second,
        ),
        panel(
            "timeseries",
            "Producer backlog and batch inserts",
            (12, 16, 12, 8),
            [
                promql("sum(plantwatch_producer_backlog_messages)", "producer backlog (messages)", "A"),
                promql(
                    "histogram_quantile(0.99, sum by (le) (rate(plantwatch_ingest_batch_insert_seconds_bucket[5m])))",
                    "batch insert p99 (s)",
                    "B",
                ),
            ],
        ),
        panel(
            "stat",
            "Data quality: failed expectations (latest run per suite)",
            (0, 24, 8, 8),
            [sql(f"SELECT suite, countIf(NOT success) AS failed FROM dq_results WHERE {LATEST_DQ_RUN} GROUP BY suite")],
            fieldConfig={
                "defaults": {
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
                    }
                },
                "overrides": [],
            },
            options={"colorMode": "background", "graphMode": "none", "textMode": "value_and_name"},
            transformations=[{"id": "rowsToFields", "options": {}}],
        ),
        panel(
            "table",
            "Data-quality results (latest run per suite)",
            (8, 24, 16, 8),
            [
                sql(f"""
SELECT run_at, suite, expectation, `column`, success, observed
FROM dq_results WHERE {LATEST_DQ_RUN}
ORDER BY success, suite, expectation""")
            ],
            fieldConfig={
                "defaults": {
                    "mappings": [
                        {
                            "type": "value",
                            "options": {
                                "true": {"text": "passed", "color": "green", "index": 0},
                                "false": {"text": "FAILED", "color": "red", "index": 1},
                            },
                        }
                    ]
                },
                "overrides": [override(["success"], custom__cellOptions={"type": "color-background"})],
            },
        ),
    ]
    return dashboard(
        "pw-pipeline-health",
        "Pipeline health",
        "Throughput, lag, dead letters and the data-quality checks of the readings pipeline.",
        panels,
    )


def dashboards() -> dict[str, Json]:
    """file name -> dashboard JSON."""
    return {
        "plant-overview.json": plant_overview(),
        "machine-detail.json": machine_detail(),
        "pipeline-health.json": pipeline_health(),
    }


def render(board: Json) -> str:
    return json.dumps(board, indent=2) + "\n"


def write(out_dir: Path = OUT_DIR) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, board in dashboards().items():
        path = out_dir / name
        path.write_text(render(board))
        paths.append(path)
    return paths


if __name__ == "__main__":
    for written in write():
        print(written)
