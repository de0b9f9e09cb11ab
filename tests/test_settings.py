"""Settings come from the environment, then a TOML file, then defaults; `plantwatch config` shows them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plantwatch.settings import Settings, environment


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what each test sets: no PLANTWATCH_* variables from the shell that runs the suite."""
    for name in [n for n in os.environ if n.startswith("PLANTWATCH_")]:
        monkeypatch.delenv(name)


def test_environment_beats_file_beats_default(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "plantwatch.toml"
    config.write_text('[kafka]\nport = 19092\nreadings_topic = "from.file"\n[clickhouse]\ndatabase = "plant_a"\n')
    monkeypatch.setenv("PLANTWATCH_CONFIG", str(config))
    monkeypatch.setenv("PLANTWATCH_KAFKA__PORT", "29092")
    settings = Settings()
    assert settings.kafka.port == 29092  # environment
    assert settings.kafka.readings_topic == "from.file"  # file
    assert settings.clickhouse.database == "plant_a"  # file
    assert settings.clickhouse.http_port == 8123  # default
    assert settings.kafka.bootstrap_servers == "127.0.0.1:29092"


def test_kafka_security_passes_through_to_clients(monkeypatch) -> None:
    monkeypatch.setenv("PLANTWATCH_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PLANTWATCH_KAFKA__SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PLANTWATCH_KAFKA__SASL_USERNAME", "ingest")
    monkeypatch.setenv("PLANTWATCH_KAFKA__SASL_PASSWORD", "s3cret")
    conf = Settings().kafka.client_config()
    assert conf["security.protocol"] == "SASL_SSL"
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("ingest", "s3cret")


def test_config_command_names_each_variable_and_hides_passwords() -> None:
    env = {**os.environ, "PLANTWATCH_KAFKA__SASL_PASSWORD": "s3cret", "PLANTWATCH_CLICKHOUSE__DATABASE": "plant_b"}
    out = subprocess.run(
        [sys.executable, "-m", "plantwatch.cli", "config"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "PLANTWATCH_CLICKHOUSE__DATABASE" in out and "plant_b" in out
    assert "s3cret" not in out


def test_environment_round_trips_settings_to_a_child_process(monkeypatch) -> None:
    custom = Settings(kafka={"port": 19092, "readings_topic": "t.r"}, clickhouse={"database": "d1", "roles": False})
    for name, value in environment(custom).items():
        monkeypatch.setenv(name, value)
    assert Settings() == custom


def test_scoped_settings_share_no_topic_group_or_database() -> None:
    base = Settings()
    bench = base.scoped("bench.latency.ab12")
    assert (bench.kafka.readings_topic, bench.kafka.dead_letter_topic) == (
        "bench.latency.ab12.readings",
        "bench.latency.ab12.readings.dlq",
    )
    assert bench.ingest.consumer_group == "bench.latency.ab12.ingest" != base.ingest.consumer_group
    assert bench.clickhouse.database == "bench_latency_ab12"
    assert not bench.clickhouse.roles  # the component users hold no grants there
    demo = base.scoped("plantwatch.demo", database=base.clickhouse.managed_databases[1])
    assert demo.clickhouse.database == "plantwatch_demo" and demo.clickhouse.roles
    assert base.kafka.readings_topic == "plantwatch.readings" and base.clickhouse.database == "plantwatch"
