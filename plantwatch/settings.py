"""The one place every address, port, topic, database and table name is defined.

Values come, highest priority first, from: environment variables (``PLANTWATCH_`` prefix, ``__`` between
levels, e.g. ``PLANTWATCH_KAFKA__PORT=19092``), a TOML file (``PLANTWATCH_CONFIG`` or ``./plantwatch.toml``),
then the defaults below. Everything else (dbt vars, Grafana provisioning, Kubernetes ConfigMaps, tests) reads them
from here.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import zlib
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ImportString,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

# PROJECT_ROOT (the checkout) for the tests and benchmarks; no default is built on it (a wheel has no checkout).
from plantwatch.resources import PROJECT_ROOT as PROJECT_ROOT
from plantwatch.resources import package_folder, project_folder, workspace

LOOPBACK = "127.0.0.1"

Port = Annotated[int, Field(ge=1, le=65535)]
AnyPort = Annotated[int, Field(ge=0, le=65535)]  # 0: any free port
# Names that reach SQL (databases, tables, users) and Kafka (topics) are checked here, at load, by a pattern: a
# database called `x; DROP TABLE y` never gets as far as a statement.
SqlName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
TopicName = Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,249}$")]
# How a cluster spreads machines over its shards: the Distributed tables' sharding key (plantwatch/warehouse.py) and
# ClickHouseSettings.machine_shard, its value in Python (ClickHouse's CRC32 is zlib's), which the producers use to
# send each machine's readings to its shard's topic (KafkaSettings.topic_per_shard). The two must agree.
MACHINE_SHARDING_KEY = "CRC32(machine_id)"
ENV_PREFIX = "PLANTWATCH_"
# PLANTWATCH_* variables that are not settings: the config file's path, and `make test`'s flag for the test session.
NOT_SETTINGS = frozenset({"PLANTWATCH_CONFIG", "PLANTWATCH_STOP_STACK"})
# Kubernetes sets <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_... for every Service in the namespace (service links): a
# Service named plantwatch-... would give such variables to every pod.
KUBERNETES_SERVICE_LINK = re.compile(
    r"^(?!.*__)PLANTWATCH(_[A-Z0-9_]+)?_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)?)$"
)


class SettingsError(ValueError):
    """A configuration that cannot be loaded: one line naming the file or variable."""


class Section(BaseModel):
    """A group of settings; an unknown key in it (a typo in the TOML file or a PLANTWATCH_<GROUP>__<KEY> variable)
    is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class KafkaSettings(Section):
    version: str = "4.1.1"
    host: str = LOOPBACK
    port: Port = 9092
    controller_port: Port = 9093
    heap: str = "512m"
    readings_topic: TopicName = "plantwatch.readings"
    dead_letter_topic: TopicName = "plantwatch.readings.dlq"
    partitions: PositiveInt = 4
    # With a ClickHouse cluster of N shards: a readings topic per shard (`<readings_topic>.shard<k>`, k = 0..N-1), the
    # producers sending each machine's readings to its shard's topic and one ingest per shard (`plantwatch ingest
    # --shard k`, a consumer group of its own) landing them, so a shard that stops holds back its own machines only
    # (docs/scale-out.md). Off: one readings topic and one consumer group for all shards.
    topic_per_shard: bool = False
    # A cluster (docs/scale-out.md). `bootstrap`: the brokers clients start from ("h1:9092,h2:9092"); unset: `brokers`
    # brokers on host at port, port + 1, ... (the local stack runs that many: `plantwatch stack up --kafka-brokers`).
    # The topics' replication factor and min.insync.replicas; unset: the brokers' defaults (today's: 1 and 1).
    brokers: PositiveInt = 1
    bootstrap: str | None = None
    replication_factor: PositiveInt | None = None
    min_insync_replicas: PositiveInt | None = None
    # Client security, passed through to every client (producers, stream apps, KEDA's TriggerAuthentication).
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None

    @property
    def bootstrap_servers(self) -> str:
        if self.bootstrap:
            return self.bootstrap
        return ",".join(f"{self.host}:{self.port + node}" for node in range(self.brokers))

    def client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every producer, consumer and admin client."""
        conf = {"bootstrap.servers": self.bootstrap_servers, "security.protocol": self.security_protocol}
        optional = {
            "sasl.mechanism": self.sasl_mechanism,
            "sasl.username": self.sasl_username,
            "sasl.password": self.sasl_password,
            "ssl.ca.location": self.ssl_cafile,
        }
        conf.update({k: v for k, v in optional.items() if v})
        return conf


class ClickHouseSettings(Section):
    host: str = LOOPBACK
    http_port: Port = 8123
    tcp_port: Port = 9000
    # The admin (migrations, tests, benches; components connect as their own users below). Unset: the local
    # stack's `plantwatch_admin` with its generated password once the stack has made one, else `default` with no
    # password (plantwatch/access.py, admin_credentials). A server of your own: set both.
    user: SqlName | None = None
    password: str | None = None
    database: SqlName = "plantwatch"
    raw_readings_table: SqlName = "readings_raw"
    readings_view: SqlName = "readings"
    fault_labels_table: SqlName = "fault_labels"
    dq_results_table: SqlName = "dq_results"  # written by `plantwatch check`
    baselines_table: SqlName = "machine_baselines"  # commissioning baselines (`plantwatch baseline fit`)
    # Machines and spec limits configured by `plantwatch machine set` / `plantwatch limits set` (over the seeds).
    machine_config_table: SqlName = "machine_config"
    spec_limit_config_table: SqlName = "spec_limit_config"
    alert_state_table: SqlName = "alert_state"  # `plantwatch alerts --every`: each rule and label set's state
    alert_events_table: SqlName = "alert_events"  # ... and every change of it (the alert history)
    raw_ttl_days: PositiveInt = 365
    # Least privilege (plantwatch/sql/access.yaml): each component connects as its own user. Passwords come from
    # the environment (e.g. PLANTWATCH_CLICKHOUSE__INGEST_PASSWORD, from a Kubernetes Secret); the local stack
    # generates any that are unset into its state folder. `roles = false` makes every component use `user`.
    roles: bool = True
    ingest_user: SqlName = "plantwatch_ingest"
    ingest_password: str | None = None
    transform_user: SqlName = "plantwatch_transform"
    transform_password: str | None = None
    quality_user: SqlName = "plantwatch_quality"
    quality_password: str | None = None
    grafana_user: SqlName = "plantwatch_grafana"
    grafana_password: str | None = None
    # A cluster (docs/scale-out.md; unset: one node, today's DDL). With a `cluster` name (a `remote_servers` entry
    # of every node), each raw table is `<name><local_suffix>` on every node (Replicated*MergeTree, ON CLUSTER, the
    # {shard}/{replica} macros) under a `Distributed` table with the table's own name, sharded by a hash of
    # machine_id: the apps, dbt and Grafana read and write the names above unchanged. `replicated = false`: plain
    # *MergeTree on each node, DDL applied node by node (the local cluster: its chdb-served engine cannot replicate).
    cluster: SqlName | None = None
    shards: PositiveInt = 1
    replicas: PositiveInt = 1
    replicated: bool = True
    local_suffix: SqlName = "_local"
    # Shard k's own node (0-based), for the modes that work shard by shard (ingest.into_shard, transform.per_shard):
    # shard_hosts[k] on http_port/tcp_port, one host per shard. Unset: the local stack's shard k, on `host` at
    # http_port/tcp_port + k * shard_port_step.
    shard_hosts: list[str] = []
    shard_port_step: PositiveInt = 10_000
    # ClickHouse settings every client sends (e.g. {"distributed_foreground_insert": 1}: an insert through a
    # Distributed table returns once every shard has its rows, the local cluster's way).
    client_settings: dict[str, int | str] = {}

    @model_validator(mode="after")
    def _cluster_needs_a_name(self) -> ClickHouseSettings:
        if self.cluster is None and (self.shards > 1 or self.replicas > 1):
            raise ValueError("shards or replicas > 1 need clickhouse.cluster (the remote_servers cluster's name)")
        if self.shard_hosts and len(self.shard_hosts) != self.shards:
            hosts = len(self.shard_hosts)
            raise ValueError(f"clickhouse.shard_hosts names {hosts} host(s) for {self.shards} shard(s): one per shard")
        return self

    def node_ports(self, shard: int) -> tuple[int, int]:
        """(http, tcp) port of the local stack's shard ``shard`` (0-based)."""
        step = shard * self.shard_port_step
        return self.http_port + step, self.tcp_port + step

    def node(self, shard: int) -> ClickHouseSettings:
        """These settings pointed at shard ``shard`` (0-based) itself: its host in shard_hosts, else the local
        stack's shard at its port step."""
        if self.shard_hosts:
            return self.model_copy(update={"host": self.shard_hosts[shard]})
        http_port, tcp_port = self.node_ports(shard)
        return self.model_copy(update={"http_port": http_port, "tcp_port": tcp_port})

    def machine_shard(self, machine_id: str) -> int:
        """The shard (0-based) whose tables hold a machine: MACHINE_SHARDING_KEY modulo the shards."""
        return zlib.crc32(machine_id.encode()) % self.shards

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    @property
    def shard_database(self) -> str:
        """Where a per-shard transform builds each shard's models (transform.per_shard), on every node."""
        return f"{self.database}{self.local_suffix}"

    @property
    def managed_databases(self) -> tuple[str, str]:
        """The configured database and the demo's, the ones the component users are granted on."""
        return self.database, f"{self.database}_demo"


