"""Prometheus Alertmanager from Debian's package: notifications, grouping, inhibition and silences.

Its configuration is alertmanager/alertmanager.yml, rendered with the settings (the webhook URL, the demo's database
and receiver) into the state folder. Debian's build ships no web UI (it cannot be built without downloading the Elm
toolchain), so the stack serves the project's own small UI (alertmanager/ui: alerts by group, silences, from the
v2 API) through the package's ``--web.ui-path``; the official image of the Docker path has the upstream UI.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from plantwatch.resources import project_folder
from plantwatch.settings import Settings
from plantwatch.stack.service import Service, StackError

UI_DIR = project_folder("alertmanager") / "ui"
TIMINGS = ("group_wait", "group_interval", "repeat_interval")


def binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
        if found:
            return found
    raise StackError(
        "Alertmanager is not installed: `apt-get install prometheus-alertmanager` (Debian's package; it is not "
        "started as a system service here, plantwatch runs the binary), or use the Docker path."
    )


def amtool() -> str:
    found = shutil.which("amtool") or shutil.which("amtool", path="/usr/bin:/usr/sbin")
    if not found:
        raise StackError("amtool is missing: `apt-get install prometheus-alertmanager` brings it")
    return found


@functools.cache
def _has_ui_path_flag(path: str) -> bool:
    """Debian's build takes --web.ui-path (and has no UI of its own); the upstream binary embeds its UI."""
    done = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=30)
    return "--web.ui-path" in done.stdout + done.stderr


def render_config(settings: Settings, timings: dict[str, str] | None = None) -> dict[str, Any]:
    """alertmanager/alertmanager.yml with the settings' webhook URL and the demo's database and receiver.

    ``timings`` (group_wait, group_interval, repeat_interval) replace those of every route: a test's or a
    benchmark's private Alertmanager notifies within seconds.
    """
    config = yaml.safe_load(settings.alertmanager.config_file.read_text())
    demo_database = settings.clickhouse.managed_databases[1]
    webhook = settings.alerting.webhook_url
    for receiver in config["receivers"]:
        if receiver["name"] == "demo":
            url = f"http://127.0.0.1:{settings.alertmanager.demo_webhook_port}/demo"
            receiver["webhook_configs"] = [{"url": url, "send_resolved": True}]
        elif webhook:
            receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True}]
        else:
            receiver.pop("webhook_configs", None)  # no webhook configured: the alerts show in the UI and API only
    routes = config["route"].get("routes", [])
    for route in routes:
        if route["receiver"] == "demo":
            route["matchers"] = [f'database="{demo_database}"']
    for route in [config["route"], *routes]:
        for key, value in (timings or {}).items():
            if key not in TIMINGS:
                raise ValueError(f"{key}: not a route timing ({', '.join(TIMINGS)})")
            if route is config["route"] or key in route:
                route[key] = value
    return config


def check_config(path: Path) -> str:
    """`amtool check-config`; raises StackError with its output when the file is invalid."""
    done = subprocess.run([amtool(), "check-config", str(path)], capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise StackError(f"{path}: amtool check-config failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class Alertmanager(Service):
    name = "alertmanager"

    def __init__(self, settings: Settings, timings: dict[str, str] | None = None) -> None:
        super().__init__(settings)
        self.timings = timings

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.alertmanager.port}

    @property
    def address(self) -> str:
        """Its API and web UI."""
        return self.settings.alertmanager.url

    @property
    def config_path(self) -> Path:
        return self.home / "alertmanager.yml"

    def prepare(self) -> None:
        binary()
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(render_config(self.settings, self.timings), sort_keys=False))
        check_config(self.config_path)

    def command(self) -> list[str]:
        am = self.settings.alertmanager
        args = [
            binary(),
            f"--config.file={self.config_path}",
            f"--storage.path={self.home / 'data'}",
            f"--web.listen-address={am.host}:{am.port}",
            "--cluster.listen-address=",  # a single instance: no gossip port
        ]
        if _has_ui_path_flag(args[0]):
            args.append(f"--web.ui-path={UI_DIR}/")
        return args

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False
