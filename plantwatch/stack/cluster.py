"""The local cluster: an N-node KRaft Kafka and M chdb-served ClickHouse shards on loopback, beside the single-node
stack (its own ports and state folder, started and stopped on its own).

    plantwatch stack up --kafka-brokers 3 --clickhouse-shards 2     # Kafka 19092-19094, ClickHouse 18123/19000
    plantwatch stack down --kafka-brokers 3 --clickhouse-shards 2   #   and 28123/29000; state in <state>/cluster

Kafka: every node is broker and controller (a static quorum of N), topics with replication factor min(N, 3) and
``min.insync.replicas`` min(N, 2). ClickHouse: the chdb-served engine cannot replicate (ReplicatedMergeTree stays
read-only, ON CLUSTER is refused), so each shard is one node without replicas, the schema is applied node by node
(plain *MergeTree local tables under Distributed ones, ``clickhouse.replicated = false``), and every client inserts
with ``distributed_foreground_insert = 1`` (the engine's background distributed sends stay queued). Each shard's
``remote_servers`` names the cluster; its Distributed tables reach the other shard as the local admin. The
transform runs per shard (``transform.per_shard``): dbt on each node over its own machines.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template
from xml.sax.saxutils import escape

from plantwatch.access import admin_credentials
from plantwatch.settings import Settings
from plantwatch.stack.clickhouse import ClickHouse
from plantwatch.stack.kafka import HERE, Kafka
from plantwatch.stack.service import StackError

CLUSTER_NAME = "plantwatch"
# Never the single-node stack's ports (Kafka 9092/9093, ClickHouse 8123/9000, Prometheus 9090, Alertmanager 9095).
KAFKA_PORT, KAFKA_CONTROLLER_PORT = 19092, 19192  # node i: port + i, controller_port + i
CLICKHOUSE_HTTP_PORT, CLICKHOUSE_TCP_PORT = 18123, 19000  # shard k: + k * 10000


def is_local_cluster(settings: Settings) -> bool:
    """Whether these settings describe a local cluster (several brokers, or shards run node by node) rather than
    the single-node stack."""
    ch = settings.clickhouse
    return settings.kafka.brokers > 1 or (ch.cluster is not None and not ch.replicated)


def local_cluster(settings: Settings, brokers: int, shards: int) -> Settings:
    """The settings of a local cluster of ``brokers`` Kafka nodes and ``shards`` ClickHouse shards, at the cluster's
    own ports and in ``<state_dir>/cluster`` (databases, topics, users and everything else as in ``settings``)."""
    if brokers < 1 or shards < 1:
        raise StackError("--kafka-brokers and --clickhouse-shards are at least 1")
    kafka = settings.kafka.model_copy(
        update={
            "port": KAFKA_PORT, "controller_port": KAFKA_CONTROLLER_PORT, "brokers": brokers, "bootstrap": None,
            "replication_factor": min(brokers, 3), "min_insync_replicas": min(brokers, 2),
        }
    )  # fmt: skip
    clickhouse = settings.clickhouse.model_copy(
        update={
            "http_port": CLICKHOUSE_HTTP_PORT, "tcp_port": CLICKHOUSE_TCP_PORT, "cluster": CLUSTER_NAME,
            "shards": shards, "replicas": 1, "replicated": False,
            "client_settings": {**settings.clickhouse.client_settings, "distributed_foreground_insert": 1},
            # The component users' grants name the Distributed tables; an insert through one lands in the local
            # tables as the admin (remote_servers): the local cluster connects as its admin throughout.
            "roles": False,
        }
    )  # fmt: skip
    transform = settings.transform.model_copy(update={"per_shard": True})  # dbt on each shard, over its machines
    ingest = settings.ingest.model_copy(update={"into_shard": True})  # an ingest per shard: into the shard's node
    return settings.model_copy(
        update={"state_dir": settings.state_dir / "cluster", "kafka": kafka, "clickhouse": clickhouse,
                "transform": transform, "ingest": ingest}
    )  # fmt: skip


def cluster_environment(settings: Settings) -> dict[str, str]:
    """The PLANTWATCH_* variables that point another command (`plantwatch ingest`, `produce`, ...) at the cluster."""
    kafka, ch = settings.kafka, settings.clickhouse
    return {
        "PLANTWATCH_STATE_DIR": str(settings.state_dir),
        "PLANTWATCH_KAFKA__PORT": str(kafka.port),
        "PLANTWATCH_KAFKA__CONTROLLER_PORT": str(kafka.controller_port),
        "PLANTWATCH_KAFKA__BROKERS": str(kafka.brokers),
        "PLANTWATCH_KAFKA__REPLICATION_FACTOR": str(kafka.replication_factor),
        "PLANTWATCH_KAFKA__MIN_INSYNC_REPLICAS": str(kafka.min_insync_replicas),
        "PLANTWATCH_KAFKA__TOPIC_PER_SHARD": str(kafka.topic_per_shard).lower(),
        "PLANTWATCH_CLICKHOUSE__HTTP_PORT": str(ch.http_port),
        "PLANTWATCH_CLICKHOUSE__TCP_PORT": str(ch.tcp_port),
        "PLANTWATCH_CLICKHOUSE__CLUSTER": str(ch.cluster),
        "PLANTWATCH_CLICKHOUSE__SHARDS": str(ch.shards),
        "PLANTWATCH_CLICKHOUSE__REPLICATED": "false",
        "PLANTWATCH_CLICKHOUSE__ROLES": "false",
        **{f"PLANTWATCH_CLICKHOUSE__CLIENT_SETTINGS__{k.upper()}": str(v) for k, v in ch.client_settings.items()},
        "PLANTWATCH_TRANSFORM__PER_SHARD": str(settings.transform.per_shard).lower(),
        "PLANTWATCH_INGEST__INTO_SHARD": str(settings.ingest.into_shard).lower(),
    }


class KafkaNode(Kafka):
    """Node ``index`` (0-based) of the local KRaft cluster: broker and controller, on port + index."""

    def __init__(self, settings: Settings, index: int) -> None:
        self.index = index
        self.name = f"kafka-{index + 1}"
        super().__init__(settings)

    @property
    def jars_dir(self) -> Path:
        # The single-node stack's cache (the cluster's state folder sits inside its): jars fetched once.
        return self.settings.state_dir.parent / "cache" / f"kafka-{self.settings.kafka.version}"

    @property
    def ports(self) -> dict[str, int]:
        kafka = self.settings.kafka
        return {"broker": kafka.port + self.index, "controller": kafka.controller_port + self.index}

    @property
    def address(self) -> str:
        return f"{self.settings.kafka.host}:{self.ports['broker']}"

    def render_config(self) -> Path:
        kafka = self.settings.kafka
        voters = ",".join(f"{i + 1}@{kafka.host}:{kafka.controller_port + i}" for i in range(kafka.brokers))
        text = Template((HERE / "kafka-cluster.properties").read_text()).substitute(
            node_id=self.index + 1,
            voters=voters,
            host=kafka.host,
            port=self.ports["broker"],
            controller_port=self.ports["controller"],
            data_dir=self.data_dir,
            partitions=kafka.partitions,
            replication=kafka.replication_factor or min(kafka.brokers, 3),
            min_isr=kafka.min_insync_replicas or min(kafka.brokers, 2),
        )
        config = self.home / "server.properties"
        config.write_text(text)
        return config

    def cluster_id(self) -> str:
        """One id for every node of the cluster, made once."""
        path = self.settings.state_dir / "kafka-cluster-id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(super().cluster_id())
        return path.read_text().strip()

    def command(self) -> list[str]:
        single = f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}"
        return [f"-Dlog4j2.configurationFile={HERE / 'log4j2-cluster.properties'}" if arg == single else arg
                for arg in super().command()]  # fmt: skip

    def healthy(self) -> bool:
        """This node answers, and sees every broker of the cluster registered (topics need all of them)."""
        from confluent_kafka.admin import AdminClient

        config = {**self.settings.kafka.client_config(), "bootstrap.servers": self.address, "log_level": 0}
        try:
            metadata = AdminClient(config).list_topics(timeout=1.5)
        except Exception:
            return False
        return len(metadata.brokers) >= self.settings.kafka.brokers


class ClickHouseShard(ClickHouse):
    """Shard ``index`` (0-based) of the local ClickHouse cluster: one chdb-served node, no replica."""

    def __init__(self, settings: Settings, index: int) -> None:
        self.index = index
        self.name = f"clickhouse-{index + 1}"
        super().__init__(settings)

    @property
    def node_ports(self) -> tuple[int, int]:
        return self.settings.clickhouse.node_ports(self.index)

    @property
    def ports(self) -> dict[str, int]:
        http, tcp = self.node_ports
        return {"http": http, "native": tcp}

    @property
    def address(self) -> str:
        return f"http://{self.settings.clickhouse.host}:{self.node_ports[0]}"

    @property
    def cluster_file(self) -> Path:
        return self.home / "cluster.xml"

    def cluster_xml(self) -> str:
        """The cluster's shards (remote_servers) as every node sees them, and this node's macros."""
        ch = self.settings.clickhouse
        user, password = admin_credentials(self.settings)
        shards = "".join(
            f"<shard><internal_replication>true</internal_replication><replica><host>{ch.host}</host>"
            f"<port>{ch.node_ports(k)[1]}</port><user>{escape(user)}</user><password>{escape(password)}</password>"
            f"</replica></shard>"
            for k in range(ch.shards)
        )
        return (
            f"<remote_servers><{ch.cluster}>{shards}</{ch.cluster}></remote_servers>"
            f"<macros><cluster>{ch.cluster}</cluster><shard>{self.index + 1}</shard><replica>1</replica></macros>"
        )

    def prepare(self) -> None:
        super().prepare()  # users.xml: the admin's password exists from here on
        self.cluster_file.touch(mode=0o600)
        self.cluster_file.chmod(0o600)
        self.cluster_file.write_text(self.cluster_xml())

    def command(self) -> list[str]:
        http, tcp = self.node_ports
        ch = self.settings.clickhouse
        return [
            *super().command()[:3], "--data-dir", str(self.home / "data"),
            "--host", ch.host, "--http-port", str(http), "--tcp-port", str(tcp),
            "--users-config", str(self.users_file), "--user-files", str(self.user_files),
            "--extra-config", str(self.cluster_file), "--allow-connect",
        ]  # fmt: skip


_LEADER = re.compile(r"\[RaftManager id=(\d+)\] Completed transition to Leader\(.*?\bepoch=(\d+)")


def active_controller(settings: Settings) -> int | None:
    """The node id (1-based) of the KRaft quorum's leader, the active controller, from the nodes' logs: the newest
    epoch any node became leader in. (Kafka's DescribeCluster names a random broker as controller in KRaft.)"""
    best: tuple[int, int] | None = None
    for i in range(settings.kafka.brokers):
        log = settings.state_dir / "logs" / f"kafka-{i + 1}.log"
        try:
            text = log.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for node, epoch in _LEADER.findall(text):
            if best is None or int(epoch) > best[1]:
                best = (int(node), int(epoch))
    return best[0] if best else None


def cluster_services(settings: Settings) -> list[ClickHouseShard | KafkaNode]:
    return [
        *(ClickHouseShard(settings, k) for k in range(settings.clickhouse.shards)),
        *(KafkaNode(settings, i) for i in range(settings.kafka.brokers)),
    ]
