"""The simulator's Kubernetes manifests: the ConfigMap carries the shipped plant and scenario, the Deployment's
command line runs (here against the local stack, for a few simulated minutes), and a SIGTERM ends it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes_validate
import orjson
import pytest
import yaml

from plantwatch import warehouse
from plantwatch.producers.archive import iter_range
from plantwatch.settings import PROJECT_ROOT, Settings, environment
from tests.fixtures.kafka_topic import read_topic

APPS = PROJECT_ROOT / "k8s" / "apps"


def manifests(name: str) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all((APPS / name).read_text())}


@pytest.mark.parametrize("name", ["producer-configmap.yaml", "producer-deployment.yaml"])
def test_manifests_follow_the_kubernetes_schemas(name: str) -> None:
    version = kubernetes_validate.latest_version()
    for doc in yaml.safe_load_all((APPS / name).read_text()):
        kubernetes_validate.validate(doc, version, strict=True)


def test_configmap_carries_the_shipped_plant_and_scenario(settings: Settings) -> None:
    data = manifests("producer-configmap.yaml")["ConfigMap"]["data"]
    assert data["plant.yaml"] == settings.producer.plant_file.read_text()
    assert data["scenario.yaml"] == settings.producer.scenario_file.read_text()


def test_deployment_runs_its_command_line(isolated: Settings, tmp_path: Path) -> None:
    docs = manifests("producer-deployment.yaml")
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
    port = container["ports"][0]["containerPort"]
    assert all(container[p]["httpGet"]["port"] == "metrics" for p in ("readinessProbe", "livenessProbe"))
    assert pod["volumes"][2]["persistentVolumeClaim"]["claimName"] == docs["PersistentVolumeClaim"]["metadata"]["name"]

    # The ConfigMap's files where the Deployment mounts them (here: a temp folder), the Deployment's arguments.
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "plant")
    for name, text in manifests("producer-configmap.yaml")["ConfigMap"]["data"].items():
        (tmp_path / name).write_text(text)
    args = [a.replace(mount, str(tmp_path)) for a in container["args"] if not a.startswith("--metrics-port")]
    assert f"--metrics-port={port}" in container["args"]
    env = {**os.environ, **environment(isolated.model_copy(update={"state_dir": tmp_path / "state"}))}
    result = subprocess.run(
        [sys.executable, "-m", "plantwatch.cli", *args, "--duration=240", "--rate=0", "--seed=3", "--run-id=k8s"],
        capture_output=True, text=True, env=env, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    faults = len(yaml.safe_load((tmp_path / "scenario.yaml").read_text())["faults"])  # each one is injected
    assert f"{faults} fault labels" in result.stderr
    assert sum(len(r.readings()) for r in read_topic(isolated)) > 240 * 100
    count = warehouse.client(isolated).command(
        f"SELECT count() FROM {isolated.clickhouse.fault_labels_table} WHERE run_id = 'k8s'"
    )
    assert count == faults
    assert list((tmp_path / "state" / "archive").glob("date=*/machine=*/part-*.jsonl.zst"))


def test_sigterm_writes_the_last_block_and_the_cursor(isolated: Settings, tmp_path: Path) -> None:
    """What Kubernetes does to a pod it stops: the producer exits with everything archived, delivered and
    recorded in its cursor (nothing for the next pod to resend)."""
    archive = tmp_path / "state" / "archive"
    env = {**os.environ, **environment(isolated.model_copy(update={"state_dir": tmp_path / "state"}))}
    proc = subprocess.Popen(
        [sys.executable, "-m", "plantwatch.cli", "produce", "--rate=5000", "--no-metrics"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (archive / "cursor.json").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.5)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, proc.stderr.read().decode()
    finally:
        proc.kill()
    cursor = orjson.loads((archive / "cursor.json").read_bytes())["machines"]
    sizes = {p.parent.name.removeprefix("machine="): p.stat().st_size for p in archive.rglob("part-*.jsonl.zst")}
    assert len(cursor) == 16 and {m: (c["part"], c["offset"], c["skip"]) for m, c in cursor.items()} == {
        m: (1, size, 0) for m, size in sizes.items()
    }
    archived = sum(1 for _ in iter_range(archive, 0, 10**14))
    assert archived > 0 and len(read_topic(isolated)) == archived
