"""ClickHouse access for the Python side: a client, and the migrations that create the raw tables.

The tables the stream apps write (raw readings, fault labels) are created here from ``plantwatch/sql/*.sql``,
templated with the names in the settings and the reading's columns; everything derived from them is dbt's.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from plantwatch.access import Role, credentials
from plantwatch.reading import COLUMNS
from plantwatch.settings import Settings

SQL_DIR = Path(__file__).parent / "sql"


def client(settings: Settings, database: str | None = None, role: Role | None = None, **kwargs: object) -> Client:
    """A clickhouse-connect client; ``role`` picks the component's least-privileged user (plantwatch.access)."""
    ch = settings.clickhouse
    user, password = credentials(settings, role)
    return clickhouse_connect.get_client(
        host=ch.host,
        port=ch.http_port,
        username=user,
        password=password,
        database=database or ch.database,
        **kwargs,
    )


def template_values(settings: Settings) -> dict[str, object]:
    """The names a SQL template may use: every ClickHouse setting, plus the reading's column list."""
    columns = ",\n".join(f"    {c.name} {c.clickhouse_type} {c.codec}".rstrip() for c in COLUMNS)
    return {**settings.clickhouse.model_dump(), "reading_columns": columns}


def render(path: Path, settings: Settings) -> list[str]:
    """The statements of one SQL file, its ${names} filled in."""
    text = Template(path.read_text()).substitute(template_values(settings))
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def migrate(settings: Settings) -> list[str]:
    """Create the database and raw tables if missing (idempotent); returns the files applied."""
    admin = client(settings, database="default")
    applied = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        for statement in render(path, settings):
            admin.command(statement)
        applied.append(path.name)
    return applied
