"""Serve a ClickHouse engine over the real HTTP and native protocols from the chdb wheels.

chdb embeds ClickHouse; its private ``chdb._chdb.query`` runs a one-off clickhouse-local that reads ``config.xml``
from the working directory and can open the listeners. They live only while that call runs, so the same call ends
with a query that never finishes. Run this module in a process of its own; SIGTERM stops it and the data stays.

That call (and chdb's import) logs in as ``default`` with no password, always: the users file gives ``default``
only what opening the listeners and the keep-alive need (plantwatch/sql/access.yaml, ``server``), and an admin of
its own does the rest. Before the engine starts, the process forbids itself to start programs or open connections
(``plantwatch.stack.sandbox``): clickhouse-local would otherwise run a dictionary's command for anyone allowed
``CREATE DICTIONARY``. ``file()`` and File-source dictionaries are kept to ``user_files_path``.

    python -m plantwatch.stack.clickhouse_server --data-dir DIR [--host H --http-port P --tcp-port P]
        [--users-config users.xml] [--user-files DIR] [--extra-config cluster.xml --allow-connect]

A shard of the local cluster (plantwatch.stack.cluster) adds its ``remote_servers`` and macros (``--extra-config``,
an XML fragment put inside ``<clickhouse>``) and may connect to the other shards (``--allow-connect``: the
seccomp filter then forbids starting programs only).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plantwatch.stack.engine import EngineMissing, check_engine
from plantwatch.stack.sandbox import forbid_exec_and_connect

CONFIG = """<clickhouse>
    <listen_host>{host}</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    <user_files_path>{user_files}/</user_files_path>
    {users}{extra}
</clickhouse>
"""

# Opens the listeners, then blocks forever: one row a second, never-ending, with no time limit.
SERVE = (
    "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
    "SELECT sleepEachRow(1) FROM system.numbers "
    "SETTINGS max_block_size = 1, function_sleep_max_microseconds_per_block = 0, max_execution_time = 0"
)


def serve(
    data_dir: Path,
    host: str,
    http_port: int,
    tcp_port: int,
    users_config: Path | None = None,
    user_files: Path | None = None,
    extra_config: Path | None = None,
    allow_connect: bool = False,
) -> None:
    check_engine()
    # chdb's import already starts an engine, which reads ./config.xml: a stale one (another port, users file)
    # must not be what it sees.
    Path("config.xml").unlink(missing_ok=True)
    if not forbid_exec_and_connect(connect=not allow_connect):
        print("warning: no seccomp filter on this platform: dictionaries may run commands", file=sys.stderr)
    from chdb import _chdb

    user_files = user_files or data_dir.parent / "user_files"
    user_files.mkdir(parents=True, exist_ok=True)
    users = f"<users_config>{users_config}</users_config>" if users_config else ""
    Path("config.xml").write_text(
        CONFIG.format(
            host=host,
            http_port=http_port,
            tcp_port=tcp_port,
            user_files=user_files,
            users=users,
            extra=f"\n    {extra_config.read_text()}" if extra_config else "",
        )
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    # TabSeparated becomes the HTTP default output format, as on a real server.
    _chdb.query(SERVE, "TabSeparated", path=str(data_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--http-port", type=int, default=8123)
    parser.add_argument("--tcp-port", type=int, default=9000)
    parser.add_argument("--users-config", type=Path, help="a users.xml (users, passwords, grants)")
    parser.add_argument(
        "--user-files", type=Path, help="the only folder file() reads (default: user_files beside DATA_DIR)"
    )
    parser.add_argument("--extra-config", type=Path, help="an XML fragment for config.xml (remote_servers, macros)")
    parser.add_argument("--allow-connect", action="store_true", help="may connect out (a shard to the others)")
    args = parser.parse_args()
    try:
        serve(
            args.data_dir.resolve(), args.host, args.http_port, args.tcp_port, args.users_config,
            args.user_files.resolve() if args.user_files else None,
            args.extra_config.resolve() if args.extra_config else None, args.allow_connect,
        )  # fmt: skip
    except EngineMissing as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
