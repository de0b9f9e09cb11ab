"""Serve a ClickHouse engine over the real HTTP and native protocols from the chdb wheels.

chdb embeds ClickHouse; its private ``chdb._chdb.query`` runs a one-off clickhouse-local that reads ``config.xml``
from the working directory and can open the listeners. They live only while that call runs, so the same call ends
with a query that never finishes. Run this module in a process of its own; SIGTERM stops it and the data stays.

    python -m plantwatch.stack.clickhouse_server --data-dir DIR [--host H --http-port P --tcp-port P]
        [--users-config users.xml]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plantwatch.stack.engine import EngineMissing, check_engine

CONFIG = """<clickhouse>
    <listen_host>{host}</listen_host>
    <http_port>{http_port}</http_port>
    <tcp_port>{tcp_port}</tcp_port>
    {users}
</clickhouse>
"""

# Opens the listeners, then blocks forever: one row a second, never-ending, with no time limit.
SERVE = (
    "SYSTEM START LISTEN HTTP; SYSTEM START LISTEN TCP; "
    "SELECT sleepEachRow(1) FROM numbers(1000000000000000) "
    "SETTINGS max_block_size = 1, function_sleep_max_microseconds_per_block = 0, max_execution_time = 0"
)


def serve(data_dir: Path, host: str, http_port: int, tcp_port: int, users_config: Path | None = None) -> None:
    check_engine()
    from chdb import _chdb

    users = f"<users_config>{users_config}</users_config>" if users_config else ""
    Path("config.xml").write_text(CONFIG.format(host=host, http_port=http_port, tcp_port=tcp_port, users=users))
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
    args = parser.parse_args()
    try:
        serve(args.data_dir.resolve(), args.host, args.http_port, args.tcp_port, args.users_config)
    except EngineMissing as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
