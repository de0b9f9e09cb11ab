"""ClickHouse 26.9 served by the chdb wheels (see clickhouse_server), data kept under the state folder."""

from __future__ import annotations

import sys
import urllib.request

from plantwatch.stack.clickhouse_server import EngineMissing, check_engine
from plantwatch.stack.service import Service, StackError


class ClickHouse(Service):
    name = "clickhouse"

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.settings.clickhouse.http_port, "native": self.settings.clickhouse.tcp_port}

    @property
    def address(self) -> str:
        return self.settings.clickhouse.http_url

    def prepare(self) -> None:
        try:
            check_engine()
        except EngineMissing as exc:
            raise StackError(str(exc)) from exc

    def command(self) -> list[str]:
        ch = self.settings.clickhouse
        return [
            sys.executable, "-m", "plantwatch.stack.clickhouse_server", "--data-dir", str(self.home / "data"),
            "--host", ch.host, "--http-port", str(ch.http_port), "--tcp-port", str(ch.tcp_port),
        ]  # fmt: skip

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/?query=SELECT%20version()", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False
