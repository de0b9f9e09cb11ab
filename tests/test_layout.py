"""The package's layout as a user gets it: one import namespace, and commands that import only what they run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = ("quixstreams", "dbt", "great_expectations")


def test_help_imports_no_heavy_library() -> None:
    """`plantwatch --help` (and so every command's start) pays for Quix Streams, dbt or Great Expectations only in
    the command that runs them."""
    code = (
        "import sys\n"
        "from plantwatch.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_only_plantwatch_is_installed(tmp_path: Path) -> None:
    """producers/, streams/ and expectations/ are plantwatch.producers, ...: none is a top-level package (away from
    the checkout, whose folders would be on the path)."""
    code = (
        "import importlib.util\n"
        "print([n for n in ('producers', 'streams', 'expectations') if importlib.util.find_spec(n)])\n"
        "import plantwatch.producers, plantwatch.streams.metrics, plantwatch.expectations\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert done.stdout.strip() == "[]"