class PrometheusSettings(Section):
    host: str = LOOPBACK
    port: Port = 9090
    scrape_interval: str = "5s"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class ProducerSettings(Section):
    """Producers and the SDK logger (producers/). Relative paths are under ``state_dir``."""

    plant_file: Path = package_folder("plantwatch.producers") / "plants" / "default.yaml"
    scenario_file: Path = package_folder("plantwatch.producers") / "scenarios" / "default.yaml"
    archive_dir: Path = Path("archive")
    labels_dir: Path = Path("labels")
    # The archive: wire messages as JSON lines, zstd-compressed in blocks of about this size (uncompressed) or
    # this age, in segment files rotated at segment_bytes (compressed) and at each new event date.
    archive_block_bytes: PositiveInt = 1 << 20
    archive_flush_seconds: PositiveFloat = 5.0
    archive_segment_bytes: PositiveInt = 64 << 20
    archive_zstd_level: int = 1
    archive_retention_days: int | None = 30  # by event date; what Kafka has not acknowledged is always kept
    cursor_flush_seconds: PositiveFloat = 1.0
    # librdkafka batching; past queue_max_messages the logger leaves the backlog in the archive until Kafka drains.
    linger_ms: NonNegativeInt = 20
    batch_bytes: PositiveInt = 1 << 20
    compression: str = "lz4"
    queue_max_messages: PositiveInt = 200_000
    queue_max_kbytes: PositiveInt = 1 << 20
    # A Kafka client holding messages that has reported no delivery for this long, while Kafka answers another
    # client, is replaced by a new one, and what it held is sent again from the archive (with an archive only): a
    # client wedged after a broker restart (seen once in CI) would otherwise wait forever, as message.timeout.ms=0
    # never gives a message up. While Kafka does not answer, the client waits the outage out.
    stall_seconds: PositiveFloat = 30.0


