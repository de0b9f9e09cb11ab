"""The whole stack on Kubernetes (k8s/kustomization.yaml): the platform of k8s/platform (a Strimzi Kafka with KRaft
node pools, topics and the apps' user; an Altinity ClickHouseInstallation of 2 shards x 2 replicas with its
ClickHouseKeeperInstallation) and the app manifests of k8s/apps and k8s/ingest; and the same stack with a readings
topic and an ingest per ClickHouse shard (k8s/per-shard).

No Kubernetes cluster runs here, so: the kustomizations are rendered by a minimal renderer below (resources,
namespace, nameSuffix and strategic-merge patches by path, the only fields they use; anything else fails the test
rather than being ignored; where a kubectl is installed, its kustomize must render the same);
every rendered custom resource is validated against its operator's CRD schema (vendored in tests/schemas/strimzi,
tests/schemas/clickhouse-operator and tests/schemas/keda) made strict the way `kubectl apply` is (an unknown field is
an error), every core object and every pod, volume and service template the operators stamp out against the
Kubernetes schemas of kubernetes-validate; and the wiring is checked: the apps' addresses, ports, CA and
credentials name what the platform creates, topics and partitions are the settings', the cluster's layout is the
one the issue asks for. The CRDs' CEL rules (x-kubernetes-validations) are not evaluated.
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from plantwatch.settings import PROJECT_ROOT, Settings
from plantwatch.topics import shard_consumer_group, shard_readings_topic, topic_names

K8S = PROJECT_ROOT / "k8s"
PLATFORM = K8S / "platform"
PER_SHARD = K8S / "per-shard"
KUSTOMIZATIONS = sorted(path.parent for path in K8S.rglob("kustomization.yaml"))
SCHEMAS = Path(__file__).parent / "schemas"
CRD_FILES = [
    *sorted((SCHEMAS / "strimzi").glob("*.yaml")),
    SCHEMAS / "clickhouse-operator" / "crds.yaml",
    *sorted((SCHEMAS / "keda").glob("*.yaml")),
]
KUSTOMIZATION_FIELDS = {"apiVersion", "kind", "namespace", "resources", "nameSuffix", "patches"}  # render() knows
# Kinds without a namespace (kustomize's `namespace` leaves them alone).
CLUSTER_SCOPED = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
# The manifests a kustomization leaves out of its folder, and why.
NOT_DEPLOYED = {
    K8S / "ingest": {"keda-ingest-predictive.yaml": "the alternative to keda-ingest-kafka.yaml: one ScaledObject only"},
    K8S: {"migrate-job.yaml": "run once the platform answers, not with it"},
}


# --- rendering ---------------------------------------------------------------------------------------------------


def documents(path: Path) -> list[dict]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser: the CRDs are 1 MB of YAML
    return [doc for doc in yaml.load_all(path.read_text(), Loader=loader) if doc]


def kustomization(folder: Path) -> dict:
    return yaml.safe_load((folder / "kustomization.yaml").read_text())


def merge(base: Any, patch: Any, by_name: bool) -> Any:
    """A strategic-merge patch applied to base: maps merge key by key; a list of named items (containers, env, ports)
    merges item by item on `name` where the kind has a Kubernetes schema (by_name), any other list is replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        return {**base, **{key: merge(base[key], value, by_name) if key in base else value
                           for key, value in patch.items()}}  # fmt: skip
    named_items = isinstance(base, list) and isinstance(patch, list) and all(
        isinstance(item, dict) and "name" in item for item in [*base, *patch]
    )  # fmt: skip
    if by_name and named_items:
        patches = {item["name"]: item for item in patch}
        merged = [merge(item, patches.pop(item["name"]), by_name) if item["name"] in patches else item for item in base]
        return [item for item in patch if item["name"] in patches] + merged  # new items first, as kustomize does
    return copy.deepcopy(patch)


