"""Least privilege in ClickHouse: each component's user can do its job and nothing more.

Runs a private ClickHouse (own ports and state folder) whose users come from plantwatch/sql/access.yaml, exactly as
the local stack's do.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from string import Template

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from plantwatch import access, baseline, warehouse
from plantwatch.metrics import free_port
from plantwatch.producers.sdk_logger import SdkLogger
from plantwatch.reading import COLUMN_NAMES
from plantwatch.settings import Settings
from plantwatch.stack import Stack
from plantwatch.transform import Transformer
from tests.fixtures.pipeline import query_file

MART = "alerts"


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("secured"),
        clickhouse={"http_port": free_port(), "tcp_port": free_port(), "database": "sectest"},
    )
    stack = Stack(settings, ["clickhouse"])
    stack.up(timeout=60)
    try:
        warehouse.migrate(settings)
        transform = warehouse.client(settings, role="transform")
        transform.command(f"CREATE TABLE {MART} (machine_id String, n UInt32) ENGINE = MergeTree ORDER BY machine_id")
        transform.command(f"INSERT INTO {MART} VALUES ('L1-pump01', 1)")
        yield settings
    finally:
        stack.down()


def denied(fn, *args, **kwargs) -> str:
    """Run a ClickHouse call that must be refused; return the server's reason."""
    with pytest.raises(DatabaseError) as err:
        fn(*args, **kwargs)
    assert "ACCESS_DENIED" in str(err.value) or "Not enough privileges" in str(err.value), err.value
    return str(err.value)


def test_each_role_is_its_own_user(secured: Settings) -> None:
    for role in access.ROLES:
        assert warehouse.client(secured, role=role).command("SELECT currentUser()") == f"plantwatch_{role}"


def test_ingest_may_only_insert_into_raw(secured: Settings) -> None:
    ch = secured.clickhouse
    ingest = warehouse.client(secured, role="ingest")
    ingest.insert(
        ch.raw_readings_table,
        [["L1-pump01", "vib_x", "vibration", 1.5, "mm/s", datetime.now(UTC), 0, 1]],
        column_names=["machine_id", "sensor_id", "sensor_kind", "value", "unit", "event_time", "seq", "schema_version"],
    )
    assert warehouse.client(secured).command(f"SELECT count() FROM {ch.raw_readings_table}") == 1
    denied(ingest.query, f"SELECT * FROM {ch.raw_readings_table}")
    denied(ingest.query, f"SELECT * FROM {MART}")
    denied(ingest.command, f"INSERT INTO {MART} VALUES ('x', 1)")
    denied(ingest.command, f"DROP TABLE {ch.raw_readings_table}")
    denied(ingest.command, "CREATE TABLE sneaky (a UInt8) ENGINE = Memory")


def test_grafana_may_only_read_the_marts(secured: Settings) -> None:
    ch = secured.clickhouse
    grafana = warehouse.client(secured, role="grafana")
    assert grafana.query(f"SELECT machine_id, n FROM {MART}").result_rows == [("L1-pump01", 1)]
    denied(grafana.query, f"SELECT * FROM {ch.raw_readings_table}")
    denied(grafana.query, f"SELECT * FROM {ch.readings_view}")
    denied(grafana.command, f"INSERT INTO {MART} VALUES ('x', 2)")
    denied(grafana.command, f"TRUNCATE TABLE {MART}")
    denied(grafana.command, f"DROP TABLE {MART}")


def test_transform_owns_derived_tables_but_not_raw(secured: Settings) -> None:
    ch = secured.clickhouse
    transform = warehouse.client(secured, role="transform")
    transform.command("CREATE TABLE IF NOT EXISTS scratch (a UInt8) ENGINE = MergeTree ORDER BY a")
    transform.command("DROP TABLE scratch")
    assert transform.command(f"SELECT count() FROM {ch.raw_readings_table}") >= 0
    denied(transform.command, f"INSERT INTO {ch.raw_readings_table} (machine_id) VALUES ('x')")
    denied(transform.command, f"TRUNCATE TABLE {ch.raw_readings_table}")
    denied(transform.command, f"DROP TABLE {ch.raw_readings_table}")