class QualitySettings(Section):
    """Data-quality checks (expectations/, `plantwatch check`)."""

    freshness_seconds: PositiveInt = 300  # the latest reading of every machine is at most this old
    clock_skew_seconds: NonNegativeInt = 5  # event times up to this far in the future are accepted
    spec_limits_csv: Path = project_folder("dbt_project") / "seeds" / "spec_limits.csv"
    check_interval_seconds: PositiveInt = 60  # how often `plantwatch check --watch` runs


class AlertingSettings(Section):
    """Alerting: the Grafana rule file `plantwatch alerts` evaluates, and where notifications go."""

    rules_file: Path = project_folder("grafana") / "provisioning" / "alerting" / "rules.yaml"
    webhook_url: str | None = None
    email_to: str | None = None  # comma-separated addresses (Grafana's email contact point reads this variable)
    webhook_timeout_seconds: PositiveFloat = 5.0
    # `plantwatch alerts --every`: firing alerts are re-sent to Alertmanager every evaluation, resolved ones until
    # Alertmanager accepted the resolution, and for this long after. 0: no longer, because Alertmanager keeps an
    # alert that is re-sent during a group's flush and lists it, resolved again, in that group's next notification
    # (a machine with several alerts got its resolutions twice); the price: an Alertmanager restarted in the
    # seconds between accepting a resolution and notifying it loses that resolution.
    resolved_resend_seconds: NonNegativeFloat = 0.0
    # Links put into each alert's annotations: the runbook (#<rule uid>) and Grafana (machine detail dashboard).
    runbook_url: str = (project_folder("docs") / "quality-and-alerting.md").as_uri()
    grafana_url: str = "http://127.0.0.1:3000"


