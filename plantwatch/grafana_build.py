"""Writes everything Grafana is provisioned with that plantwatch builds: ``python -m plantwatch.grafana_build``
(or ``make grafana-build``).

- grafana/dashboards/*.json: the dashboards (plantwatch/dashboards.py, their SQL in grafana/sql/dashboards);
- grafana/provisioning/alerting/{rules,contact-points,policies}.yaml: the alert rules (their SQL in
  grafana/sql/rules), contact points and notification policy (plantwatch/grafana_alerting.py).

Both are built with grafana-foundation-sdk's builders. The datasources (grafana/provisioning/datasources) and the
dashboard provider (grafana/provisioning/dashboards) stay hand-written: the SDK has no builders for them.
``--check`` writes nothing and exits 1 when a committed file differs from what the builders produce (a test does the
same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from plantwatch import dashboards, grafana_alerting


def outputs() -> dict[Path, str]:
    """Each generated file -> its text."""
    files = {dashboards.OUT_DIR / name: dashboards.render(board) for name, board in dashboards.dashboards().items()}
    files.update({grafana_alerting.OUT_DIR / name: text for name, text in grafana_alerting.files().items()})
    return files


def stale() -> list[Path]:
    """The generated files whose committed text differs from the builders' output (or that are missing)."""
    return [path for path, text in outputs().items() if not path.is_file() or path.read_text() != text]


def write() -> list[Path]:
    written = []
    for path, text in outputs().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plantwatch.grafana_build", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale()
        for path in out_of_date:
            print(f"out of date: {path} (regenerate with python -m plantwatch.grafana_build)", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in write():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
