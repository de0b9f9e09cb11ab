"""`lint-imports` (import-linter's contracts in pyproject.toml) on the plantwatch package as a wheel lays it out.

import-linter reads a package's modules from its one folder, but plantwatch's code lives in several
(pyproject.toml's [tool.setuptools.package-dir]: `producers/` is plantwatch.producers, ...). This copies each code
folder to where the wheel puts it, in a temporary folder, and runs the contracts there. Run with the project's
virtualenv: `.venv/bin/python scripts/lint-imports.py` (`make lint` does).
"""

import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"


def main() -> int:
    mapping = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["package-dir"]
    with tempfile.TemporaryDirectory(prefix="plantwatch-lint-") as tree:
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "plantwatch", Path(tree) / "plantwatch", ignore=ignore)
        for package, folder in mapping.items():
            if (ROOT / folder / "__init__.py").is_file():  # code; the data folders import-linter does not read
                shutil.copytree(ROOT / folder, Path(tree, *package.split(".")), ignore=ignore)
        lint = Path(sys.executable).parent / "lint-imports"
        return subprocess.run([lint, PYPROJECT, "--no-cache"], cwd=tree).returncode


if __name__ == "__main__":
    sys.exit(main())
