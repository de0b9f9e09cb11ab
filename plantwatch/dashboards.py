"""Grafana dashboards as code: plant overview, machine detail and pipeline health.

Built with grafana-foundation-sdk's builders (its Grafana 11.6 line); ``python -m plantwatch.grafana_build`` writes
them to grafana/dashboards/*.json (with the alert rules), which Grafana's file provider loads
(grafana/provisioning/dashboards/plantwatch.yaml); a test checks the committed files match this code and the
dashboard JSON schema of Grafana 11.6. Panels query ClickHouse (the dbt marts, raw readings, dq_results) through
datasource ``plantwatch-clickhouse`` (``grafana_common.ClickHouse``: the SDK has no ClickHouse query builder; the SQL
of each panel, annotation and variable in grafana/sql/dashboards/<dashboard>/) and the pipeline's own metrics through
``plantwatch-prometheus``. Metric names are those of streams/metrics.py and
producers/sdk_logger.py.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as models

from plantwatch.grafana_common import CLICKHOUSE, GRAFANA_DIR, PROMETHEUS, ClickHouse, WithFields, sql_file

OUT_DIR = GRAFANA_DIR / "dashboards"
STATUS_COLOURS = {"ok": "green", "warning": "orange", "critical": "red", "stale": "purple"}
PLANT, MACHINE, PIPELINE = "plant-overview", "machine-detail", "pipeline-health"  # also their SQL's folders

Json = dict[str, Any]
Panel = stat.Panel | table.Panel | timeseries.Panel
P = TypeVar("P", stat.Panel, table.Panel, timeseries.Panel)


def sql(board: str, name: str) -> str:
    """The SQL of one of a dashboard's panels, annotations or variables: grafana/sql/dashboards/<board>/<name>.sql."""
    return sql_file(f"dashboards/{board}/{name}.sql")


def promql(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().ref_id(ref).datasource(PROMETHEUS).expr(expr).legend_format(legend or "__auto")


def at(panel: P, title: str, pos: tuple[int, int, int, int], *targets: Builder[Any]) -> P:
    """A panel with its title, place on the grid and queries; its datasource is its first query's."""
    x, y, w, h = pos
    datasource = PROMETHEUS if isinstance(targets[0], prometheus.Dataquery) else CLICKHOUSE
    return panel.title(title).grid_pos(models.GridPos(h=h, w=w, x=x, y=y)).datasource(datasource).targets(list(targets))


def by_names(names: list[str], *properties: tuple[str, object]) -> tuple[models.MatcherConfig, list[Any]]:
    """A field override. The 11.6 schema types matcher options and property values as objects, so overrides match
    with ``byNames`` (object options; the SDK's ``override_by_name`` takes one name as a string) and set only
    object-valued properties (colour, line style, cell options)."""
    matcher = models.MatcherConfig(id_val="byNames", options={"mode": "include", "names": names})
    return matcher, [models.DynamicConfigValue(id_val=key, value=value) for key, value in properties]


def fixed(colour: str) -> dashboard.FieldColor:
    return dashboard.FieldColor().mode(models.FieldColorModeId.FIXED).fixed_color(colour)


def red_from_one() -> dashboard.ThresholdsConfig:
    steps = [models.Threshold(value=None, color="green"), models.Threshold(value=1, color="red")]
    return dashboard.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE).steps(steps)


