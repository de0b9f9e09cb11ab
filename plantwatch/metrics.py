"""Expose a process's Prometheus metrics and tell the local Prometheus to scrape them.

Each long-running plantwatch process (producer, ingest app) calls :func:`serve_metrics`; the local stack's
Prometheus discovers it through a file in its ``targets`` folder (``file_sd_configs``). On Kubernetes the same
endpoint is scraped through pod annotations instead.
"""

from __future__ import annotations

import atexit
import os
import socket
from pathlib import Path

import orjson
from prometheus_client import start_http_server

from plantwatch.settings import Settings


def targets_dir(settings: Settings) -> Path:
    return settings.state_dir / "prometheus" / "targets"


def register_scrape_target(settings: Settings, job: str, port: int, host: str = "127.0.0.1") -> Path:
    """Write a file_sd target for host:port (removed again when the process exits)."""
    folder = targets_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{job}-{os.getpid()}-{port}.json"
    path.write_bytes(orjson.dumps([{"targets": [f"{host}:{port}"], "labels": {"app": job}}]))
    atexit.register(path.unlink, missing_ok=True)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def serve_metrics(settings: Settings, job: str, port: int | None = None, host: str = "127.0.0.1") -> int:
    """Serve /metrics on port (a free one when None) and register it with the local Prometheus."""
    port = port or free_port(host)
    start_http_server(port, addr=host)
    register_scrape_target(settings, job, port, host)
    return port
