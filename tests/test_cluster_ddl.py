"""Cluster settings and the cluster DDL, rendered (no engine needed, except to parse what was rendered).

Unset cluster settings render exactly today's single-node DDL and clients; set, the raw tables become
Replicated*MergeTree ON CLUSTER with the {shard}/{replica} macros (or, the local cluster, plain *MergeTree per node)
under Distributed tables sharded by a hash of machine_id.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from plantwatch import access, warehouse
from plantwatch.settings import PROJECT_ROOT, Settings
from plantwatch.stack import Stack
from plantwatch.stack.cluster import cluster_environment, local_cluster
from plantwatch.transform import Transformer, TransformError, dbt_env, dbt_vars, shard_settings, target_dir

SQL_FILES = sorted(warehouse.SQL_DIR.glob("*.sql"))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PLANTWATCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no plantwatch.toml


def with_cluster(**clickhouse: object) -> Settings:
    base = Settings()
    update = {"cluster": "plantwatch", "shards": 2, "replicas": 2, **clickhouse}
    return base.model_copy(update={"clickhouse": base.clickhouse.model_copy(update=update)})


def all_statements(settings: Settings) -> list[str]:
    return [statement for path in SQL_FILES for statement in warehouse.statements(path, settings)]


def test_unset_cluster_settings_are_todays_single_node() -> None:
    settings = Settings()
    kafka, ch = settings.kafka, settings.clickhouse
    assert kafka.bootstrap_servers == "127.0.0.1:9092"
    assert kafka.client_config()["bootstrap.servers"] == "127.0.0.1:9092"
    assert (kafka.brokers, kafka.replication_factor, kafka.min_insync_replicas) == (1, None, None)
    assert (ch.cluster, ch.shards, ch.replicas, ch.client_settings) == (None, 1, 1, {})


def test_unset_cluster_renders_exactly_todays_ddl() -> None:
    settings = Settings()
    for path in SQL_FILES:
        assert warehouse.statements(path, settings) == warehouse.render(path, settings)
    text = "\n".join(all_statements(settings))
    for token in ("ON CLUSTER", "Distributed", "Replicated", "_local", "{shard}"):
        assert token not in text


def test_kafka_cluster_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTWATCH_KAFKA__PORT", "19092")
    monkeypatch.setenv("PLANTWATCH_KAFKA__BROKERS", "3")
    monkeypatch.setenv("PLANTWATCH_KAFKA__REPLICATION_FACTOR", "3")
    monkeypatch.setenv("PLANTWATCH_KAFKA__MIN_INSYNC_REPLICAS", "2")
    kafka = Settings().kafka
    assert kafka.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094"
    assert (kafka.replication_factor, kafka.min_insync_replicas) == (3, 2)
    monkeypatch.setenv("PLANTWATCH_KAFKA__BOOTSTRAP", "k1:9092,k2:9092")
    assert Settings().kafka.bootstrap_servers == "k1:9092,k2:9092"


def test_clickhouse_cluster_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__CLUSTER", "plantwatch")
    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__SHARDS", "2")
    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__CLIENT_SETTINGS__DISTRIBUTED_FOREGROUND_INSERT", "1")
    ch = Settings().clickhouse
    assert (ch.cluster, ch.shards, ch.replicas) == ("plantwatch", 2, 1)
    assert ch.client_settings == {"distributed_foreground_insert": "1"}  # sent as a query parameter either way
    assert ch.node_ports(1) == (18123, 19000)


def test_a_shard_on_a_host_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """clickhouse.shard_hosts: the shard-by-shard modes reach shard k at its own host on the configured ports (no
    port step); a list that does not name one host per shard is refused."""
    from pydantic import ValidationError

    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__CLUSTER", "plantwatch")
    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__SHARDS", "2")
    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__REPLICATED", "false")
    monkeypatch.setenv("PLANTWATCH_TRANSFORM__PER_SHARD", "true")
    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__SHARD_HOSTS", '["ch-shard-0", "ch-shard-1"]')
    settings = Settings()
    node = warehouse.node_settings(settings, 1).clickhouse
    assert (node.host, node.http_port, node.tcp_port, node.database) == ("ch-shard-1", 8123, 9000, "plantwatch")
    shard = shard_settings(settings, 0).clickhouse
    assert (shard.host, shard.http_port, shard.database) == ("ch-shard-0", 8123, "plantwatch_local")
    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__SHARD_HOSTS", '["ch-shard-0"]')
    with pytest.raises(ValidationError, match=r"shard_hosts names 1 host\(s\) for 2 shard\(s\)"):
        Settings()


def test_shards_without_a_cluster_name_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    monkeypatch.setenv("PLANTWATCH_CLICKHOUSE__SHARDS", "2")
    with pytest.raises(ValidationError, match=r"clickhouse\.cluster"):
        Settings()


def test_cluster_ddl_replicated_on_cluster_with_macros() -> None:
    settings = with_cluster()
    statements = all_statements(settings)
    assert statements == all_statements(settings)  # deterministic
    assert all(" ON CLUSTER plantwatch" in s for s in statements)
    raw = next(s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS plantwatch.readings_raw_local "))
    assert (
        "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantwatch/readings_raw_local', '{replica}')"
        in raw
    )
    assert "SETTINGS replicated_deduplication_window = 1000" in raw
    assert "ORDER BY (machine_id, sensor_id, event_time, seq)" in raw
    labels = next(s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS plantwatch.fault_labels_local "))
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/plantwatch/fault_labels_local', '{replica}', " \
           "recorded_at)" in labels  # fmt: skip
    assert (
        "CREATE TABLE IF NOT EXISTS plantwatch.readings_raw ON CLUSTER plantwatch AS plantwatch.readings_raw_local\n"
        "ENGINE = Distributed(plantwatch, plantwatch, readings_raw_local, CRC32(machine_id))"
    ) in statements
    # The view users query reads the Distributed table; ALTERs go to the local tables.
    assert "CREATE VIEW IF NOT EXISTS plantwatch.readings ON CLUSTER plantwatch AS\n" \
           "SELECT * FROM plantwatch.readings_raw FINAL" in statements  # fmt: skip
    # ... and its twin over the node's own local table, what a per-shard transform reads (transform.per_shard)
    assert "CREATE VIEW IF NOT EXISTS plantwatch.readings_local ON CLUSTER plantwatch AS\n" \
           "SELECT * FROM plantwatch.readings_raw_local FINAL" in statements  # fmt: skip
    assert all(re.match(r"ALTER TABLE plantwatch\.\w+_local ON CLUSTER", s) or "ADD COLUMN" in s
               for s in statements if s.startswith("ALTER"))  # fmt: skip


def test_every_table_is_local_under_a_distributed_one_sharded_by_machine() -> None:
    settings = with_cluster()
    statements = all_statements(settings)
    created = re.compile(r"CREATE TABLE IF NOT EXISTS plantwatch\.(\w+)")
    locals_ = {m.group(1) for s in statements if (m := created.match(s)) and m.group(1).endswith("_local")}
    distributed = {m.group(1): s for s in statements if (m := created.match(s)) and "Distributed(" in s}
    assert {f"{name}_local" for name in distributed} == locals_
    # Every table a single node has, the cluster has under the same name: apps, dbt and Grafana are unchanged.
    single = {m.group(1) for s in all_statements(Settings()) if (m := created.match(s))}
    assert set(distributed) == single
    for table in ("readings_raw", "fault_labels", "machine_baselines", "alert_events", "machine_config"):
        assert distributed[table].endswith(f"{table}_local, CRC32(machine_id))")
    local_engines = [s for s in statements if (m := created.match(s)) and m.group(1) in locals_]
    assert all("ENGINE = Replicated" in s and "'{replica}'" in s for s in local_engines)


def test_local_cluster_ddl_is_plain_mergetree_without_on_cluster() -> None:
    """The chdb-served engine cannot replicate (ReplicatedMergeTree read-only, ON CLUSTER refused): the local
    cluster runs the same DDL on each node, plain *MergeTree under Distributed tables."""
    statements = all_statements(with_cluster(replicas=1, replicated=False))
    assert not any("ON CLUSTER" in s or "Replicated" in s for s in statements)
    raw = next(s for s in statements if s.startswith("CREATE TABLE IF NOT EXISTS plantwatch.readings_raw_local"))
    assert "ENGINE = ReplacingMergeTree\n" in raw and "non_replicated_deduplication_window = 1000" in raw
    assert "ENGINE = Distributed(plantwatch, plantwatch, readings_raw_local, CRC32(machine_id))" in "\n".join(
        statements
    )


def test_a_table_without_a_sharding_key_is_an_error() -> None:
    statement = "CREATE TABLE IF NOT EXISTS plantwatch.mystery\n(\n    x UInt8\n)\nENGINE = MergeTree\nORDER BY x"
    with pytest.raises(ValueError, match="no sharding key"):
        warehouse.cluster_ddl(statement, with_cluster())


def test_cluster_ddl_parses(tmp_path: Path) -> None:
    """Every rendered cluster statement is valid ClickHouse SQL (the engine's own parser: formatQuery)."""
    pytest.importorskip("chdb")
    statements = all_statements(with_cluster()) + all_statements(with_cluster(replicas=1, replicated=False))
    code = (
        "import sys, json, chdb\n"
        "for s in json.load(sys.stdin):\n"
        "    q = s.replace('\\\\', '\\\\\\\\').replace(\"'\", \"\\\\'\")\n"
        "    chdb.query(f\"SELECT formatQuery('{q}')\", 'TSV')\n"
        "print('parsed', end='')\n"
    )
    import json

    result = subprocess.run([sys.executable, "-c", code], input=json.dumps(statements), capture_output=True,
                            text=True, cwd=tmp_path, timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0 and result.stdout == "parsed", result.stderr[-2000:]


@pytest.mark.parametrize(
    ("clickhouse", "cluster"),
    [
        ({}, ""),  # dbt-clickhouse: an empty cluster is no cluster (no ON CLUSTER), the single-node default
        ({"cluster": "plantwatch"}, "plantwatch"),
        # The local cluster's engine refuses ON CLUSTER: dbt runs there without it.
        ({"cluster": "plantwatch", "replicated": False}, ""),
    ],
)
def test_dbt_profile_takes_the_cluster_from_the_settings(clickhouse: dict[str, object], cluster: str) -> None:
    import jinja2

    base = Settings()
    settings = base.model_copy(update={"clickhouse": base.clickhouse.model_copy(update=clickhouse)})
    env = dbt_env(settings)
    profile = yaml.safe_load((PROJECT_ROOT / "dbt_project" / "profiles.yml").read_text())
    template = profile["plantwatch"]["outputs"]["default"]["cluster"]
    rendered = jinja2.Template(template).render(env_var=lambda name, default="": env.get(name, default))
    assert rendered == cluster


def test_clients_send_the_cluster_client_settings(stack: Stack, settings: Settings) -> None:
    """Every client of the settings sends clickhouse.client_settings: the server sees them on each query."""
    assert warehouse.client(settings, database="default").command("SELECT getSetting('max_threads')") != 3
    tuned = settings.model_copy(
        update={"clickhouse": settings.clickhouse.model_copy(update={"client_settings": {"max_threads": 3}})}
    )
    assert warehouse.client(tuned, database="default").command("SELECT getSetting('max_threads')") == 3


def test_the_transform_user_may_not_alter_or_drop_the_local_tables_either() -> None:
    """On a cluster the ingest writes `readings_raw_local` & co. (under the Distributed `readings_raw`): the transform
    user's `ALTER/DROP/TRUNCATE/OPTIMIZE` revokes name them too, and name nothing local without a cluster."""
    single = access.migrated_objects(Settings())
    clustered = access.migrated_objects(with_cluster())
    local = {name for name in clustered if name.endswith("_local")}
    assert not any(name.endswith("_local") for name in single)
    assert Settings().clickhouse.raw_readings_table + "_local" in local
    assert Settings().clickhouse.readings_view + "_local" in local  # the view over the local tables
    assert set(clustered) == set(single) | local
    revokes = access._statements(with_cluster())["transform"]["revokes"]
    for name in local:
        assert any(line.endswith(f".{name}") and line.startswith("ALTER, DROP") for line in revokes), name


def test_on_a_cluster_each_grant_and_revoke_on_a_table_names_its_local_table_too() -> None:
    """The rows live in the local tables and a per-shard ingest (`ingest.into_shard`) inserts there directly: the
    ingest user may append to `readings_raw_local` and `fault_labels_local`, and the transform user's INSERT revokes
    on the raw tables close their local tables too. Without a cluster nothing local is named."""
    ch = Settings().clickhouse
    raw, labels = ch.raw_readings_table, ch.fault_labels_table
    clustered, single = access._statements(with_cluster()), access._statements(Settings())
    for database in ch.managed_databases:
        for table in (raw, labels):
            assert f"INSERT, SHOW COLUMNS ON {database}.{table}_local" in clustered["ingest"]["grants"]
            assert f"INSERT ON {database}.{table}_local" in clustered["transform"]["revokes"]
    for role in access.ROLES:
        assert not any("_local" in line for kind in ("grants", "revokes") for line in single[role][kind]), role
        for kind in ("grants", "revokes"):  # the cluster adds local twins, and takes nothing away
            assert set(single[role][kind]) <= set(clustered[role][kind]), (role, kind)


def test_a_per_shard_transform_reads_each_shards_own_tables_and_needs_unreplicated_shards() -> None:
    """transform.per_shard (the local cluster's default): dbt on shard k gets node k, the shard database, the local
    tables sharded by machine and the local readings view as sources, the spec limits (configuration, sharded by
    model) through their Distributed table, and the seed's machines cut to shard k. A replicated cluster or no
    cluster refuses the setting."""
    cluster = local_cluster(Settings(), brokers=1, shards=2)
    assert cluster.transform.per_shard
    assert cluster_environment(cluster)["PLANTWATCH_TRANSFORM__PER_SHARD"] == "true"
    shard = shard_settings(cluster, 1)
    ch = cluster.clickhouse
    assert (shard.clickhouse.http_port, shard.clickhouse.database) == (ch.node_ports(1)[0], f"{ch.database}_local")
    names = dbt_vars(shard)
    assert names["raw_readings_table"] == "readings_raw_local" and names["readings_view"] == "readings_local"
    assert names["machine_config_table"] == "machine_config_local" and names["baselines_table"].endswith("_local")
    assert names["spec_limit_config_table"] == "spec_limit_config"
    assert names["source_database"] == ch.database
    assert names["shard_filter"] == "CRC32(machine_id) % 2 = 1"
    assert not shard.transform.per_shard and target_dir(shard) != target_dir(shard_settings(cluster, 0))
    for clickhouse in ({}, {"cluster": "plantwatch"}):  # no cluster; a replicated one (the default)
        with pytest.raises(ValueError, match="per_shard needs a cluster without replicas"):
            Settings(transform={"per_shard": True}, clickhouse=clickhouse)


def test_a_transform_process_per_shard_runs_only_its_shard() -> None:
    """transform.shard (`plantwatch transform --shard k`): a Transformer for shard k alone; one out of range, or
    without per_shard, is one clear error."""
    cluster = local_cluster(Settings(), brokers=1, shards=2)
    assert list(Transformer(cluster)._shards) == [0, 1]
    one = cluster.model_copy(update={"transform": cluster.transform.model_copy(update={"shard": 1})})
    (shard,) = Transformer(one)._shards.values()
    assert shard.settings.clickhouse.http_port == cluster.clickhouse.node_ports(1)[0]
    assert shard.settings.transform.shard is None and not shard._shards
    with pytest.raises(TransformError, match=r"transform\.shard 2: the cluster has shards 0\.\.1"):
        Transformer(one.model_copy(update={"transform": one.transform.model_copy(update={"shard": 2})}))
    with pytest.raises(TransformError, match=r"transform\.shard needs transform\.per_shard"):
        Transformer(Settings(transform={"shard": 0}))