class AlertmanagerSettings(Section):
    """Prometheus Alertmanager (alertmanager/alertmanager.yml): notifications, grouping, inhibition, silences."""

    host: str = LOOPBACK
    port: Port = 9095  # not Alertmanager's 9093: the local Kafka's controller listens there
    config_file: Path = project_folder("alertmanager") / "alertmanager.yml"
    timeout_seconds: PositiveFloat = 5.0
    demo_webhook_port: Port = 9097  # `plantwatch demo` receives its database's notifications here

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class IngestSettings(Section):
    """The stream ingest (streams/, `plantwatch ingest`): Kafka readings into ClickHouse."""

    consumer_group: str = "plantwatch-ingest"
    # With kafka.topic_per_shard: the shard (0-based) whose topic this ingest lands (`plantwatch ingest --shard k`;
    # each shard's ingests form the group `<consumer_group>.shard<k>`).
    shard: NonNegativeInt | None = None
    # ... and on a cluster without replicas (the local cluster), insert that shard's readings into its local raw
    # table on the shard's own node (the local cluster's node addressing), so that the configured node need not be
    # up for them to land; off: through the Distributed table on the configured node.
    into_shard: bool = False
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Messages taken from Kafka at once (or what came within poll_seconds); each partition's run of them goes
    # through the pipeline as one row.
    poll_messages: PositiveInt = 500
    poll_seconds: PositiveFloat = 0.05
    # A checkpoint (the open batches inserted into ClickHouse, then the offsets committed) this often: shorter
    # intervals show rows sooner (bench/latency.py), longer ones make bigger inserts.
    flush_interval_seconds: PositiveFloat = 0.25
    # Rows per ClickHouse insert: a partition's batch this big is inserted in the background before the checkpoint.
    insert_rows: PositiveInt = 100_000
    # An insert unanswered this long (ClickHouse hung rather than down) fails and is replayed from the last commit;
    # if it landed after all, the replay still shows once in the readings view (see streams/clickhouse_sink.py).
    insert_timeout_seconds: PositiveFloat = 30.0
    metrics_port: AnyPort = 0  # 0: any free port (registered with the local Prometheus)
    metrics_host: str = LOOPBACK  # 0.0.0.0 in a pod, for Prometheus to scrape
    lag_report_ms: PositiveInt = 5_000  # how often librdkafka reports consumer lag per partition
    # A replica silent this long loses its partitions to the others. Long enough to ride out a group coordinator's
    # failover when a broker dies (10 s did not always: docs/scale-out.md); Kafka's own default is 45 s. A replica
    # that stops cleanly (SIGTERM, a KEDA scale-in) leaves the group at once whatever this is.
    session_timeout_ms: PositiveInt = 30_000
    # What librdkafka fetches ahead of the app (its defaults: 64 MiB queued, 50 MiB a fetch): part of the ingest's
    # memory, and more than a run of poll_messages needs (bench/ingest_memory.py).
    consumer_queue_kbytes: PositiveInt = 16_384
    fetch_max_bytes: PositiveInt = 16 << 20
    # A dead letter carries at most this much of its message's value (the rest cut, its size and checksum kept in
    # headers): under the dead-letter topic's max.message.bytes (1 MiB by default), see streams/dead_letter.py.
    dead_letter_max_bytes: NonNegativeInt = 512 << 10
    # Optional user hook for a side service (REST, cache, model): a dotted path, e.g. "mypackage.enrich:lookup", to a
    # callable taking one valid message's plantwatch.reading.MessageReadings and returning them (changed or not), or
    # None to drop the message. Machine metadata itself is joined in ClickHouse, from a dictionary.
    enrich: ImportString[Callable] | None = None


