"""Prometheus from Debian's package, scraping whatever plantwatch processes register (file-based discovery)."""

from __future__ import annotations

import shutil
import urllib.request
from pathlib import Path

import yaml

from plantwatch.resources import project_folder
from plantwatch.stack.service import Service, StackError

CONSOLES = Path("/etc/prometheus")


class Prometheus(Service):
    name = "prometheus"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.prometheus.port}

    @property
    def address(self) -> str:
        return self.settings.prometheus.url

    @property
    def targets_dir(self) -> Path:
        """Where running processes drop file_sd target files (see plantwatch.metrics)."""
        return self.home / "targets"

    @property
    def alertmanager_target(self) -> str:
        return f"{self.settings.alertmanager.host}:{self.settings.alertmanager.port}"

    def binary(self) -> str:
        binary = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin:/usr/sbin")
        if not binary:
            raise StackError(
                "Prometheus is not installed: `apt-get install prometheus` (Debian's package; it is not started "
                "as a system service here, plantwatch runs the binary), or use the Docker path."
            )
        return binary

    def prepare(self) -> None:
        self.binary()
        self.targets_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": self.settings.prometheus.scrape_interval,
                "evaluation_interval": self.settings.prometheus.scrape_interval,
            },
            "rule_files": [str(project_folder("prometheus") / "rules" / "*.yml")],
            # Its alerts go to the local stack's Alertmanager (plantwatch/stack/alertmanager.py).
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [self.alertmanager_target]}]}]},
            "scrape_configs": [
                {
                    "job_name": "plantwatch",
                    "file_sd_configs": [{"files": [str(self.targets_dir / "*.json")], "refresh_interval": "5s"}],
                }
            ],
        }
        (self.home / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))

    def command(self) -> list[str]:
        args = [
            self.binary(),
            f"--config.file={self.home / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--web.listen-address={self.settings.prometheus.host}:{self.settings.prometheus.port}",
            "--web.enable-lifecycle",
        ]
        if CONSOLES.exists():
            args += [
                f"--web.console.libraries={CONSOLES / 'console_libraries'}",
                f"--web.console.templates={CONSOLES / 'consoles'}",
            ]
        return args

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False
