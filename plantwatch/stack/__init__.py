"""The local stack: real Kafka, ClickHouse, Prometheus and Alertmanager as processes on loopback, no Docker needed."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from plantwatch.settings import Settings
from plantwatch.stack.alertmanager import Alertmanager
from plantwatch.stack.clickhouse import ClickHouse
from plantwatch.stack.cluster import cluster_services, is_local_cluster
from plantwatch.stack.kafka import Kafka
from plantwatch.stack.prometheus import Prometheus
from plantwatch.stack.service import Service, ServiceStatus, StackError

__all__ = ["SERVICES", "ServiceStatus", "Stack", "StackError", "running_stack"]

SERVICES: tuple[type[Service], ...] = (ClickHouse, Kafka, Prometheus, Alertmanager)


class Stack:
    """Start, stop and report the local services; every operation is safe to repeat."""

    def __init__(self, settings: Settings, names: Iterable[str] | None = None) -> None:
        """The single-node stack, or the local cluster's nodes when the settings describe one
        (plantwatch.stack.cluster: Kafka and ClickHouse only, at ports and in a state folder of their own)."""
        self.cluster = is_local_cluster(settings)
        services: list[Service] = (
            list(cluster_services(settings)) if self.cluster else [cls(settings) for cls in SERVICES]
        )
        wanted = set(names or [s.name for s in services])
        if unknown := wanted - {s.name for s in services}:
            raise StackError(f"unknown service(s) {sorted(unknown)}; choose from {[s.name for s in services]}")
        self.services = [s for s in services if s.name in wanted]

    def up(self, timeout: float = 120.0, progress: Callable[[str], None] = lambda _: None) -> list[str]:
        """Start what is not running and wait until all answer; returns the names of the services started.

        Ports are checked for all services before any starts; if one fails, those started here are stopped.
        """
        todo = [s for s in self.services if s.pid() is None]
        problems = [line for s in todo for line in s.busy_ports()]
        if problems:
            raise StackError("cannot start the stack:\n  " + "\n  ".join(problems))
        started: list[Service] = []
        try:
            for service in todo:
                progress(f"preparing {service.name}")
                service.prepare()
                progress(f"starting {service.name}")
                service.start()
                started.append(service)
            for service in self.services:
                service.wait_healthy(timeout)
                progress(f"{service.name} is up at {service.address}")
        except BaseException:
            for service in started:
                service.stop()
            raise
        return [s.name for s in started]

    def down(self) -> list[str]:
        """Stop the processes this stack started (by PID); data stays. Returns the names stopped.

        The local cluster's nodes are stopped together: a Kafka node stopped after the others waits for a quorum
        that is gone (30 s, then killed)."""
        if not self.cluster:
            return [s.name for s in reversed(self.services) if s.stop()]
        with ThreadPoolExecutor(max_workers=len(self.services)) as pool:
            stopped = list(pool.map(lambda service: service.stop(), reversed(self.services)))
        return [s.name for s, done in zip(reversed(self.services), stopped, strict=True) if done]

    def status(self) -> list[ServiceStatus]:
        return [s.status() for s in self.services]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


@contextmanager
def running_stack(settings: Settings, *, stop: bool = True, timeout: float = 240.0) -> Iterator[Stack]:
    """The local stack up for the duration of a block, as the tests and benchmarks need it: what is not running
    is started, and stopped again at the end when ``stop`` (what was already running is left alone). A stack that
    cannot start ends the process with one line saying why and naming `plantwatch stack up`."""
    stack = Stack(settings)
    try:
        started = stack.up(timeout=timeout, progress=lambda line: print(line, file=sys.stderr))
    except StackError as exc:
        first = str(exc).splitlines()[0]
        raise SystemExit(f"error: the local stack is not up and could not be started ({first}); "
                         f"see `plantwatch stack up`") from exc  # fmt: skip
    try:
        yield stack
    finally:
        if started and stop:
            Stack(settings, started).down()