def test_quality_reads_everything_and_writes_only_its_results(secured: Settings) -> None:
    ch = secured.clickhouse
    quality = warehouse.client(secured, role="quality")
    assert quality.command(f"SELECT count() FROM {ch.raw_readings_table}") >= 0
    denied(quality.command, f"INSERT INTO {MART} VALUES ('x', 3)")
    denied(quality.command, f"DROP TABLE {ch.raw_readings_table}")


def test_wrong_password_is_refused(secured: Settings) -> None:
    wrong = secured.model_copy(
        update={"clickhouse": secured.clickhouse.model_copy(update={"grafana_password": "not-the-password"})}
    )
    with pytest.raises(DatabaseError, match=r"Authentication failed|AUTHENTICATION_FAILED"):
        warehouse.client(wrong, role="grafana")


def test_passwords_stay_out_of_files_anyone_can_read(secured: Settings) -> None:
    users_file = Path(secured.state_dir) / "clickhouse" / "users.xml"
    stored = access.secrets_file(secured)
    assert stored.stat().st_mode & 0o077 == 0 and users_file.stat().st_mode & 0o077 == 0
    text = users_file.read_text()
    for role in access.ROLES:
        _, password = access.role_credentials(secured, role)
        assert password not in text  # only its SHA-256 is
    for statement in access.sql_statements(secured):
        assert all(access.role_credentials(secured, r)[1] not in statement for r in access.ROLES)


def test_roles_off_means_the_admin_user(secured: Settings) -> None:
    plain = secured.model_copy(update={"clickhouse": secured.clickhouse.model_copy(update={"roles": False})})
    assert warehouse.client(plain, role="grafana").command("SELECT currentUser()") == access.LOCAL_ADMIN


@pytest.mark.parametrize("hostile", ["../../etc/passwd", "x'; DROP TABLE readings; --", "", "a/b"])
def test_sdk_logger_refuses_a_machine_id_that_is_not_an_identifier(tmp_path: Path, hostile: str) -> None:
    """The machine id names an archive folder: a hostile one must not write anywhere, in or out of the archive."""
    settings = Settings(state_dir=tmp_path / "state", kafka={"port": free_port()})  # no broker needed to refuse
    logger = SdkLogger(settings)
    try:
        with pytest.raises(ValueError, match="not a machine id"):
            logger.log(
                hostile,
                1_764_000_000_000,
                [{"sensor_id": "t", "kind": "temperature", "value": 1.0, "unit": "C", "seq": 0}],
            )
    finally:
        logger.close(0.1)
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix in {".zst", ".jsonl"}]
    assert written == []
    assert not (tmp_path / "etc").exists()


# --- Least privilege that holds (issue 17): the ways around the grants, each refused with nothing changed ---------

SENSORS = (("current", "current", "A", 40.0), ("vib_x", "vibration", "mm/s", 2.0), ("bearing_temp", "temperature",
           "C", 55.0))  # fmt: skip
BUILT_MACHINE = "L1-pump01"


