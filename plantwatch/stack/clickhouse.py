"""ClickHouse 26.9 served by the chdb wheels (see clickhouse_server), data kept under the state folder."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from plantwatch.access import users_xml
from plantwatch.stack.engine import EngineMissing, check_engine
from plantwatch.stack.service import Service, StackError


class ClickHouse(Service):
    name = "clickhouse"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.clickhouse.http_port, "native": self.settings.clickhouse.tcp_port}

    @property
    def address(self) -> str:
        return self.settings.clickhouse.http_url

    @property
    def users_file(self) -> Path:
        return self.home / "users.xml"

    def prepare(self) -> None:
        try:
            check_engine()
        except EngineMissing as exc:
            raise StackError(str(exc)) from exc
        self.home.mkdir(parents=True, exist_ok=True)
        self.users_file.write_text(users_xml(self.settings))
        self.users_file.chmod(0o600)

    def command(self) -> list[str]:
        ch = self.settings.clickhouse
        return [
            sys.executable, "-m", "plantwatch.stack.clickhouse_server", "--data-dir", str(self.home / "data"),
            "--host", ch.host, "--http-port", str(ch.http_port), "--tcp-port", str(ch.tcp_port),
            "--users-config", str(self.users_file),
        ]  # fmt: skip

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/?query=SELECT%20version()", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False