class TransformSettings(Section):
    """The dbt project (dbt_project/, `plantwatch transform`); detector thresholds are dbt vars, documented there."""

    project_dir: Path = project_folder("dbt_project")
    threads: PositiveInt = 4
    # The share of healthy windows each detector's learned threshold lets through (dbt var false_alarm_rate; unset:
    # dbt_project.yml's default, 1%).
    false_alarm_rate: float | None = Field(default=None, gt=0, lt=0.5)
    # dbt vars to override (e.g. {"spike_threshold": 10}); names and table names come from the settings above.
    vars: dict[str, str | int | float] = {}
    # On a cluster without replicas (the local cluster): dbt runs on each shard over its own machines' local tables,
    # its models in the shard database (clickhouse.shard_database), read across shards through Distributed tables
    # of the models' names in the configured database (docs/scale-out.md). Off: one dbt run over the Distributed
    # tables on the configured node.
    per_shard: bool = False
    # With per_shard: only this shard (0-based), for a transform process per shard, e.g. each beside its node
    # (`plantwatch transform --shard k`); unset: every shard in turn, from one process.
    shard: NonNegativeInt | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    state_dir: Path = Field(default=workspace() / ".plantwatch", description="Data, logs, pids, cached jars.")
    kafka: KafkaSettings = KafkaSettings()
    clickhouse: ClickHouseSettings = ClickHouseSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    producer: ProducerSettings = ProducerSettings()
    quality: QualitySettings = QualitySettings()
    alerting: AlertingSettings = AlertingSettings()
    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    ingest: IngestSettings = IngestSettings()
    transform: TransformSettings = TransformSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        unknown_variables(settings_cls)
        return init_settings, env_settings, toml_source(settings_cls)

    @model_validator(mode="after")
    def _per_shard_modes_need_unreplicated_shards(self) -> Settings:
        if self.clickhouse.cluster is not None and not self.clickhouse.replicated:
            return self
        modes = {  # each mode that works shard by shard on one node per shard, and what a replicated cluster does
            "transform.per_shard": (self.transform.per_shard, "runs dbt once, with the profile's cluster"),
            "ingest.into_shard": (self.ingest.into_shard, "inserts through the Distributed table"),
        }
        for name, (on, instead) in modes.items():
            if on:
                raise ValueError(
                    f"{name} needs a cluster without replicas (clickhouse.cluster set, clickhouse.replicated = false:"
                    f" the local cluster); a replicated cluster {instead}"
                )
        return self

    def scoped(self, name: str, database: str | None = None) -> Settings:
        """These settings with topics, a consumer group and a database of their own (a test's, a benchmark's, the
        demo's), so that run never mixes with real data; one readings topic (kafka.topic_per_shard off: such a run
        starts one ingest).

        The database is `name` made an identifier unless given. The component users are granted on the managed
        databases only (plantwatch/sql/access.yaml), so anywhere else the admin user does everything (roles off).
        """
        database = database or re.sub(r"\W", "_", name)
        kafka = self.kafka.model_copy(
            update={
                "readings_topic": f"{name}.readings", "dead_letter_topic": f"{name}.readings.dlq",
                "topic_per_shard": False,
            }
        )  # fmt: skip
        roles = self.clickhouse.roles and database in self.clickhouse.managed_databases
        clickhouse = self.clickhouse.model_copy(update={"database": database, "roles": roles})
        ingest = self.ingest.model_copy(update={"consumer_group": f"{name}.ingest"})
        return self.model_copy(update={"kafka": kafka, "clickhouse": clickhouse, "ingest": ingest})