@pytest.fixture(scope="module")
def built(secured: Settings) -> Settings:
    """The demo's database on the private server (the users are granted on it too), migrated, 40 minutes of one
    machine's readings landed by the ingest user, every table migrate makes holding rows, and `dbt build` run as
    the transform user: the objects dbt makes (tables, views, materialized views, dictionaries) are all there."""
    settings = secured.scoped("secdemo", database=secured.clickhouse.managed_databases[1])
    assert settings.clickhouse.roles
    warehouse.migrate(settings)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=45)
    columns: list[list] = [[] for _ in COLUMN_NAMES]
    for second in range(40 * 60):
        for n, (sensor, kind, unit, level) in enumerate(SENSORS):
            value = level * (1 + 0.01 * math.sin(second / 30 + n)) + 0.001 * (second % 7)
            row = (BUILT_MACHINE, sensor, kind, value, unit, start + timedelta(seconds=second), second, 1)
            for column, item in zip(columns, row, strict=True):
                column.append(item)
    ch = settings.clickhouse
    warehouse.client(settings, role="ingest").insert(
        ch.raw_readings_table, columns, column_names=list(COLUMN_NAMES), column_oriented=True
    )
    transformer = Transformer(settings)
    transformer.build()
    baseline.fit(settings, BUILT_MACHINE, start, start + timedelta(minutes=30), transformer=transformer)
    admin = warehouse.client(settings)
    admin.command(f"INSERT INTO {ch.fault_labels_table} (run_id, machine_id, fault_kind, start_time, end_time) "
                  f"VALUES ('sec', '{BUILT_MACHINE}', 'spike', now64(3) - 60, now64(3))")  # fmt: skip
    # not read by dbt: any rows will do, as long as they are recent (a random run_at behind dq_results' TTL was
    # deleted by a background TTL merge between two snapshots: a flaky "changed something")
    recent = "SELECT * REPLACE (now64(3) AS run_at) FROM generateRandom() LIMIT 3"
    admin.command(f"INSERT INTO {ch.dq_results_table} {recent}")
    admin.command(f"INSERT INTO {ch.alert_state_table} SELECT * FROM generateRandom() LIMIT 3")
    for table in (ch.raw_readings_table, ch.fault_labels_table, ch.dq_results_table, ch.baselines_table):
        assert admin.command(f"SELECT count() FROM {table}"), f"{table} is empty: its truncation would not show"
    return settings


def state(settings: Settings) -> dict[str, object]:
    """What an attack must not change: every database, and in ours each object's definition and each table's rows."""
    admin = warehouse.client(settings)
    tables = query_file(settings, "tables")
    rows = {
        name: admin.command(f"SELECT count() FROM {settings.clickhouse.database}.`{name}`")
        for name, engine, _ in tables
        if engine.endswith("MergeTree")
    }
    databases = admin.query("SELECT name FROM system.databases ORDER BY name").result_rows
    return {"databases": databases, "tables": tables, "rows": rows}


def refused_and_unchanged(settings: Settings, role: access.Role, statement: str) -> None:
    before = state(settings)
    client = warehouse.client(settings, role=role)
    with pytest.raises(DatabaseError) as err:
        client.command(statement)
    assert any(code in str(err.value) for code in ("ACCESS_DENIED", "Not enough privileges", "PATH_ACCESS_DENIED")), \
        err.value  # fmt: skip
    assert state(settings) == before, f"{statement!r} was refused but changed something"