def apply_patch(docs: list[dict], patch: dict) -> None:
    """Patch the one object of docs with the patch's kind and name (its name before any suffix)."""
    key = (patch["kind"], patch["metadata"]["name"])
    targets = [i for i, d in enumerate(docs) if (d["kind"], d["metadata"]["name"]) == key]
    assert len(targets) == 1, f"the patch of {key[0]}/{key[1]} matches {len(targets)} objects"
    (i,) = targets
    docs[i] = merge(docs[i], patch, by_name=not is_custom(docs[i]))


def render(folder: Path) -> list[dict]:
    """`kustomize build folder`, for the fields these kustomizations use: resources (files and folders with a
    kustomization of their own, in order), patches (strategic merge, from files), nameSuffix and namespace."""
    spec = kustomization(folder)
    unknown = set(spec) - KUSTOMIZATION_FIELDS
    assert not unknown, f"{folder}/kustomization.yaml: {sorted(unknown)} is beyond this test's renderer"
    assert spec["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and spec["kind"] == "Kustomization"
    out: list[dict] = []
    for entry in spec["resources"]:
        path = folder / entry
        if path.is_dir():
            assert (path / "kustomization.yaml").is_file(), f"{entry}: a folder without a kustomization.yaml"
            out += render(path)
        else:
            assert path.is_file(), f"{folder.name}/kustomization.yaml lists {entry}, which does not exist"
            # kustomize's default load restrictor: a file resource must lie inside the kustomization's folder.
            assert path.resolve().is_relative_to(folder.resolve()), f"{entry} is outside {folder.name}/"
            out += copy.deepcopy(documents(path))
    for patch in spec.get("patches", []):
        assert set(patch) == {"path"}, f"{folder.name}/kustomization.yaml: a patch other than by path: {patch}"
        for doc in documents(folder / patch["path"]):
            apply_patch(out, doc)
    for doc in out:
        doc["metadata"]["name"] += spec.get("nameSuffix", "")
    if "namespace" in spec:
        for doc in out:
            if doc["kind"] not in CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    return out


@cache
def stack() -> tuple[dict, ...]:
    return tuple(render(K8S))


@cache
def per_shard() -> tuple[dict, ...]:
    return tuple(render(PER_SHARD))


def one(kind: str, docs: tuple[dict, ...] | None = None) -> dict:
    (doc,) = every(kind, docs)
    return doc


def every(kind: str, docs: tuple[dict, ...] | None = None) -> list[dict]:
    return [d for d in (stack() if docs is None else docs) if d["kind"] == kind]


def named(kind: str, name: str, docs: tuple[dict, ...] | None = None) -> dict:
    (doc,) = [d for d in every(kind, docs) if d["metadata"]["name"] == name]
    return doc


def pod_spec(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def container(deployment: dict) -> dict:
    (only,) = pod_spec(deployment)["containers"]
    return only


def env_of(deployment: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container(deployment).get("env", [])}


# --- schemas -----------------------------------------------------------------------------------------------------


def strict(schema: Any) -> Any:
    """The schema with unknown fields refused where Kubernetes refuses them: an object schema that lists its
    properties and neither preserves unknown fields nor says what else it takes (`kubectl apply` validates strictly
    since Kubernetes 1.27; plain JSON Schema would let a misspelt field through)."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) if key != "enum" else value for key, value in schema.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@cache
def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> the strict openAPIV3Schema of every served version of the vendored CRDs."""
    out = {}
    for path in CRD_FILES:
        for crd in documents(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version["served"]:
                    key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                    out[key] = strict(version["schema"]["openAPIV3Schema"])
    return out


def validate_custom(doc: dict) -> None:
    schema = crd_schemas()[(doc["apiVersion"], doc["kind"])]
    jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)


def is_custom(doc: dict) -> bool:
    return (doc["apiVersion"], doc["kind"]) in crd_schemas()


def validate_core(doc: dict) -> None:
    kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def operator_templates(doc: dict) -> Iterator[tuple[str, dict]]:
    """The Kubernetes objects an Altinity installation stamps out of its templates (their `spec` is preserved as is
    by the CRD, so only the Kubernetes schema can check it), as whole objects."""
    templates = doc["spec"].get("templates", {})
    for kind, field in (
        ("Pod", "podTemplates"),
        ("PersistentVolumeClaim", "volumeClaimTemplates"),
        ("Service", "serviceTemplates"),
    ):
        for template in templates.get(field, []):
            yield (
                f"{doc['kind']}/{template['name']}",
                {"apiVersion": "v1", "kind": kind, "metadata": {"name": "x"}, "spec": template["spec"]},
            )


# --- the kustomizations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", KUSTOMIZATIONS, ids=lambda p: p.relative_to(PROJECT_ROOT).as_posix())
def test_kustomization_resources_exist_and_are_all_listed(folder: Path) -> None:
    resources = kustomization(folder)["resources"]
    assert len(resources) == len(set(resources)), "a resource listed twice"
    files = {entry for entry in resources if (folder / entry).is_file()}
    folders = {entry for entry in resources if (folder / entry).is_dir()}
    assert files | folders == set(resources), f"listed but missing: {set(resources) - files - folders}"
    patches = {patch["path"] for patch in kustomization(folder).get("patches", [])}
    assert all((folder / path).is_file() for path in patches), patches
    # Every manifest of the folder is deployed, or said not to be: a new file cannot be forgotten silently.
    manifests = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert manifests - files - patches == set(NOT_DEPLOYED.get(folder, {}))
    assert render(folder)


def test_the_stack_is_the_platform_and_the_apps_in_one_namespace() -> None:
    docs = stack()
    names = Counter((d["kind"], d["metadata"]["name"]) for d in docs)
    assert [key for key, count in names.items() if count > 1] == []
    assert {d["metadata"].get("namespace") for d in docs} == {kustomization(K8S)["namespace"]}
    assert "platform" in kustomization(K8S)["resources"]
    kinds = Counter(d["kind"] for d in docs)
    assert kinds["Kafka"] == 1 and kinds["KafkaNodePool"] >= 1 and kinds["KafkaTopic"] >= 1
    assert kinds["ClickHouseInstallation"] == 1 and kinds["ClickHouseKeeperInstallation"] == 1
    assert kinds["Deployment"] == 3 and kinds["ScaledObject"] == 1


def test_the_renderer_refuses_what_it_does_not_know(tmp_path: Path) -> None:
    """render() fails on a missing resource and on a kustomization field it would otherwise ignore."""
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [nothing.yaml]\n"
    )
    with pytest.raises(AssertionError, match="does not exist"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\nimages: []\n"
    )
    with pytest.raises(AssertionError, match="images"):
        render(tmp_path)


def test_a_patch_merges_named_items_and_replaces_other_lists() -> None:
    """What render() does with a patch: env merged by name in a Deployment; a custom resource's list replaced."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "env": [{"name": "A", "value": "1"}]}]}}},
    }
    user = {"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaUser", "metadata": {"name": "u"},
            "spec": {"authorization": {"acls": [{"resource": {"name": "t"}}]}}}  # fmt: skip
    docs = [copy.deepcopy(deployment), copy.deepcopy(user)]
    apply_patch(docs, {"kind": "Deployment", "metadata": {"name": "d"}, "spec": {"template": {"spec": {
        "containers": [{"name": "c", "env": [{"name": "B", "value": "2"}]}]}}}})  # fmt: skip
    apply_patch(docs, {"kind": "KafkaUser", "metadata": {"name": "u"},
                       "spec": {"authorization": {"acls": [{"resource": {"name": "s"}}]}}})  # fmt: skip
    assert container(docs[0])["env"] == [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]
    assert docs[1]["spec"]["authorization"]["acls"] == [{"resource": {"name": "s"}}]
    with pytest.raises(AssertionError, match="matches 0 objects"):
        apply_patch(docs, {"kind": "Deployment", "metadata": {"name": "other"}})


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl here: the renderer above stands alone")
@pytest.mark.parametrize("folder", [K8S, PER_SHARD], ids=lambda p: p.relative_to(PROJECT_ROOT).as_posix())
def test_the_renderer_agrees_with_kustomize(folder: Path) -> None:
    """Where a kubectl is installed, its built-in kustomize renders the same objects as render() (a cross-check of
    the renderer, not something the other tests need)."""
    built = subprocess.run(["kubectl", "kustomize", str(folder)], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    theirs = [doc for doc in yaml.safe_load_all(built.stdout) if doc]

    def by_name(docs: list[dict] | tuple[dict, ...]) -> dict[tuple[str, str], dict]:
        return {(d["kind"], d["metadata"]["name"]): d for d in docs}

    assert by_name(theirs) == by_name(render(folder))


# --- schemas -----------------------------------------------------------------------------------------------------


def both_stacks() -> list[dict]:
    """Every object of the stack, and those of the per-shard stack that differ from it."""
    return [*stack(), *(d for d in per_shard() if d not in stack())]


def stack_ids() -> list[str]:
    return [f"{d['kind']}/{d['metadata']['name']}" + ("" if d in stack() else " (per-shard)") for d in both_stacks()]


@pytest.mark.parametrize("doc", both_stacks(), ids=stack_ids())
def test_every_object_follows_its_schema(doc: dict) -> None:
    """Custom resources against their operator's CRD (strictly), everything else against Kubernetes' own."""
    if doc["apiVersion"].split("/")[0].endswith((".strimzi.io", ".altinity.com", "keda.sh")):
        assert is_custom(doc), f"no vendored CRD for {doc['apiVersion']} {doc['kind']}"
    if is_custom(doc):
        validate_custom(doc)
    else:
        validate_core(doc)


@pytest.mark.parametrize("kind", ["ClickHouseInstallation", "ClickHouseKeeperInstallation"])
def test_operator_templates_follow_the_kubernetes_schemas(kind: str) -> None:
    templates = list(operator_templates(one(kind)))
    assert {t["kind"] for _, t in templates} == {"Pod", "PersistentVolumeClaim", "Service"}
    for _, template in templates:
        validate_core(template)


def broken(kind: str, path: str, value: Any) -> dict:
    """A copy of the stack's `kind` with the field at `path` (dots; a number is a list index) set, or deleted when
    value is ...."""
    doc = copy.deepcopy(every(kind)[0])
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = doc
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Kafka", "spec.kafka.listeners.0.port", "9093"),  # a string
        ("Kafka", "spec.kafka.listeners.0.authentication.type", "scram-sha-256"),  # not one Strimzi offers
        ("Kafka", "spec.kafka.replicas", 3),  # no such field in v1 (node pools have the replicas)
        ("KafkaNodePool", "spec.roles", ["leader"]),
        ("KafkaNodePool", "spec.storage", ...),  # required
        ("KafkaTopic", "spec.partitions", 0),
        ("KafkaTopic", "spec.replicationFactor", 3),  # misspelt: `replicas`
        ("KafkaUser", "spec.authorization.acls.0.operations", ["Consume"]),
        ("ClickHouseInstallation", "spec.configuration.clusters.0.layout.shardsCount", "2"),
        ("ClickHouseInstallation", "spec.configuration.zookeeper.nodes.0.port", -1),
        ("ClickHouseInstallation", "spec.configuration.clusters.0.layout.shards_count", 2),  # misspelt
        ("ClickHouseKeeperInstallation", "spec.configuration.clusters.0.layout.replicasCount", "three"),
    ],
)
def test_the_crd_schemas_reject_broken_objects(kind: str, path: str, value: Any) -> None:
    """The check can fail: a wrong type, a value out of an enum or range, a missing or misspelt field."""
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(broken(kind, path, value))


def test_the_kubernetes_schema_rejects_a_broken_operator_template() -> None:
    doc = broken("ClickHouseInstallation", "spec.templates.podTemplates.0.spec.containers.0.resources", "8Gi")
    (template,) = [t for name, t in operator_templates(doc) if t["kind"] == "Pod"]
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(template)


# --- Kafka -------------------------------------------------------------------------------------------------------


def kafka_cluster() -> tuple[dict, list[dict], list[dict]]:
    """The Kafka, its controller nodes' pools and its broker nodes' pools."""
    kafka = one("Kafka")
    pools = every("KafkaNodePool")
    assert {p["metadata"]["labels"]["strimzi.io/cluster"] for p in pools} == {kafka["metadata"]["name"]}
    return (
        kafka,
        [p for p in pools if "controller" in p["spec"]["roles"]],
        [p for p in pools if "broker" in p["spec"]["roles"]],
    )


def test_kafka_is_kraft_with_node_pools_and_replicated() -> None:
    kafka, controllers, brokers = kafka_cluster()
    assert kafka["metadata"]["annotations"] == {"strimzi.io/node-pools": "enabled", "strimzi.io/kraft": "enabled"}
    voters = sum(p["spec"]["replicas"] for p in controllers)
    assert voters >= 3 and voters % 2 == 1  # a quorum that survives one lost controller
    assert sum(p["spec"]["replicas"] for p in brokers) >= 3
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3 and config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3  # the consumer groups' offsets too
    assert config["transaction.state.log.replication.factor"] == 3 and config["transaction.state.log.min.isr"] == 2
    assert config["auto.create.topics.enable"] is False
    assert {"topicOperator", "userOperator"} <= set(kafka["spec"]["entityOperator"])


def test_topics_are_the_settings_topics_replicated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """One KafkaTopic per topic of plantwatch/topics.py, as the apps see them (the settings with the ConfigMap's
    variables), with the settings' partitions, replication factor 3 and min.insync.replicas 2."""
    kafka, _, brokers = kafka_cluster()
    settings = app_settings(monkeypatch, tmp_path)
    topics = every("KafkaTopic")
    assert sorted(t["spec"]["topicName"] for t in topics) == sorted(topic_names(settings))
    broker_count = sum(p["spec"]["replicas"] for p in brokers)
    # The apps' settings say the same (what `plantwatch db migrate` would create the topics with).
    assert (settings.kafka.replication_factor, settings.kafka.min_insync_replicas) == (3, 2)
    for topic in topics:
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["partitions"] == settings.kafka.partitions
        assert topic["spec"]["replicas"] == 3 <= broker_count
        min_isr = (
            topic["spec"]
            .get("config", {})
            .get("min.insync.replicas", kafka["spec"]["kafka"]["config"]["min.insync.replicas"])
        )
        assert min_isr == 2
    # KEDA keeps the ingest's replicas within the readings topic's partitions.
    scaled = one("ScaledObject")["spec"]
    readings = next(t for t in topics if t["spec"]["topicName"] == settings.kafka.readings_topic)
    assert scaled["maxReplicaCount"] <= readings["spec"]["partitions"]


def app_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, docs: tuple[dict, ...] | None = None) -> Settings:
    """The settings an app pod loads: the ConfigMap's variables over the defaults (nothing else of this process)."""
    for name in [n for n in os.environ if n.startswith("PLANTWATCH_")]:
        monkeypatch.delenv(name)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    monkeypatch.setenv("PLANTWATCH_CONFIG", str(empty))
    for name, value in named("ConfigMap", "plantwatch-config", docs)["data"].items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_the_apps_kafka_user_has_their_password_and_only_their_rights() -> None:
    kafka, _, _ = kafka_cluster()
    (user,) = every("KafkaUser")
    assert user["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    password = user["spec"]["authentication"]["password"]["valueFrom"]["secretKeyRef"]
    # The Secret the producer, the ingest and KEDA read their SASL password from.
    for name in ("plantwatch-producer", "plantwatch-ingest"):
        ref = env_of(named("Deployment", name))["PLANTWATCH_KAFKA__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (password["name"], password["key"])
    auth = {r["parameter"]: r for r in one("TriggerAuthentication")["spec"]["secretTargetRef"]}
    assert (auth["password"]["name"], auth["password"]["key"]) == (password["name"], password["key"])

    acls = {
        (a["resource"]["type"], a["resource"]["name"]): set(a["operations"])
        for a in user["spec"]["authorization"]["acls"]
    }
    assert all(a["resource"]["patternType"] == "literal" for a in user["spec"]["authorization"]["acls"])
    group = env_of(named("Deployment", "plantwatch-ingest"))["PLANTWATCH_INGEST__CONSUMER_GROUP"]["value"]
    topics = [t["spec"]["topicName"] for t in every("KafkaTopic")]
    assert set(acls) == {("group", group)} | {("topic", t) for t in topics}
    assert acls[("group", group)] == {"Describe", "Read"}
    for topic in topics:
        assert {"Describe", "DescribeConfigs", "Read", "Write"} == acls[("topic", topic)]
    assert kafka["spec"]["kafka"]["authorization"]["type"] == user["spec"]["authorization"]["type"] == "simple"


def test_per_shard_an_ingest_topic_group_and_scaler_for_each_shard(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:  # fmt: skip
    """k8s/per-shard: the apps' settings have a topic per shard; for each of the ClickHouse installation's shards an
    ingest Deployment (PLANTWATCH_INGEST__SHARD, pods of its own) scaled by KEDA on its own topic and consumer group,
    each topic a KafkaTopic the Kafka user may use with that group; no ingest of the one readings topic is left."""
    docs = per_shard()
    settings = app_settings(monkeypatch, tmp_path, docs)
    assert settings.kafka.topic_per_shard
    (cluster,) = one("ClickHouseInstallation", docs)["spec"]["configuration"]["clusters"]
    assert settings.clickhouse.shards == cluster["layout"]["shardsCount"] == 2
    topics = {t["spec"]["topicName"]: t for t in every("KafkaTopic", docs)}
    # The one readings topic stays (deleting the KafkaTopic would delete what it still holds), unused.
    assert set(topics) == {*topic_names(settings), settings.kafka.readings_topic}
    deployments = {d["metadata"]["name"] for d in every("Deployment", docs)}
    assert deployments == {"plantwatch-producer", "plantwatch-transform",
                           *(f"plantwatch-ingest-shard{k}" for k in range(settings.clickhouse.shards))}  # fmt: skip
    (user,) = every("KafkaUser", docs)
    acls = {(a["resource"]["type"], a["resource"]["name"]) for a in user["spec"]["authorization"]["acls"]}
    pods, groups = [], []  # each shard's (selector, pod labels), consumer group
    for shard in range(settings.clickhouse.shards):
        deployment = named("Deployment", f"plantwatch-ingest-shard{shard}", docs)
        env = env_of(deployment)
        assert env["PLANTWATCH_INGEST__SHARD"]["value"] == str(shard)
        group_env = env["PLANTWATCH_INGEST__CONSUMER_GROUP"]["value"]
        ingest = settings.ingest.model_copy(update={"consumer_group": group_env})
        group = shard_consumer_group(settings.model_copy(update={"ingest": ingest}), shard)
        groups.append(group)
        topic = shard_readings_topic(settings, shard)
        spec = deployment["spec"]
        pods.append((spec["selector"]["matchLabels"], spec["template"]["metadata"]["labels"]))
        scaled = named("ScaledObject", f"plantwatch-ingest-shard{shard}", docs)["spec"]
        assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        (trigger,) = scaled["triggers"]
        assert (trigger["metadata"]["topic"], trigger["metadata"]["consumerGroup"]) == (topic, group)
        assert scaled["maxReplicaCount"] <= topics[topic]["spec"]["partitions"]
    # Each shard's Deployment selects its own pods and no other shard's.
    selects = [[selector.items() <= labels.items() for _, labels in pods] for selector, _ in pods]
    assert selects == [[i == j for j in range(len(pods))] for i in range(len(pods))]
    # The user may use exactly the shards' topics (and the dead letters) with the shards' groups.
    assert acls == {("topic", t) for t in topic_names(settings)} | {("group", g) for g in groups}


def test_the_apps_and_keda_point_at_the_strimzi_bootstrap(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    kafka, _, _ = kafka_cluster()
    name, namespace = kafka["metadata"]["name"], kafka["metadata"]["namespace"]
    settings = app_settings(monkeypatch, tmp_path)
    (listener,) = [
        listener
        for listener in kafka["spec"]["kafka"]["listeners"]
        if f"{settings.kafka.host}:{listener['port']}" == settings.kafka.bootstrap_servers
    ]
    assert settings.kafka.host == f"{name}-kafka-bootstrap.{namespace}.svc"  # the Service Strimzi makes
    # TLS and SCRAM on both sides.
    assert listener["tls"] is True and settings.kafka.security_protocol == "SASL_SSL"
    assert listener["authentication"]["type"] == settings.kafka.sasl_mechanism.lower() == "scram-sha-512"
    # The cluster CA Strimzi makes, mounted where PLANTWATCH_KAFKA__SSL_CAFILE looks, and KEDA's.
    ca_secret = f"{name}-cluster-ca-cert"
    for deployment in ("plantwatch-producer", "plantwatch-ingest"):
        pod = pod_spec(named("Deployment", deployment))
        (volume,) = [v for v in pod["volumes"] if v.get("secret", {}).get("secretName") == ca_secret]
        (mount,) = [
            m for m in container(named("Deployment", deployment))["volumeMounts"] if m["name"] == volume["name"]
        ]
        assert settings.kafka.ssl_cafile == f"{mount['mountPath']}/ca.crt"
    auth = {r["parameter"]: r for r in one("TriggerAuthentication")["spec"]["secretTargetRef"]}
    assert (auth["ca"]["name"], auth["ca"]["key"]) == (ca_secret, "ca.crt")
    # Both ScaledObjects (the deployed one and its predictive alternative) read the lag from the same brokers.
    for path in (K8S / "ingest" / "keda-ingest-kafka.yaml", K8S / "ingest" / "keda-ingest-predictive.yaml"):
        (scaled,) = documents(path)
        trigger = next(t for t in scaled["spec"]["triggers"] if t["type"] == "kafka")
        assert trigger["metadata"]["bootstrapServers"] == settings.kafka.bootstrap_servers


# --- ClickHouse --------------------------------------------------------------------------------------------------


def service_name(doc: dict, macro: str) -> tuple[str, dict]:
    """The name of the Service an Altinity installation makes from its default service template, and its spec."""
    template_name = doc["spec"]["defaults"]["templates"]["serviceTemplate"]
    (template,) = [t for t in doc["spec"]["templates"]["serviceTemplates"] if t["name"] == template_name]
    return template["generateName"].replace(macro, doc["metadata"]["name"]), template["spec"]


def test_clickhouse_is_2_shards_of_2_replicas_on_keeper() -> None:
    chi, chk = one("ClickHouseInstallation"), one("ClickHouseKeeperInstallation")
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert cluster["layout"] == {"shardsCount": 2, "replicasCount": 2}
    (keeper_cluster,) = chk["spec"]["configuration"]["clusters"]
    assert keeper_cluster["layout"]["replicasCount"] == 3  # a Raft quorum that survives one lost node
    # The installation's ZooKeeper is the Keeper's Service, at the port the Keeper listens on.
    keeper_service, keeper_spec = service_name(chk, "{chk}")
    keeper_port = int(chk["spec"]["configuration"]["settings"]["keeper_server/tcp_port"])
    assert [p["port"] for p in keeper_spec["ports"]] == [keeper_port]
    assert chi["spec"]["configuration"]["zookeeper"]["nodes"] == [{"host": keeper_service, "port": keeper_port}]
    assert chk["metadata"]["namespace"] == chi["metadata"]["namespace"]  # the short Service name resolves
    # Users created by SQL (the component users) are kept in Keeper, so every server knows them.
    (directories,) = [v for k, v in chi["spec"]["configuration"]["files"].items() if k.startswith("config.d/")]
    assert '<user_directories replace="replace">' in directories and "<replicated>" in directories
    assert "<local_directory>" not in directories


def test_the_apps_point_at_the_clickhouse_installation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    chi = one("ClickHouseInstallation")
    settings = app_settings(monkeypatch, tmp_path)
    # The apps' cluster is the installation's: its name (the operator's remote_servers entry), shards and replicas,
    # replicated (plantwatch/warehouse.py then renders ReplicatedMergeTree ON CLUSTER under Distributed tables).
    (cluster,) = chi["spec"]["configuration"]["clusters"]
    assert settings.clickhouse.cluster == cluster["name"]
    assert (settings.clickhouse.shards, settings.clickhouse.replicas) == (
        cluster["layout"]["shardsCount"],
        cluster["layout"]["replicasCount"],
    )
    assert settings.clickhouse.replicated
    service, spec = service_name(chi, "{chi}")
    assert settings.clickhouse.host == f"{service}.{chi['metadata']['namespace']}.svc"
    assert spec["type"] == "ClusterIP"
    assert settings.clickhouse.http_port in [p["port"] for p in spec["ports"]]
    # The admin's password is in the Secret of the component users' passwords, the one the apps read.
    admin = chi["spec"]["configuration"]["users"]["plantwatch_admin/password"]["valueFrom"]["secretKeyRef"]
    for deployment, variable in (
        ("plantwatch-ingest", "PLANTWATCH_CLICKHOUSE__INGEST_PASSWORD"),
        ("plantwatch-transform", "PLANTWATCH_CLICKHOUSE__PASSWORD"),
    ):
        ref = env_of(named("Deployment", deployment))[variable]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == admin["name"] and ref["key"] != admin["key"]


def test_the_migration_job_runs_as_the_clickhouse_admin() -> None:
    """k8s/migrate-job.yaml (applied by hand once the platform answers): `plantwatch db migrate` with the apps'
    settings, as the admin the ClickHouseInstallation defines, over the Kafka CA and user the apps have."""
    (job,) = documents(K8S / "migrate-job.yaml")
    validate_core(job)
    chi, kafka = one("ClickHouseInstallation"), one("Kafka")
    pod = job["spec"]["template"]["spec"]
    (migrate,) = pod["containers"]
    env = {e["name"]: e for e in migrate["env"]}
    assert migrate["envFrom"] == [{"configMapRef": {"name": "plantwatch-config"}}]
    user = env["PLANTWATCH_CLICKHOUSE__USER"]["value"]
    users = chi["spec"]["configuration"]["users"]
    assert users[f"{user}/password"]["valueFrom"] == env["PLANTWATCH_CLICKHOUSE__PASSWORD"]["valueFrom"]
    assert users[f"{user}/access_management"] == 1  # CREATE USER, GRANT
    ingest = env_of(named("Deployment", "plantwatch-ingest"))
    for name in ("PLANTWATCH_KAFKA__SASL_USERNAME", "PLANTWATCH_KAFKA__SASL_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == ingest[name]["valueFrom"]["secretKeyRef"]["name"]
    assert {"secret": {"secretName": f"{kafka['metadata']['name']}-cluster-ca-cert"}, "name": "kafka-ca"} in pod[
        "volumes"
    ]
    assert migrate["command"] + migrate["args"] == ["plantwatch", "db", "migrate"]
    help_text = subprocess.run(
        [sys.executable, "-m", "plantwatch.cli", *migrate["args"], "--help"], capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "raw tables" in help_text.stdout
