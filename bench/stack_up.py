"""How long `stack up` takes from cold, and the memory each service holds idle.

Runs a private stack on free ports in a temporary state folder (the shared one keeps running):
1. jars not cached: empty state folder and an empty Maven repository, so the Kafka jars come from Maven Central;
2. jars cached: a second empty state folder reusing only the jar cache of the first run;
then reports each service's resident memory after it has idled for a while.

    .venv/bin/python bench/stack_up.py [--idle 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from plantwatch.metrics import free_port
from plantwatch.settings import Settings
from plantwatch.stack import Stack


def private_settings(state_dir: Path) -> Settings:
    return Settings(
        state_dir=state_dir,
        kafka={"port": free_port(), "controller_port": free_port()},
        clickhouse={"http_port": free_port(), "tcp_port": free_port()},
        prometheus={"port": free_port()},
        alertmanager={"port": free_port()},
    )


def timed_up(settings: Settings) -> float:
    began = time.monotonic()
    Stack(settings).up(timeout=600)
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=20.0, help="seconds to idle before reading memory")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="plantwatch-bench-"))
    os.environ["MAVEN_OPTS"] = f"-Dmaven.repo.local={root / 'm2'}"  # an empty Maven repository: a true cold fetch
    try:
        cold = private_settings(root / "cold")
        cold_s = timed_up(cold)
        Stack(cold).down()

        warm = private_settings(root / "warm")
        shutil.copytree(cold.state_dir / "cache", warm.state_dir / "cache")  # only the jar cache carries over
        warm_s = timed_up(warm)
        time.sleep(args.idle)
        statuses = Stack(warm).status()
        Stack(warm).down()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"stack up from cold, jars not cached (Maven Central fetch): {cold_s:6.1f} s")
    print(f"stack up from cold, jars cached:                           {warm_s:6.1f} s")
    print(f"idle memory after {args.idle:.0f} s (RSS):")
    for st in statuses:
        print(f"  {st.name:<11} {st.rss_mb:8.1f} MiB")


if __name__ == "__main__":
    main()