RAW = "${raw_readings_table}"
TRANSFORM_ATTACKS = {
    # Issue 17, defect 5: engines and functions that reach outside the server
    "file_engine_on_secrets": "CREATE TABLE stolen (s String) ENGINE = File(RawBLOB, '${state}/secrets/"
                              "clickhouse-users.json')",
    "url_engine_to_own_http": "CREATE TABLE callback (s String) ENGINE = URL('http://127.0.0.1:${http_port}/"
                              "?query=DROP+TABLE+${database}.${dq_results_table}', LineAsString)",
    "s3_engine": "CREATE TABLE bucket (s String) ENGINE = S3('http://127.0.0.1:${http_port}/x', LineAsString)",
    "remote_via_distributed": "CREATE TABLE spread AS ${database}.${raw_readings_table} "
                              "ENGINE = Distributed(default, ${database}, ${raw_readings_table})",
    "buffer_into_raw": "CREATE TABLE buf AS ${database}.${raw_readings_table} "
                       "ENGINE = Buffer(${database}, ${raw_readings_table}, 1, 0, 1, 1, 2, 1, 2)",
    "memory_engine": "CREATE TABLE scratch_memory (a UInt8) ENGINE = Memory",
    "file_function": "SELECT * FROM file('/etc/shadow', 'LineAsString')",
    "url_function": "SELECT * FROM url('http://127.0.0.1:${http_port}/?query=SELECT+1', 'LineAsString')",
    "remote_function": "SELECT * FROM remote('127.0.0.1:${tcp_port}', system.one, 'default', '')",
    # defect 6: DROP DATABASE used to drop dq_results and the readings view before ACCESS_DENIED
    "drop_database": "DROP DATABASE ${database}",
    "truncate_database": "TRUNCATE DATABASE ${database}",
    "detach_database": "DETACH DATABASE ${database}",
    "drop_readings_view": "DROP VIEW ${database}.${readings_view}",
    "replace_readings_view": "CREATE OR REPLACE VIEW ${database}.${readings_view} AS SELECT 1 AS one",
    "drop_dq_results": "DROP TABLE ${database}.${dq_results_table}",
    "drop_baselines": "DROP TABLE ${database}.${baselines_table}",
    "truncate_baselines": "TRUNCATE TABLE ${database}.${baselines_table}",
    "delete_baselines": "ALTER TABLE ${database}.${baselines_table} DELETE WHERE 1",
    "drop_raw": f"DROP TABLE ${{database}}.{RAW}",
    "drop_raw_first_of_two": f"DROP TABLE ${{database}}.{RAW}, ${{database}}.rolling_aggregates",
    "truncate_raw": f"TRUNCATE TABLE ${{database}}.{RAW}",
    "lightweight_delete_raw": f"DELETE FROM ${{database}}.{RAW} WHERE 1",
    "retention_of_raw": f"ALTER TABLE ${{database}}.{RAW} MODIFY TTL toDateTime(event_time) + INTERVAL 1 DAY",
    "rename_raw": f"RENAME TABLE ${{database}}.{RAW} TO ${{database}}.raw_gone",
    "exchange_raw": f"EXCHANGE TABLES ${{database}}.{RAW} AND ${{database}}.rolling_aggregates",
    "detach_raw": f"DETACH TABLE ${{database}}.{RAW}",
    "insert_raw": f"INSERT INTO ${{database}}.{RAW} (machine_id) VALUES ('forged')",
    "insert_dq_results": "INSERT INTO ${database}.${dq_results_table} (run_id) VALUES ('forged')",
    "insert_fault_labels": "INSERT INTO ${database}.${fault_labels_table} (run_id) VALUES ('forged')",
    "mv_into_raw_as_ingest": f"CREATE MATERIALIZED VIEW forge TO ${{database}}.{RAW} DEFINER = plantwatch_ingest "
                             f"SQL SECURITY DEFINER AS SELECT 'x' AS machine_id FROM ${{database}}.rolling_aggregates",
    "stop_merges_of_raw": f"SYSTEM STOP MERGES ${{database}}.{RAW}",
    "row_policy_hiding_raw": f"CREATE ROW POLICY hide ON ${{database}}.{RAW} USING 0 TO ALL",
}  # fmt: skip


@pytest.mark.parametrize("attack", sorted(TRANSFORM_ATTACKS))
def test_transform_attack_is_refused_with_nothing_changed(built: Settings, attack: str) -> None:
    values = {**built.clickhouse.model_dump(), "state": built.state_dir}
    refused_and_unchanged(built, "transform", Template(TRANSFORM_ATTACKS[attack]).substitute(values))


@pytest.mark.parametrize("role", ["ingest", "quality", "grafana"])
@pytest.mark.parametrize(
    "statement",
    ["SELECT * FROM file('/etc/shadow', 'LineAsString')",
     "SELECT * FROM url('http://127.0.0.1:${http_port}/?query=SELECT+1', 'LineAsString')",
     "SELECT * FROM remote('127.0.0.1:${tcp_port}', system.one, 'default', '')",
     "DROP DATABASE ${database}", "CREATE TABLE ${database}.stolen (s String) ENGINE = File(RawBLOB, '/etc/shadow')"],
)  # fmt: skip
def test_no_component_reaches_outside_or_drops_the_database(built: Settings, role: access.Role, statement: str) -> None:
    refused_and_unchanged(built, role, Template(statement).substitute(built.clickhouse.model_dump()))


