"""Grafana provisioning as code: the committed dashboards and alerting files are what grafana-foundation-sdk's
builders produce (plantwatch.grafana_build), they validate against Grafana 11.6's JSON schemas (tests/schemas/grafana,
vendored), and every ClickHouse query in the dashboards and alert rules runs against the real ClickHouse.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from plantwatch import dashboards, grafana_alerting, grafana_build, warehouse
from plantwatch.settings import PROJECT_ROOT, Settings
from tests.test_prometheus_rules import declared_metrics

SCHEMAS = Path(__file__).parent / "schemas" / "grafana"
PROVISIONING = PROJECT_ROOT / "grafana" / "provisioning"
FIXTURES = Path(__file__).parent / "fixtures"


def validator(schema_file: str, definition: str | None = None) -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    if definition:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    return jsonschema.Draft7Validator(schema)


def errors(check: jsonschema.Draft7Validator, document: Any) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in check.iter_errors(document)]


def load_yaml(relative: str) -> dict[str, Any]:
    return yaml.safe_load((PROVISIONING / relative).read_text())


GENERATED = grafana_build.outputs()


@pytest.mark.parametrize("path", sorted(GENERATED), ids=lambda path: path.name)
def test_committed_file_is_what_the_builders_generate(path: Path) -> None:
    assert path.read_text() == GENERATED[path], "regenerate with `python -m plantwatch.grafana_build`"


def test_build_check_reports_an_out_of_date_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert grafana_build.stale() == []
    moved = {tmp_path / path.name: text for path, text in GENERATED.items()}
    monkeypatch.setattr(grafana_build, "outputs", lambda: moved)
    assert grafana_build.main([]) == 0 and grafana_build.main(["--check"]) == 0
    (tmp_path / "rules.yaml").write_text("apiVersion: 1\n")
    assert grafana_build.stale() == [tmp_path / "rules.yaml"] and grafana_build.main(["--check"]) == 1


def test_generated_yaml_reads_back_as_the_built_documents() -> None:
    """The YAML rendering (block styles, folding) changes no value: the evaluator reads what the builders built."""
    assert load_yaml("alerting/rules.yaml") == grafana_alerting.rule_file()
    assert load_yaml("alerting/contact-points.yaml") == grafana_alerting.contact_point_file()
    assert load_yaml("alerting/policies.yaml") == grafana_alerting.policy_file()


@pytest.mark.parametrize("name", sorted(dashboards.dashboards()))
def test_dashboard_matches_the_grafana_schema(name: str) -> None:
    board = json.loads((dashboards.OUT_DIR / name).read_text())
    assert errors(validator("dashboard.jsonschema.json"), board) == []
    assert board["schemaVersion"] == 41 and board["uid"].startswith("pw-")


def test_a_broken_dashboard_fails_the_schema() -> None:
    board = dashboards.plant_overview()
    board["panels"][0]["gridPos"] = {"x": 0}
    del board["templating"]
    assert len(errors(validator("dashboard.jsonschema.json"), board)) >= 2


def test_machine_detail_marks_anomaly_flags_and_sensor_faults() -> None:
    board = dashboards.machine_detail()
    names = {a["name"]: a["target"]["rawSql"] for a in board["annotations"]["list"] if "target" in a}
    assert "FROM anomaly_flags" in names["Anomaly flags"] and "FROM sensor_fault_flags" in names["Sensor faults"]
    [sensor_panel] = [p for p in board["panels"] if p.get("repeat") == "sensor"]
    assert "band_low" in sensor_panel["targets"][0]["rawSql"] and "band_high" in sensor_panel["targets"][0]["rawSql"]


# Grafana's ClickHouse macros and the dashboards' variables, replaced the way Grafana would for a last-hour view.
MACROS = [
    (re.compile(r"\$__timeFilter\((\w+)\)"), r"\1 >= now() - INTERVAL 1 HOUR"),
    (re.compile(r"\$__timeInterval\((\w+)\)"), r"toStartOfInterval(\1, INTERVAL 10 SECOND)"),
    (re.compile(r"\$\{line:singlequote\}"), "'L1'"),
    (re.compile(r"\$\{machine\}"), "L1-pump01"),
    (re.compile(r"\$\{sensor\}"), "temp"),
]


def clickhouse_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, SQL) of every ClickHouse query of a dashboard: panels, annotations and variables."""
    found = []
    for item in board["panels"]:
        found += [(item["title"], t["rawSql"]) for t in item["targets"] if "rawSql" in t]
    found += [(a["name"], a["target"]["rawSql"]) for a in board["annotations"]["list"] if "target" in a]
    found += [(v["name"], v["query"]) for v in board["templating"]["list"]]
    return found