def counters(panel: stat.Panel) -> stat.Panel:
    """A stat panel of counts: each value coloured, with its name. Grafana's default reduction, made explicit."""
    return (
        panel.color_mode(common_models.BigValueColorMode.BACKGROUND)
        .graph_mode(common_models.BigValueGraphMode.NONE)
        .text_mode(common_models.BigValueTextMode.VALUE_AND_NAME)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def coloured_cells(panel: table.Panel, column: str) -> table.Panel:
    return panel.with_override(*by_names([column], ("custom.cellOptions", {"type": "color-background"})))


def machine_links() -> list[dashboard.DashboardLink]:
    url = "/d/pw-machine-detail/machine-detail?var-machine=${__data.fields.machine_id}&${__url_time_range}"
    # The schema types field links as dashboard links, hence the fields a data link does not need.
    link = (
        dashboard.DashboardLink("machine detail")
        .type(models.DashboardLinkType.LINK)
        .url(url)
        .icon("dashboard")
        .tooltip("open this machine's sensors")
        .tags([])
        .as_dropdown(False)
        .target_blank(False)
        .include_vars(False)
        .keep_time(True)
    )
    return [link]


def value_mappings(results: dict[str, tuple[str, str]]) -> list[models.ValueMapping]:
    """One value mapping: value -> (text, colour)."""
    options = {
        value: models.ValueMappingResult(text=text, color=colour, index=i)
        for i, (value, (text, colour)) in enumerate(results.items())
    }
    return [models.ValueMap(options=options)]


def status_mappings() -> list[models.ValueMapping]:
    return value_mappings({status: (status.upper(), colour) for status, colour in STATUS_COLOURS.items()})


def query_variable(name: str, label: str, query: str, multi: bool = False) -> Builder[models.VariableModel]:
    variable = (
        dashboard.QueryVariable(name)
        .label(label)
        .datasource(CLICKHOUSE)
        .query(query)
        .refresh(models.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(multi)
    )
    return WithFields(variable, definition=query)  # the SDK's VariableModel has no `definition` (the schema has)


def flag_annotation(name: str, colour: str) -> dashboard.AnnotationQuery:
    query = ClickHouse(sql(MACHINE, f"annotation-{name.lower().replace(' ', '-')}"))
    # The SDK types an annotation's target as Grafana's own (limit, tags, type); the schema takes any query
    # object ("this should just be a normal query target"), which is what the ClickHouse plugin reads.
    return (
        dashboard.AnnotationQuery().name(name).datasource(CLICKHOUSE).enable(True).icon_color(colour).target(query)  # type: ignore[arg-type]
    )


def build(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    variables: tuple[Builder[models.VariableModel], ...] = (),
    annotations: tuple[dashboard.AnnotationQuery, ...] = (),
    since: str = "now-1h",
) -> Json:
    builtin = (
        dashboard.AnnotationQuery()
        .name("Annotations & Alerts")
        .built_in(1)
        .type("dashboard")
        .datasource(models.DataSourceRef(type_val="grafana", uid="-- Grafana --"))
        .enable(True)
        .hide(True)
        .icon_color("rgba(0, 211, 255, 1)")
    )
    others = (
        dashboard.DashboardLink("plantwatch")
        .type(models.DashboardLinkType.DASHBOARDS)
        .tags(["plantwatch"])
        .as_dropdown(True)
        .icon("external link")
        .tooltip("the other plantwatch dashboards")
        .target_blank(False)
        .include_vars(False)
        .keep_time(True)
    )
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["plantwatch"])
        .timezone("utc")
        .readonly()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .time(since, "now")
        .refresh("10s")
        .version(1)
        .variables(list(variables))
        .annotations([builtin, *annotations])
        .link(others)
    )
    for number, panel in enumerate(panels, start=1):
        board.with_panel(panel.id(number))
    return json.loads(JSONEncoder().encode(board.build()))


def plant_overview() -> Json:
    health = counters(stat.Panel()).unit("none")
    for status, colour in STATUS_COLOURS.items():
        health.with_override(*by_names([status], ("color", fixed(colour).build())))
    panels: list[Panel] = [
        at(
            health,
            "Machines by health",
            (0, 0, 12, 5),
            ClickHouse(sql(PLANT, "machines-by-health")),
        ),
        at(
            counters(stat.Panel()).thresholds(red_from_one()),
            "Open alerts",
            (12, 0, 12, 5),
            ClickHouse(sql(PLANT, "open-alerts-by-kind")),
        ),
        at(
            coloured_cells(table.Panel().mappings(status_mappings()).data_links(machine_links()), "status"),
            "Machines",
            (0, 5, 24, 9),
            ClickHouse(sql(PLANT, "machines")),
        ),
        at(
            table.Panel().data_links(machine_links()),
            "Open alerts",
            (0, 14, 24, 9),
            ClickHouse(sql(PLANT, "open-alerts")),
        ),
        at(
            timeseries.Panel()
            .draw_style(common_models.GraphDrawStyle.BARS)
            .stacking(common.StackingConfig().mode(common_models.StackingMode.NORMAL)),
            "Anomaly flags by kind",
            (0, 23, 24, 8),
            ClickHouse(sql(PLANT, "anomaly-flags-by-kind")).time_series(),
        ),
        at(
            table.Panel().data_links(machine_links()),
            "Alert history (plantwatch alerts --every: what fired, when it was notified and resolved)",
            (0, 31, 24, 9),
            ClickHouse(sql(PLANT, "alert-history")),
        ),
    ]
    line = query_variable("line", "line", sql(PLANT, "variable-line"), multi=True)
    return build(
        "pw-plant-overview",
        "Plant overview",
        "Every machine's health, the open alerts (machine anomalies and sensor faults) and the alert history.",
        panels,
        variables=(line,),
    )


