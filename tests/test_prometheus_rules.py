"""Prometheus config and pipeline rules: promtool check config / check rules / test rules, every alert unit-tested,
every metric the rules use exported by an app, and the rules loaded by the running local Prometheus.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
import yaml

from plantwatch.settings import PROJECT_ROOT, Settings
from plantwatch.stack import Stack

PROMETHEUS_DIR = PROJECT_ROOT / "prometheus"
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
EXPORTERS = [PROJECT_ROOT / "streams" / "metrics.py", PROJECT_ROOT / "producers" / "sdk_logger.py"]
EXPORTERS.append(PROJECT_ROOT / "expectations" / "results.py")

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_rules_are_valid() -> None:
    done = promtool("check", "rules", *RULE_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rule_unit_tests_pass() -> None:
    done = promtool("test", "rules", *TEST_FILES)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    [test_file] = TEST_FILES
    broken = test_file.read_text().replace("summary: 5% of messages", "summary: 50% of messages")
    (tmp_path / "broken.yml").write_text(broken.replace("../rules/", f"{PROMETHEUS_DIR}/rules/"))
    done = promtool("test", "rules", tmp_path / "broken.yml")
    assert done.returncode != 0 and "PlantwatchDeadLetterRate" in done.stdout + done.stderr


def alert_names() -> set[str]:
    return {
        rule["alert"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }


def test_every_alert_has_a_firing_unit_test() -> None:
    fired = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            fired |= {t["alertname"] for t in case.get("alert_rule_test", []) if t["exp_alerts"]}
    expected = {
        "PlantwatchIngestStalled",
        "PlantwatchTopicStalled",
        "PlantwatchConsumerLagGrowing",
        "PlantwatchDeadLetterRate",
        "PlantwatchProducerBacklog",
        "PlantwatchDataQualityFailed",
    }
    assert alert_names() == expected
    assert fired == expected


def declared_metrics() -> set[str]:
    """The series names the apps export (a Counter gets _total, a Histogram _bucket)."""
    declared = set()
    for path in EXPORTERS:
        for kind, name in re.findall(r"(Counter|Gauge|Histogram)\(\s*\"(plantwatch_\w+)\"", path.read_text()):
            declared.add({"Counter": f"{name}_total", "Histogram": f"{name}_bucket"}.get(kind, name))
    return declared


def test_rules_use_only_metrics_the_apps_export() -> None:
    declared = declared_metrics()
    used = set()
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used |= set(re.findall(r"\b(plantwatch_[a-z_]+)\b", rule["expr"]))
    assert used and used <= declared, used - declared


def test_docker_config_is_valid(tmp_path: Path) -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} >= {"plantwatch", "kafka", "clickhouse"}
    config["rule_files"] = [str(path) for path in RULE_FILES]  # the container path, as mounted from the repo
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = promtool("check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout and "rules found" in done.stdout


def test_kubernetes_config_relabelling_is_valid(tmp_path: Path) -> None:
    """Debian's promtool is built without Kubernetes discovery: check everything but the discovery block."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus-kubernetes.yml").read_text())
    [job] = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["127.0.0.1:9"]}]
    config["rule_files"] = [str(path) for path in RULE_FILES]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    done = promtool("check", "config", tmp_path / "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_local_prometheus_loads_the_rules(stack: Stack, settings: Settings) -> None:
    """The local stack's Prometheus reads prometheus/rules/*.yml; after a reload it evaluates ours."""
    request = urllib.request.Request(f"{settings.prometheus.url}/-/reload", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(f"{settings.prometheus.url}/api/v1/rules", timeout=5) as response:
            groups = orjson.loads(response.read())["data"]["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"] if rule["type"] == "alerting"}
        if alert_names() <= loaded or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert alert_names() <= loaded
    health = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
    assert all(health[name] in ("ok", "unknown") for name in alert_names())