@pytest.fixture
def marts(isolated: Settings) -> Settings:
    admin = warehouse.client(isolated, database="default")
    for statement in warehouse.render(FIXTURES / "marts.sql", isolated):
        admin.command(statement)
    client = warehouse.client(isolated)
    client.command("INSERT INTO machines VALUES ('L1-pump01', 'L1', 'pump')")
    # a reading a second from a 5-minute boundary 15-20 minutes ago until now: no 5-minute window holds a handful
    # of readings (a band of zero width), as one that began just before its end would
    client.command(
        "INSERT INTO readings_raw (machine_id, sensor_id, sensor_kind, value, unit, event_time, seq, schema_version) "
        "WITH toStartOfFiveMinutes(now64(3) - INTERVAL 900 SECOND) AS start "
        "SELECT 'L1-pump01', 'temp', 'temperature', 50 + number % 7, 'C', start + INTERVAL number SECOND, number, 1 "
        "FROM numbers(toUInt64(dateDiff('second', start, now64(3))))"
    )
    for seconds, start in ((60, "toStartOfMinute"), (300, "toStartOfFiveMinutes")):  # as the dbt mart has them
        client.command(
            f"INSERT INTO rolling_aggregates SELECT machine_id, sensor_id, any(sensor_kind), {seconds}, "
            f"{start}(event_time) AS w, w + INTERVAL {seconds} SECOND, count(), avg(value), stddevPop(value), "
            "min(value), max(value), 0, max(ingested_at) FROM readings_raw GROUP BY machine_id, sensor_id, w"
        )
    return isolated


def test_every_dashboard_query_runs_on_clickhouse(marts: Settings) -> None:
    client = warehouse.client(marts)
    ran = 0
    for board in dashboards.dashboards().values():
        for where, raw in clickhouse_queries(board):
            query = raw
            for pattern, replacement in MACROS:
                query = pattern.sub(replacement, query)
            assert "$" not in query, f"{board['title']} / {where}: unreplaced macro"
            try:
                client.query(query)
            except Exception as exc:
                pytest.fail(f"{board['title']} / {where}: {exc}\n{query}")
            ran += 1
    assert ran >= 15
    band_sql = dashboards.sensor_band_sql()
    for pattern, replacement in MACROS:
        band_sql = pattern.sub(replacement, band_sql)
    rows = list(client.query(band_sql).named_results())
    assert len(rows) >= 15  # a point a minute for the last 15 minutes
    banded = [r for r in rows if r["band_low"] is not None and r["band_low"] < r["value"] < r["band_high"]]
    assert len(banded) >= 8  # those with a 5-minute window before them lie inside its band
    assert all(r["band_low"] is None for r in rows if r not in banded)  # no band is a gap, not a band at 0


def test_every_rule_query_runs_on_clickhouse(marts: Settings) -> None:
    client = warehouse.client(marts)
    for _, rule in rule_bodies():
        [query] = [item["model"]["rawSql"] for item in rule["data"] if item["datasourceUid"] != "__expr__"]
        try:
            client.query(query)
        except Exception as exc:
            pytest.fail(f"{rule['uid']}: {exc}\n{query}")


def test_pipeline_dashboard_charts_metrics_the_apps_export() -> None:
    board = dashboards.pipeline_health()
    exprs = [t["expr"] for item in board["panels"] for t in item["targets"] if "expr" in t]
    used = {name for expr in exprs for name in re.findall(r"\b(plantwatch_[a-z_]+)\b", expr)}
    assert len(used) >= 5 and used <= declared_metrics(), used - declared_metrics()


def rule_bodies() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(group, rule) of the provisioned alert rules."""
    return [(group, rule) for group in load_yaml("alerting/rules.yaml")["groups"] for rule in group["rules"]]


def api_shape(group: dict[str, Any], rule: dict[str, Any]) -> dict[str, Any]:
    """A file-provisioned rule as the provisioning API's rule body (the shape alerting.jsonschema.json describes)."""
    return {**rule, "orgID": group["orgId"], "ruleGroup": group["name"], "folderUID": group["folder"]}


def test_rule_file_wrapper_and_uniqueness() -> None:
    document = load_yaml("alerting/rules.yaml")
    assert document["apiVersion"] == 1
    uids = [rule["uid"] for _, rule in rule_bodies()]
    assert len(uids) == len(set(uids)) == 5


@pytest.mark.parametrize("group,rule", rule_bodies(), ids=[rule["uid"] for _, rule in rule_bodies()])
def test_alert_rule_matches_the_grafana_schema(group: dict[str, Any], rule: dict[str, Any]) -> None:
    assert errors(validator("alerting.jsonschema.json", "Rule"), api_shape(group, rule)) == []
    datasource_uids = {ds["uid"] for ds in load_yaml("datasources/clickhouse.yaml")["datasources"]}
    [query] = [item for item in rule["data"] if item["datasourceUid"] != "__expr__"]
    assert query["datasourceUid"] in datasource_uids and query["model"]["rawSql"].strip()
    expressions = [item["model"] for item in rule["data"] if item["datasourceUid"] == "__expr__"]
    for model in expressions:
        assert errors(validator("expr.jsonschema.json"), model) == []
    assert {m["type"] for m in expressions} == {"reduce", "threshold"}
    assert rule["condition"] == next(m["refId"] for m in expressions if m["type"] == "threshold")
    assert rule["annotations"]["summary"] and rule["annotations"]["runbook"]
    assert rule["for"] and rule["labels"]