def sensor_band_sql() -> str:
    """A sensor's 1-minute means (the rolling_aggregates mart) inside a band from the 5-minute window before:
    its mean plus/minus 3 sigma. Minutes without a preceding window have no band (NULL, not 0)."""
    return sql(MACHINE, "sensor-band")


def machine_detail() -> Json:
    band = timeseries.Panel().show_points(common_models.VisibilityMode.NEVER)
    band.with_override(
        *by_names(
            ["band_low", "band_high"],
            ("color", fixed("gray").build()),
            ("custom.lineStyle", common.LineStyle().fill("dash").dash([6, 4]).build()),
        )
    )
    panels: list[Panel] = [
        at(band, "${sensor}", (0, 0, 12, 8), ClickHouse(sensor_band_sql()).time_series())
        .repeat("sensor")
        .repeat_direction("h")
        .max_per_row(2),
        at(
            table.Panel(),
            "Alerts of this machine",
            (0, 16, 24, 8),
            ClickHouse(sql(MACHINE, "machine-alerts")),
        ),
    ]
    machine = query_variable("machine", "machine", sql(MACHINE, "variable-machine"))
    sensor = query_variable(
        "sensor",
        "sensors",
        sql(MACHINE, "variable-sensor"),
        multi=True,
    )
    return build(
        "pw-machine-detail",
        "Machine detail",
        "Each sensor of one machine: its 1-minute means in a band from the 5-minute window before (mean plus/minus "
        "3 sigma, from rolling_aggregates); "
        "anomaly flags and sensor faults as annotations.",
        panels,
        variables=(machine, sensor),
        annotations=(
            flag_annotation("Anomaly flags", "red"),
            flag_annotation("Sensor faults", "orange"),
        ),
        since="now-30m",
    )


def pipeline_health() -> Json:
    panels: list[Panel] = [
        at(
            timeseries.Panel().unit("short"),
            "Throughput (readings/s)",
            (0, 0, 12, 8),
            promql("sum(rate(plantwatch_producer_readings_total[1m]))", "produced", "A"),
            promql("sum(rate(plantwatch_ingest_readings_landed_total[1m]))", "landed in ClickHouse", "B"),
        ),
        at(
            timeseries.Panel(),
            "Readings per minute in ClickHouse",
            (12, 0, 12, 8),
            ClickHouse(sql(PIPELINE, "readings-per-minute")).time_series(),
        ),
        at(
            timeseries.Panel(),
            "Consumer lag (messages)",
            (0, 8, 12, 8),
            promql("sum by (topic, partition) (plantwatch_ingest_consumer_lag)", "{{topic}} [{{partition}}]"),
        ),
        at(
            timeseries.Panel().unit("s"),
            "Ingest delay (event time to ClickHouse)",
            (12, 8, 12, 8),
            ClickHouse(sql(PIPELINE, "ingest-delay")).time_series(),
        ),
        at(
            timeseries.Panel().unit("short"),
            "Dead letters (messages/s by reason)",
            (0, 16, 12, 8),
            promql("sum by (reason) (rate(plantwatch_ingest_dead_lettered_total[5m]))", "{{reason}}"),
        ),
        at(
            timeseries.Panel(),
            "Producer backlog and batch inserts",
            (12, 16, 12, 8),
            promql("sum(plantwatch_producer_backlog_messages)", "producer backlog (messages)", "A"),
            promql(
                "histogram_quantile(0.99, sum by (le) (rate(plantwatch_ingest_batch_insert_seconds_bucket[5m])))",
                "batch insert p99 (s)",
                "B",
            ),
        ),
        at(
            counters(stat.Panel())
            .thresholds(red_from_one())
            .with_transformation(models.DataTransformerConfig(id_val="rowsToFields", options={})),
            "Data quality: failed expectations (latest run per suite)",
            (0, 24, 8, 8),
            ClickHouse(sql(PIPELINE, "failed-expectations")),
        ),
        at(
            coloured_cells(
                table.Panel().mappings(value_mappings({"true": ("passed", "green"), "false": ("FAILED", "red")})),
                "success",
            ),
            "Data-quality results (latest run per suite)",
            (8, 24, 16, 8),
            ClickHouse(sql(PIPELINE, "data-quality-results")),
        ),
    ]
    return build(
        "pw-pipeline-health",
        "Pipeline health",
        "Throughput, lag, dead letters and the data-quality checks of the readings pipeline.",
        panels,
    )


def dashboards() -> dict[str, Json]:
    """file name -> dashboard JSON."""
    return {
        f"{PLANT}.json": plant_overview(),
        f"{MACHINE}.json": machine_detail(),
        f"{PIPELINE}.json": pipeline_health(),
    }


def render(board: Json) -> str:
    return json.dumps(board, indent=2) + "\n"
