"""The ingest's Kubernetes manifests: KEDA objects validated against KEDA's own CRD schemas (vendored in
tests/schemas/keda), core kinds against the Kubernetes OpenAPI schemas bundled in kubernetes-validate, and the names
that must agree (consumer group, topic, Secrets, metric, partitions) checked against each other and the settings."""

from __future__ import annotations

import copy
import subprocess
import sys
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import orjson
import pytest
import yaml

from plantwatch.settings import PROJECT_ROOT, Settings
from plantwatch.stack import Stack
from plantwatch.streams.metrics import CONSUMER_LAG

K8S = PROJECT_ROOT / "k8s"
KEDA_CRDS = Path(__file__).parent / "schemas" / "keda"
KEDA_FILES = sorted(K8S.glob("*/keda-*.yaml"))
CORE_FILES = sorted(K8S.glob("ingest/ingest-*.yaml"))
KEDA_SASL = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
}  # librdkafka -> KEDA


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def docs_of(name: str) -> dict[str, dict]:
    """The documents of k8s/<folder>/name by kind (the apps' and the ingest's folders)."""
    (path,) = [path for folder in ("apps", "ingest") if (path := K8S / folder / name).is_file()]
    return {doc["kind"]: doc for doc in documents(path)}


@cache
def keda_schema(kind: str, api_version: str) -> dict:
    """The openAPIV3Schema of the CRD that defines this kind and version."""
    group, version = api_version.split("/")
    for crd_file in KEDA_CRDS.glob("*.yaml"):
        crd = yaml.safe_load(crd_file.read_text())
        if crd["spec"]["group"] == group and crd["spec"]["names"]["kind"] == kind:
            for served in crd["spec"]["versions"]:
                if served["name"] == version:
                    return served["schema"]["openAPIV3Schema"]
    raise LookupError(f"no CRD for {api_version} {kind} in {KEDA_CRDS}")


def validate_keda(doc: dict) -> None:
    schema = keda_schema(doc["kind"], doc["apiVersion"])
    jsonschema.validate(doc, schema, cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize("path", KEDA_FILES, ids=lambda p: p.name)
def test_keda_manifests_follow_the_crd_schemas(path: Path) -> None:
    docs = documents(path)
    assert docs
    for doc in docs:
        assert doc["apiVersion"].startswith("keda.sh/")
        validate_keda(doc)


def test_the_crd_schema_rejects_a_broken_scaled_object() -> None:
    """The schema check can fail: a mistyped field is caught."""
    broken = copy.deepcopy(docs_of("keda-ingest-kafka.yaml")["ScaledObject"])
    broken["spec"]["maxReplicaCount"] = "four"
    with pytest.raises(jsonschema.ValidationError):
        validate_keda(broken)
    del broken["spec"]["scaleTargetRef"]
    with pytest.raises(jsonschema.ValidationError):
        validate_keda(broken)


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_manifests_follow_the_kubernetes_schemas(path: Path) -> None:
    version = kubernetes_validate.latest_version()
    for doc in documents(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_kubernetes_schema_rejects_a_broken_deployment() -> None:
    broken = copy.deepcopy(docs_of("ingest-deployment.yaml")["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "metrics"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def container_env(deployment: dict) -> dict[str, dict]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e for e in container["env"]}


def test_scaling_names_agree(settings: Settings) -> None:
    deployment = docs_of("ingest-deployment.yaml")["Deployment"]
    env = container_env(deployment)
    config = docs_of("config.yaml")["ConfigMap"]["data"]
    auth = docs_of("keda-ingest-auth.yaml")["TriggerAuthentication"]
    refs = [e["valueFrom"]["secretKeyRef"] for e in env.values() if "valueFrom" in e]
    secret_keys = {(r["name"], r["key"]) for r in refs}
    for ref in auth["spec"]["secretTargetRef"]:
        if ref["parameter"] in ("username", "password"):
            assert (ref["name"], ref["key"]) in secret_keys  # the Secret the pods read too

    for name in ("keda-ingest-kafka.yaml", "keda-ingest-predictive.yaml"):
        scaled = docs_of(name)["ScaledObject"]["spec"]
        assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"] <= settings.kafka.partitions
        kafka = next(t for t in scaled["triggers"] if t["type"] == "kafka")
        assert kafka["authenticationRef"]["name"] == auth["metadata"]["name"]
        assert kafka["metadata"]["consumerGroup"] == env["PLANTWATCH_INGEST__CONSUMER_GROUP"]["value"]
        assert kafka["metadata"]["topic"] == config["PLANTWATCH_KAFKA__READINGS_TOPIC"]
        assert kafka["metadata"]["bootstrapServers"].startswith(config["PLANTWATCH_KAFKA__HOST"])
        assert int(kafka["metadata"]["lagThreshold"]) > 0
        assert kafka["metadata"]["sasl"] == KEDA_SASL[config["PLANTWATCH_KAFKA__SASL_MECHANISM"]]
        assert kafka["metadata"]["tls"] == (
            "enable" if config["PLANTWATCH_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL" else "disable"
        )


def test_deployment_serves_metrics_where_prometheus_looks() -> None:
    deployment = docs_of("ingest-deployment.yaml")["Deployment"]
    template = deployment["spec"]["template"]
    (container,) = template["spec"]["containers"]
    env = container_env(deployment)
    port = container["ports"][0]["containerPort"]
    assert template["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert env["PLANTWATCH_INGEST__METRICS_PORT"]["value"] == str(port)
    assert env["PLANTWATCH_INGEST__METRICS_HOST"]["value"] == "0.0.0.0"
    assert container["command"] + container["args"] == ["plantwatch", "ingest"]
    help_text = subprocess.run(
        [sys.executable, "-m", "plantwatch.cli", *container["args"], "--help"], capture_output=True, text=True
    )
    assert help_text.returncode == 0 and "ClickHouse" in help_text.stdout


def test_predictive_query_is_promql_on_the_lag_metric(stack: Stack, settings: Settings) -> None:
    """The local Prometheus parses and runs the trigger's query (an empty result is fine: no lag scraped)."""
    scaled = docs_of("keda-ingest-predictive.yaml")["ScaledObject"]["spec"]
    (prometheus,) = [t for t in scaled["triggers"] if t["type"] == "prometheus"]
    query = prometheus["metadata"]["query"]
    assert "predict_linear(" in query and CONSUMER_LAG._name in query
    url = f"{settings.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    answer = orjson.loads(urllib.request.urlopen(url, timeout=10).read())
    assert answer["status"] == "success"
    assert answer["data"]["resultType"] == "vector"