def grafana_tables() -> set[str]:
    """The tables the grafana role may read (plantwatch/sql/access.yaml)."""
    access = yaml.safe_load((PROJECT_ROOT / "plantwatch" / "sql" / "access.yaml").read_text())
    tables = {grant.split(".")[-1] for grant in access["grafana"]["grants"] if grant.startswith("SELECT ON ")}
    settings = Settings()
    return {settings.clickhouse.dq_results_table if t == "${dq_results_table}" else t for t in tables}


def referenced_tables(sql_text: str) -> set[str]:
    return set(re.findall(r"\b(?:FROM|JOIN)\s+([a-z_]+)\b", sql_text, flags=re.IGNORECASE))


def test_dashboards_and_rules_read_only_what_grafanas_user_may() -> None:
    allowed = grafana_tables()
    queries = [raw for board in dashboards.dashboards().values() for _, raw in clickhouse_queries(board)]
    queries += [
        item["model"]["rawSql"] for _, rule in rule_bodies() for item in rule["data"] if "rawSql" in item["model"]
    ]
    read = set().union(*(referenced_tables(q) for q in queries))
    assert {"alerts", "machine_health", "rolling_aggregates", "dq_results"} <= read
    assert read <= allowed, read - allowed


def test_rule_file_has_no_dollar_for_grafana_to_expand() -> None:
    """Grafana expands $VAR in provisioning files: a `$labels` in an annotation would become an empty string."""
    assert "$" not in (PROVISIONING / "alerting" / "rules.yaml").read_text()


def test_built_rules_contact_points_and_policy_match_the_grafana_schema() -> None:
    """The SDK builds the provisioning API's shapes, which the vendored schema describes as they are."""
    check = validator("alerting.jsonschema.json", "Rule")
    for group in grafana_alerting.rule_groups():
        for rule in group.build().rules or []:
            assert errors(check, grafana_alerting.as_json(rule)) == []
    for point in grafana_alerting.contact_points():
        assert (
            errors(validator("alerting.jsonschema.json", "ContactPoint"), grafana_alerting.as_json(point.build())) == []
        )
    policy = grafana_alerting.as_json(grafana_alerting.policy().build())
    assert errors(validator("alerting.jsonschema.json", "NotificationPolicy"), policy) == []


def test_sql_is_kept_in_sql_files() -> None:
    """Every ClickHouse query of the dashboards and rules is a file of grafana/sql, and every file there is used."""
    folder = PROJECT_ROOT / "grafana" / "sql"
    files = {path.relative_to(folder).as_posix(): path.read_text().strip() for path in folder.rglob("*.sql")}
    for _, rule in rule_bodies():
        [query] = [item for item in rule["data"] if item["datasourceUid"] != "__expr__"]
        assert query["model"]["rawSql"] == files[f"rules/{rule['uid']}.sql"]
    used = [raw for board in dashboards.dashboards().values() for _, raw in clickhouse_queries(board)]
    used += [files[f"rules/{uid}.sql"] for uid in (rule["uid"] for _, rule in rule_bodies())]
    assert sorted(used) == sorted(files.values())


def test_a_broken_rule_fails_the_schema() -> None:
    group, rule = rule_bodies()[0]
    broken = {**api_shape(group, rule), "noDataState": "Maybe"}
    del broken["condition"]
    assert len(errors(validator("alerting.jsonschema.json", "Rule"), broken)) == 2


def test_contact_points_and_policy_come_from_the_environment() -> None:
    contact_points = load_yaml("alerting/contact-points.yaml")["contactPoints"]
    receivers = {r["type"]: r for cp in contact_points for r in cp["receivers"]}
    for receiver in receivers.values():
        assert errors(validator("alerting.jsonschema.json", "ContactPoint"), receiver) == []
    assert receivers["webhook"]["settings"]["url"] == "${PLANTWATCH_ALERTING__WEBHOOK_URL}"
    assert receivers["email"]["settings"]["addresses"] == "${PLANTWATCH_ALERTING__EMAIL_TO}"
    [policy] = load_yaml("alerting/policies.yaml")["policies"]
    body = {k: v for k, v in policy.items() if k != "orgId"}
    assert errors(validator("alerting.jsonschema.json", "NotificationPolicy"), body) == []
    names = {cp["name"] for cp in contact_points}
    assert policy["receiver"] in names and {r["receiver"] for r in policy["routes"]} <= names


def test_datasources_take_address_and_credentials_from_the_environment() -> None:
    sources = {ds["uid"]: ds for ds in load_yaml("datasources/clickhouse.yaml")["datasources"]}
    clickhouse = sources["plantwatch-clickhouse"]
    assert clickhouse["type"] == "grafana-clickhouse-datasource"
    for value in (*clickhouse["jsonData"].values(), *clickhouse["secureJsonData"].values()):
        assert not isinstance(value, str) or value.startswith("${") or value == "native"
    assert sources["plantwatch-prometheus"]["url"].startswith("${")