def test_a_dictionary_cannot_run_a_command_or_call_a_url(built: Settings, tmp_path: Path) -> None:
    """clickhouse-local (the chdb engine) lets DDL make dictionaries from commands and URLs, which a real server
    refuses; the local server's process may start no program and open no connection, so both fail. One that reads
    as `default` (no password: chdb's own session) reads nothing."""
    ch = built.clickhouse
    transform = warehouse.client(built, role="transform")
    marker = tmp_path / "pwned"
    sources = {
        "exe": f"EXECUTABLE(COMMAND 'touch {marker}; echo 1' FORMAT 'TabSeparated')",
        "http": f"HTTP(URL 'http://127.0.0.1:{ch.http_port}/?query=SELECT+1,2' FORMAT 'TabSeparated')",
        "as_default": f"CLICKHOUSE(HOST '127.0.0.1' PORT {ch.tcp_port} USER 'default' "
        f"QUERY 'SELECT 1, machine_id FROM {ch.database}.{ch.raw_readings_table}')",
        "file": "FILE(PATH '/etc/hostname' FORMAT 'TabSeparated')",
    }
    for name, source in sources.items():
        # one HTTP try: the refused connection is retried with backoff for ~30 s otherwise (the outcome is the same)
        transform.command(f"CREATE DICTIONARY IF NOT EXISTS sneaky_{name} (k UInt64, v String) PRIMARY KEY k "
                          f"SOURCE({source}) LIFETIME(0) LAYOUT(HASHED()) SETTINGS(http_max_tries = 1)")  # fmt: skip
        try:
            with pytest.raises(DatabaseError):
                transform.command(f"SELECT dictGet('sneaky_{name}', 'v', toUInt64(1))")
        finally:
            transform.command(f"DROP DICTIONARY sneaky_{name}")
    assert not marker.exists()


def test_the_engines_own_session_and_the_admin(built: Settings) -> None:
    """`default` (chdb's own session, no password) may open the listeners and nothing more; the admin has a
    generated password and no way outside the server either."""
    ch = built.clickhouse
    engine = built.model_copy(update={"clickhouse": ch.model_copy(update={"user": "default", "password": ""})})
    own = warehouse.client(engine, database="default")
    assert own.command("SELECT currentUser()") == "default"
    for statement in (
        "SELECT * FROM file('/etc/shadow', 'LineAsString')",
        f"SELECT count() FROM {ch.database}.{ch.raw_readings_table}",
        f"DROP DATABASE {ch.database}",
        "SELECT name FROM system.users",
    ):
        before = state(built)
        with pytest.raises(DatabaseError, match=r"ACCESS_DENIED|Not enough privileges"):
            own.command(statement)
        assert state(built) == before
    user, password = access.admin_credentials(built)
    assert user == access.LOCAL_ADMIN and len(password) >= 20
    nopass = built.model_copy(update={"clickhouse": ch.model_copy(update={"user": user, "password": ""})})
    with pytest.raises(DatabaseError, match=r"AUTHENTICATION_FAILED|Authentication failed"):
        warehouse.client(nopass)
    admin = warehouse.client(built)
    for statement in (
        "SELECT * FROM file('/etc/shadow', 'LineAsString')",
        f"SELECT * FROM url('http://127.0.0.1:{ch.http_port}/?query=SELECT+1', 'LineAsString')",
    ):
        with pytest.raises(DatabaseError, match=r"ACCESS_DENIED|Not enough privileges"):
            admin.command(statement)
    assert (Path(built.state_dir) / "clickhouse" / "user_files").is_dir()


def test_transform_still_does_all_dbt_and_baselines_need(built: Settings) -> None:
    """dbt build / run / --full-refresh (seeds, dictionaries, materialized views, incremental models) and a
    commissioning baseline fit, as the transform user on a database migrate made."""
    transformer = Transformer(built)
    transformer.build(full_refresh=True)
    transformer.run()
    transformer.build()
    start = warehouse.client(built).command(
        f"SELECT min(event_time) FROM {built.clickhouse.readings_view} WHERE machine_id = '{BUILT_MACHINE}'"
    )
    start = (start if isinstance(start, datetime) else datetime.fromisoformat(str(start))).replace(tzinfo=UTC)
    baseline.fit(built, BUILT_MACHINE, start, start + timedelta(minutes=30), transformer=transformer)
    fitted = warehouse.client(built).command(
        f"SELECT count() FROM {built.clickhouse.baselines_table} WHERE machine_id = '{BUILT_MACHINE}'"
    )
    assert fitted >= 1
    transformer.build()