def config_file() -> tuple[Path, bool]:
    """The TOML file settings are read from, and whether it was named (PLANTWATCH_CONFIG) rather than the default."""
    named = os.environ.get("PLANTWATCH_CONFIG")
    return Path(named or "plantwatch.toml"), named is not None


def toml_source(settings_cls: type[BaseSettings]) -> TomlConfigSettingsSource:
    """The TOML file's settings: a file named by PLANTWATCH_CONFIG must exist (the default one may not), and must be
    TOML."""
    path, named = config_file()
    if named and not path.is_file():
        raise SettingsError(f"PLANTWATCH_CONFIG={path}: {'a folder' if path.is_dir() else 'no such file'}")
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError(f"config file {path}: {exc.strerror}") from None


def unknown_variables(settings_cls: type[BaseSettings]) -> None:
    """A PLANTWATCH_* variable that names no setting is an error (pydantic-settings ignores those at the top level;
    an unknown key inside a group is refused by the group itself)."""
    groups = {f"{ENV_PREFIX}{name.upper()}" for name in settings_cls.model_fields}
    unknown = sorted(
        name
        for name in os.environ
        if name.startswith(ENV_PREFIX)
        and name not in NOT_SETTINGS
        and name.split("__")[0] not in groups
        and not KUBERNETES_SERVICE_LINK.match(name)
    )
    if unknown:
        raise SettingsError(f"{', '.join(unknown)}: no such setting (`plantwatch config` lists them)")


def describe(error: ValidationError) -> str:
    """A settings validation error as one line, each problem named by the variable (or file key) that set it."""
    path, _ = config_file()
    problems = []
    for problem in error.errors():
        loc = [str(part) for part in problem["loc"]]
        variable = ENV_PREFIX + "__".join(loc).upper()
        where = variable if variable in os.environ or not path.is_file() else f"{'.'.join(loc)} in {path}"
        given = "" if "password" in variable.lower() else f" (got {problem.get('input')!r:.60})"
        message = "no such setting" if problem["type"] == "extra_forbidden" else problem["msg"]
        problems.append(f"{where}: {message}{given}")
    return "; ".join(problems)


def environment(settings: BaseModel) -> dict[str, str]:
    """The PLANTWATCH_* variables that reproduce these settings in another process (unset values left out)."""
    out: dict[str, str] = {}

    def walk(prefix: str, values: dict[str, Any]) -> None:
        for key, value in values.items():
            name = f"{prefix}{key.upper()}"
            if isinstance(value, dict):
                walk(f"{name}__", value)
            elif value is not None:
                out[name] = json.dumps(value) if isinstance(value, bool | list) else str(value)

    walk("PLANTWATCH_", settings.model_dump(mode="json"))
    return out


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (read once); a configuration that does not load is a SettingsError, one line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from exc
