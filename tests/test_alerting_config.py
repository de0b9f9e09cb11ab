"""Alertmanager and Prometheus configured as code: alertmanager/alertmanager.yml validated and its routing checked
with amtool, the local stack's rendering of it, Prometheus pointed at it, and the UI the local stack serves
(Debian's Alertmanager has none) rendered by a headless Chromium with the alerts it is sent."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from plantwatch.alertmanager import get_alerts, post_alerts, rfc3339
from plantwatch.settings import Settings
from plantwatch.stack.alertmanager import Alertmanager, amtool, check_config, render_config
from plantwatch.stack.prometheus import Prometheus
from plantwatch.stack.service import StackError
from tests.alerting_support import private_alertmanager, webhook_receiver

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def route(config: Path, **labels: str) -> str:
    """The receiver amtool routes an alert with these labels to."""
    args = [amtool(), "config", "routes", "test", f"--config.file={config}", *(f"{k}={v}" for k, v in labels.items())]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def rendered(settings: Settings, tmp_path: Path, **update: object) -> Path:
    own = settings.model_copy(update={"alerting": settings.alerting.model_copy(update=update)})
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(render_config(own), sort_keys=False))
    return path


def test_committed_and_rendered_configs_pass_amtool(settings: Settings, tmp_path: Path) -> None:
    check_config(settings.alertmanager.config_file)
    with_webhook = rendered(settings, tmp_path, webhook_url="http://127.0.0.1:1/hook")
    assert "SUCCESS" in check_config(with_webhook) and "http://127.0.0.1:1/hook" in with_webhook.read_text()
    without = render_config(
        settings.model_copy(update={"alerting": settings.alerting.model_copy(update={"webhook_url": None})})
    )
    assert all("webhook_configs" not in r for r in without["receivers"] if r["name"] != "demo")
    broken = yaml.safe_load(settings.alertmanager.config_file.read_text())
    broken["route"]["routes"][0]["receiver"] = "nobody"
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken))
    with pytest.raises(StackError, match="amtool check-config failed"):
        check_config(tmp_path / "broken.yml")


def test_routes_by_category_and_severity(settings: Settings, tmp_path: Path) -> None:
    config = rendered(settings, tmp_path, webhook_url="http://127.0.0.1:1/hook")
    db = settings.clickhouse.database
    assert route(config, alertname="Sensor fault", category="sensor", machine_id="M1", database=db) == "instrumentation"
    machine = {"alertname": "Machine anomaly", "category": "machine", "machine_id": "M1", "database": db}
    assert route(config, **machine, severity="critical") == "maintenance-critical"
    assert route(config, **machine, severity="warning") == "maintenance"
    assert route(config, alertname="Stale data", category="data", machine_id="M1", database=db) == "platform"
    assert route(config, alertname="PlantwatchIngestStalled", category="pipeline", severity="critical") == "platform"
    demo = settings.clickhouse.managed_databases[1]
    assert route(config, **{**machine, "database": demo}, severity="critical") == "demo"


def test_local_prometheus_sends_its_alerts_to_the_local_alertmanager(settings: Settings, tmp_path: Path) -> None:
    own = settings.model_copy(update={"state_dir": tmp_path})
    prometheus = Prometheus(own)
    prometheus.prepare()
    config = yaml.safe_load((prometheus.home / "prometheus.yml").read_text())
    [target] = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert f"http://{target}" == settings.alertmanager.url
    done = subprocess.run(["promtool", "check", "config", str(prometheus.home / "prometheus.yml")], capture_output=True)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def alertmanager(settings: Settings, tmp_path: Path) -> Iterator[Alertmanager]:
    with webhook_receiver() as receiver:
        service = private_alertmanager(settings, tmp_path / "state", receiver.url)
        yield service
        service.stop()


def chromium(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            ["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args, url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip


def test_the_ui_lists_the_alerts_in_a_headless_chromium(alertmanager: Alertmanager, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    alerts = [
        {
            "labels": {"alertname": name, "machine_id": machine, "category": category, "database": "ui_test"},
            "annotations": {"summary": f"{name} on {machine}", "dashboard_url": "http://grafana/d/x"},
            "startsAt": rfc3339(now),
            "endsAt": rfc3339(now + timedelta(minutes=10)),
        }
        for name, machine, category in (
            ("Machine anomaly", "L1-pump02", "machine"),
            ("Sensor fault", "L2-press01", "sensor"),
        )
    ]
    post_alerts(alertmanager.address, alerts)
    assert len(get_alerts(alertmanager.address)) == 2
    dom = chromium(f"{alertmanager.address}/", "--dump-dom").stdout
    assert dom.count('class="alert"') == 2 and "L1-pump02" in dom and "Sensor fault on L2-press01" in dom
    shot = tmp_path / "alertmanager.png"
    done = chromium(f"{alertmanager.address}/", "--window-size=1200,700", f"--screenshot={shot}")
    assert done.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", done.stderr[-500:]
    assert_not_blank(shot)


def assert_not_blank(png: Path) -> None:
    """Many distinct colours over the page (text, the header, labels), not a flat or empty image."""
    from matplotlib.image import imread

    pixels = imread(png)
    colours = {tuple(p) for p in pixels.reshape(-1, pixels.shape[-1])[::7].round(2).tolist()}
    assert png.stat().st_size > 10_000 and len(colours) > 50
