"""Least privilege in ClickHouse: each component's user can do its job and nothing more.

Runs a private ClickHouse (own ports and state folder) whose users come from plantwatch/sql/access.yaml, exactly as
the local stack's do.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from plantwatch import access, warehouse
from plantwatch.metrics import free_port
from plantwatch.settings import Settings
from plantwatch.stack import Stack
from producers.sdk_logger import SdkLogger

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
    assert warehouse.client(plain, role="grafana").command("SELECT currentUser()") == "default"


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
