"""A local service run as a child process we own: started detached, tracked by a PID file, health-checked.

Each concrete service (Kafka, ClickHouse, Prometheus) says how to prepare its files, which command runs it, which
ports it takes and how to ask it whether it is healthy; starting, stopping and reporting live here once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import psutil

from plantwatch.settings import Settings


class StackError(RuntimeError):
    """A service cannot be started or reached; the message says why and what to do."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    state: str  # running | stopped | dead | starting
    address: str
    pid: int | None
    rss_mb: float | None


def port_holder(host: str, port: int) -> str | None:
    """Describe the process listening on host:port, or None when the port is free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
            return None
        except OSError:
            pass
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = psutil.Process(conn.pid)
                return f"pid {conn.pid} ({' '.join(proc.cmdline())[:120]})"
    except (psutil.Error, OSError):
        pass
    return "an unknown process"


class Service(ABC):
    """One managed process of the local stack."""

    name: str

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.home = settings.state_dir / self.name

    @property
    @abstractmethod
    def ports(self) -> dict[str, int]:
        """The ports this service listens on, by role."""

    @property
    @abstractmethod
    def address(self) -> str: ...

    @abstractmethod
    def command(self) -> list[str]: ...

    @abstractmethod
    def healthy(self) -> bool:
        """Whether the service answers its protocol (not merely that the process lives)."""

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Create config and data files before the first start (idempotent)."""

    @property
    def host(self) -> str:
        return self.address.rsplit(":", 1)[0].removeprefix("http://")

    @property
    def pid_file(self) -> Path:
        return self.settings.state_dir / "run" / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.settings.state_dir / "logs" / f"{self.name}.log"

    def pid(self) -> int | None:
        """The PID of our running process, or None (a stale PID file or a reused PID does not count)."""
        try:
            pid = int(self.pid_file.read_text())
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            # The home folder is on every service's command line: a PID reused by another program fails this.
            if str(self.home) in " ".join(proc.cmdline()) or str(self.home) == proc.cwd():
                return pid
        except (FileNotFoundError, ValueError, psutil.Error):
            pass
        return None

    def status(self) -> ServiceStatus:
        pid = self.pid()
        if pid is None:
            state = "dead" if self.pid_file.exists() else "stopped"
            return ServiceStatus(self.name, state, self.address, None, None)
        rss = psutil.Process(pid).memory_info().rss / 2**20
        state = "running" if self.healthy() else "starting"
        return ServiceStatus(self.name, state, self.address, pid, round(rss, 1))

    def busy_ports(self) -> list[str]:
        """Human-readable lines for each of our ports that another process holds."""
        problems = []
        for role, port in self.ports.items():
            holder = port_holder(self.host, port)
            if holder:
                problems.append(f"{self.name} {role} port {port} is already in use by {holder}")
        return problems

    def start(self) -> int:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(
                self.command(),
                cwd=self.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def wait_healthy(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pid() is None:
                raise StackError(f"{self.name} exited during start-up. Last log lines:\n{self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.2)
        raise StackError(f"{self.name} did not become healthy within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop our process group (SIGTERM, then SIGKILL); True when something was running."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        _, alive = psutil.wait_procs([psutil.Process(pid)], timeout=timeout)
        for proc in alive:
            os.killpg(proc.pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
        return True

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log yet)"
