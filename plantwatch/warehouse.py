"""ClickHouse access for the Python side: a client, and the migrations that create the raw tables.

The tables the stream apps write (raw readings, fault labels) are created here from ``plantwatch/sql/*.sql``,
templated with the names in the settings and the reading's columns; everything derived from them is dbt's.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from plantwatch.access import Role, credentials
from plantwatch.reading import COLUMNS
from plantwatch.resources import package_path
from plantwatch.settings import MACHINE_SHARDING_KEY, Settings

SQL_DIR = package_path("plantwatch", "sql")


def query_sql(name: str) -> str:
    """The text of plantwatch/sql/queries/<name>.sql: a query the code runs, its values as query parameters."""
    return (SQL_DIR / "queries" / f"{name}.sql").read_text()


def client(settings: Settings, database: str | None = None, role: Role | None = None, **kwargs: object) -> Client:
    """A clickhouse-connect client; ``role`` picks the component's least-privileged user (plantwatch.access)."""
    ch = settings.clickhouse
    user, password = credentials(settings, role)
    if ch.client_settings:  # the cluster's (e.g. distributed_foreground_insert); none by default
        kwargs["settings"] = dict(ch.client_settings)
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


def render(path: Path, settings: Settings, **values: object) -> list[str]:
    """The statements of one DDL file, its ${names} filled in: the settings' (template_values), and `values`.

    SQL here names identifiers and values one way each. Queries take both as ClickHouse query parameters
    (``{name:Identifier}``, ``{name:Type}``: the server quotes them). DDL cannot - a view's body would become a
    parameterized view - so DDL files (plantwatch/sql/*.sql, sql/replay/) are rendered here with ``${name}`` from the
    settings and the code, never from what a user typed.
    """
    text = Template(path.read_text()).substitute({**template_values(settings), **values})
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [stmt.strip() for stmt in body.split(";") if stmt.strip()]


def statements(path: Path, settings: Settings) -> list[str]:
    """What migrate runs for one SQL file: its statements as written (one node), or made for the cluster."""
    rendered = render(path, settings)
    if settings.clickhouse.cluster is None:
        return rendered
    return [out for statement in rendered for out in cluster_ddl(statement, settings)]


def create_database(settings: Settings) -> None:
    """The settings' database, if missing (on the node they point at: no cluster DDL)."""
    admin = client(settings, database="default")
    for statement in render(SQL_DIR / "000_database.sql", settings):
        admin.command(statement)


def migrate(settings: Settings) -> list[str]:
    """Create the database and raw tables if missing (idempotent); returns the files applied.

    A replicated cluster is migrated through one node (ON CLUSTER); the local cluster (`clickhouse.replicated =
    false`) node by node, each shard at its own ports.
    """
    ch = settings.clickhouse
    per_node = ch.cluster is not None and not ch.replicated
    nodes = [node_settings(settings, shard) for shard in range(ch.shards)] if per_node else [settings]
    applied = []
    for path in sorted(SQL_DIR.glob("*.sql")):
        batch = statements(path, settings)
        for node in nodes:
            admin = client(node, database="default")
            for statement in batch:
                admin.command(statement)
        applied.append(path.name)
    return applied


# --- cluster DDL -------------------------------------------------------------------------------------------------
# With `clickhouse.cluster` set, each table a SQL file creates becomes a local table (`<name><local_suffix>`) on
# every node plus a Distributed table with the table's own name over them, so everything that reads or writes the
# configured names goes through the Distributed table. Each sharding key keeps what must stay together on one
# shard: a machine's whole history (readings, labels, baselines, alert events, its configuration), and the sort key
# of the ReplacingMergeTree tables without a machine (FINAL folds duplicates within a shard only).
SHARDING_KEYS: dict[str, str] = {
    "raw_readings_table": MACHINE_SHARDING_KEY,
    "fault_labels_table": MACHINE_SHARDING_KEY,
    "baselines_table": MACHINE_SHARDING_KEY,
    "alert_events_table": MACHINE_SHARDING_KEY,
    "machine_config_table": MACHINE_SHARDING_KEY,
    "dq_results_table": "cityHash64(run_id)",
    "alert_state_table": "cityHash64(rule_uid, fingerprint)",
    "spec_limit_config_table": "cityHash64(model, sensor_kind)",
}
ZOOKEEPER_PATH = "/clickhouse/tables/{shard}/${database}/${table}"

