"""The local stack's life cycle on its own ports and state folder (the session stack keeps running meanwhile)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from plantwatch import warehouse
from plantwatch.metrics import free_port
from plantwatch.settings import Settings
from plantwatch.stack import Stack, StackError


def own_settings(state_dir: Path) -> Settings:
    """Settings for a second, private stack: a fresh state folder and free ports."""
    return Settings(
        state_dir=state_dir,
        kafka={"port": free_port(), "controller_port": free_port()},
        clickhouse={"http_port": free_port(), "tcp_port": free_port(), "database": "lifecycle"},
        prometheus={"port": free_port()},
        alertmanager={"port": free_port()},
    )


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def all_ports(settings: Settings) -> list[int]:
    k, c, p, a = settings.kafka, settings.clickhouse, settings.prometheus, settings.alertmanager
    return [k.port, k.controller_port, c.http_port, c.tcp_port, p.port, a.port]


def test_cold_stack_lifecycle(tmp_path: Path) -> None:
    settings = own_settings(tmp_path / "state")
    stack = Stack(settings)
    try:
        assert sorted(stack.up(timeout=240)) == ["alertmanager", "clickhouse", "kafka", "prometheus"]
        assert all(listening(port) for port in all_ports(settings))
        pids = {st.name: st.pid for st in stack.status()}
        assert all(st.state == "running" for st in stack.status())

        # up twice is a no-op: nothing started, same processes.
        assert stack.up() == []
        assert {st.name: st.pid for st in stack.status()} == pids

        # ClickHouse keeps its data across a restart.
        warehouse.migrate(settings)
        ch = warehouse.client(settings)
        ch.command("CREATE TABLE kept (n UInt32) ENGINE = MergeTree ORDER BY n")
        ch.insert("kept", [[i] for i in range(1000)], column_names=["n"])
        Stack(settings, ["clickhouse"]).down()
        assert not listening(settings.clickhouse.http_port)
        Stack(settings, ["clickhouse"]).up()
        assert warehouse.client(settings).command("SELECT sum(n) FROM kept") == sum(range(1000))

        # A service that dies is reported dead, and `up` brings it back.
        killed = psutil.Process(stack.service("clickhouse").pid())
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        assert {st.name: st.state for st in stack.status()}["clickhouse"] == "dead"
        assert stack.up() == ["clickhouse"]
        assert {st.name: st.state for st in stack.status()}["clickhouse"] == "running"
    finally:
        stack.down()
    assert not any(listening(port) for port in all_ports(settings))
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids.values())
    assert [st.state for st in stack.status()] == ["stopped"] * 4


def test_port_taken_is_named_and_nothing_starts(tmp_path: Path) -> None:
    settings = own_settings(tmp_path / "state")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.kafka.port))
        squatter.listen()
        with pytest.raises(StackError) as err:
            Stack(settings).up()
    message = str(err.value)
    assert f"port {settings.kafka.port} is already in use" in message
    assert f"pid {os.getpid()}" in message
    assert [st.state for st in Stack(settings).status()] == ["stopped"] * 4
    assert not any(listening(p) for p in all_ports(settings) if p != settings.kafka.port)


def run_cli(args: list[str], settings: Settings) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PLANTWATCH_STATE_DIR": str(settings.state_dir)}
    return subprocess.run(
        [sys.executable, "-m", "plantwatch.cli", *args], capture_output=True, text=True, env=env, check=False
    )


def test_down_and_status_when_nothing_is_up(tmp_path: Path) -> None:
    settings = own_settings(tmp_path / "state")
    down = run_cli(["stack", "down"], settings)
    assert down.returncode == 0
    assert "nothing was running" in down.stderr
    status = run_cli(["stack", "status"], settings)
    assert status.returncode == 1
    assert status.stdout.count("stopped") == 4


def test_unknown_service_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli(["stack", "up", "zookeeper"], own_settings(tmp_path / "state"))
    assert result.returncode == 2
    assert "unknown service" in result.stderr and "zookeeper" in result.stderr
