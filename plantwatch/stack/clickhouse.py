"""ClickHouse 26.9 served by the chdb wheels (see clickhouse_server), data kept under the state folder."""

from __future__ import annotations

import sys
import urllib.request
from pathlib import Path

from plantwatch.access import AccessError, users_xml
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

    @property
    def user_files(self) -> Path:
        """The only folder file() and File-source dictionaries may read (the server runs as whoever started it)."""
        return self.home / "user_files"

    def prepare(self) -> None:
        try:
            check_engine()
        except EngineMissing as exc:
            raise StackError(str(exc)) from exc
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            users = users_xml(self.settings)
        except AccessError as exc:
            raise StackError(str(exc)) from exc
        self.users_file.touch(mode=0o600)
        self.users_file.chmod(0o600)
        self.users_file.write_text(users)
        self.user_files.mkdir(exist_ok=True)

    def command(self) -> list[str]:
        ch = self.settings.clickhouse
        return [
            sys.executable, "-m", "plantwatch.stack.clickhouse_server", "--data-dir", str(self.home / "data"),
            "--host", ch.host, "--http-port", str(ch.http_port), "--tcp-port", str(ch.tcp_port),
            "--users-config", str(self.users_file), "--user-files", str(self.user_files),
        ]  # fmt: skip

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.address}/?query=SELECT%20version()", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False