_CREATE_DATABASE = re.compile(r"^CREATE DATABASE IF NOT EXISTS (\w+)$")
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)(\s*\n\()", re.S)
_CREATE_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS (\w+)\.(\w+) AS")
_ALTER_TABLE = re.compile(r"^ALTER TABLE (\w+)\.(\w+)(\s)")
_ENGINE = re.compile(r"^ENGINE = (\w*MergeTree)(?:\((.*)\))?$", re.M)


def sharded_tables(settings: Settings) -> list[str]:
    """The configured names of the tables that have a local table on every node under a Distributed one."""
    names = settings.clickhouse.model_dump()
    return [names[field] for field in SHARDING_KEYS]


def machine_tables(settings: Settings) -> dict[str, str]:
    """The tables sharded by machine, by settings field: a shard's local table holds its machines' whole rows."""
    names = settings.clickhouse.model_dump()
    return {field: names[field] for field, key in SHARDING_KEYS.items() if key == MACHINE_SHARDING_KEY}


def sharding_key(settings: Settings, table: str) -> str:
    names = settings.clickhouse.model_dump()
    for field, key in SHARDING_KEYS.items():
        if names[field] == table:
            return key
    raise ValueError(f"table {table}: no sharding key for the cluster (plantwatch/warehouse.py, SHARDING_KEYS)")


def cluster_ddl(statement: str, settings: Settings) -> list[str]:
    """One single-node statement as the cluster's: ON CLUSTER and Replicated*MergeTree (or, `replicated = false`,
    neither: the statement is run on each node), local tables renamed, a Distributed table over each."""
    ch = settings.clickhouse
    on_cluster = f" ON CLUSTER {ch.cluster}" if ch.replicated else ""
    if match := _CREATE_DATABASE.match(statement):
        return [f"{statement}{on_cluster}"]
    if match := _CREATE_VIEW.match(statement):
        database, view = match.groups()
        body = statement[match.end() :]
        # the same view over the node's local tables: what a per-shard transform reads (transform.per_shard)
        local_body = re.sub(
            rf"\b{database}\.({'|'.join(map(re.escape, sharded_tables(settings)))})\b",
            lambda table: f"{table.group(0)}{ch.local_suffix}",
            body,
        )
        return [
            f"CREATE VIEW IF NOT EXISTS {database}.{view}{on_cluster} AS{body}",
            f"CREATE VIEW IF NOT EXISTS {database}.{view}{ch.local_suffix}{on_cluster} AS{local_body}",
        ]
    if match := _ALTER_TABLE.match(statement):
        database, table = match.group(1), match.group(2)
        rest = statement[match.end() :]
        out = [f"ALTER TABLE {database}.{table}{ch.local_suffix}{on_cluster}{match.group(3)}{rest}"]
        if rest.lstrip().upper().startswith("ADD COLUMN"):  # the Distributed table shows the new columns too
            out.append(f"ALTER TABLE {database}.{table}{on_cluster}{match.group(3)}{rest}")
        return out
    if match := _CREATE_TABLE.match(statement):
        database, table = match.group(1), match.group(2)
        local = f"{table}{ch.local_suffix}"
        body = statement[match.end() :]
        if ch.replicated:
            body = _ENGINE.sub(lambda engine: _replicated(engine, database, local), body, count=1)
            body = body.replace("non_replicated_deduplication_window", "replicated_deduplication_window")
        return [
            f"CREATE TABLE IF NOT EXISTS {database}.{local}{on_cluster}{match.group(3)}{body}",
            f"CREATE TABLE IF NOT EXISTS {database}.{table}{on_cluster} AS {database}.{local}\n"
            f"ENGINE = Distributed({ch.cluster}, {database}, {local}, {sharding_key(settings, table)})",
        ]
    raise ValueError(f"no cluster form for the statement: {statement.splitlines()[0][:120]}")


def _replicated(engine: re.Match[str], database: str, table: str) -> str:
    path = Template(ZOOKEEPER_PATH).substitute(database=database, table=table)
    arguments = [f"'{path}'", "'{replica}'", *([engine.group(2)] if engine.group(2) else [])]
    return f"ENGINE = Replicated{engine.group(1)}({', '.join(arguments)})"


def node_settings(settings: Settings, shard: int) -> Settings:
    """These settings pointed at the cluster's shard ``shard`` (0-based) itself (ClickHouseSettings.node)."""
    return settings.model_copy(update={"clickhouse": settings.clickhouse.node(shard)})
