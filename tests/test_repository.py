"""The repository is self-contained: nothing it runs or tests reads a path outside the checkout.

A user's fresh clone has nothing beside it, so a reference to a sibling folder (a schema, a script, a cache) passes
on a developer's machine and fails on theirs. These checks read every tracked text file (code, tests, Makefile,
CI, configs, docs) and fail on a relative path that climbs out of the repository, on `Path(__file__)` or
`PROJECT_ROOT` parents above the repository root, and on absolute paths into the workplace.
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from plantwatch.settings import PROJECT_ROOT

TEXT_SUFFIXES = {".py", ".sh", ".sql", ".yml", ".yaml", ".toml", ".md", ".cfg", ".ini", ".json", ".xml", ".txt", ""}
CLIMB = re.compile(r"(?<![\w.])((?:\.\./)+)([\w.-]*)")
FILE_PARENTS = re.compile(r"Path\(__file__\)(?:\.resolve\(\))?((?:\.parent)+)")
ROOT_PARENT = re.compile(r"PROJECT_ROOT\.parent\b")
WORKPLACE = re.compile(r"(?<![\w.])/work/")


@cache
def tracked_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=PROJECT_ROOT, capture_output=True, check=False, text=True
    ).stdout
    if listed:
        names = [name for name in listed.split("\0") if name]
    else:  # not a git checkout (an unpacked archive): every file but the generated ones
        skip = {".git", ".venv", ".plantwatch", "target", "dbt_packages", "__pycache__"}
        names = [str(p.relative_to(PROJECT_ROOT)) for p in PROJECT_ROOT.rglob("*") if not skip & set(p.parts)]
    own = Path(__file__).resolve()
    return [
        PROJECT_ROOT / name
        for name in names
        if Path(name).suffix in TEXT_SUFFIXES and (PROJECT_ROOT / name).is_file() and (PROJECT_ROOT / name) != own
    ]


@cache
def folders() -> list[Path]:
    return sorted({path.parent for path in tracked_files()})


def escapes(text: str, file: Path) -> list[str]:
    """What in the text of one file (its path relative to the repository root) points outside the repository."""
    found = []
    for match in CLIMB.finditer(text):
        if match.group(2) == "etc":  # the path-traversal payload of the hostile-input tests, not a path we read
            continue
        # Relative to the working directory (the repository root, where every command runs), to the file that names
        # it, or to another of the repository's folders (a config file's path quoted in a test): from one of them
        # it must name something of the repository.
        targets = [(base / match.group(0)).resolve() for base in (PROJECT_ROOT, *folders())]
        if not any(t.is_relative_to(PROJECT_ROOT) and t.exists() for t in targets):
            found.append(f"{match.group(0)!r} names nothing inside the repository")
    depth = len(file.parts) - 1  # the folders between the file and the repository root
    for match in FILE_PARENTS.finditer(text):
        if match.group(1).count(".parent") > depth + 1:
            found.append(f"{match.group(0)} climbs above the repository root")
    found += [f"{m.group(0)} is above the repository root" for m in ROOT_PARENT.finditer(text)]
    found += [f"absolute path into the workplace: {m.group(0)}" for m in WORKPLACE.finditer(text)]
    return found


def test_the_scan_sees_the_project() -> None:
    files = {p.relative_to(PROJECT_ROOT).as_posix() for p in tracked_files()}
    assert {"Makefile", ".ci/run", "plantwatch/settings.py", "tests/conftest.py"} <= files


@pytest.mark.parametrize(
    ("text", "where", "bad"),
    [
        ('SCHEMAS = PROJECT_ROOT.parent / "shared" / "schemas"', "tests/x.py", True),
        ('open("../shared/schemas/keda/x.yaml")', "tests/x.py", True),
        ("cp ../../x .", "Makefile", True),
        ("SQL = Path(__file__).parent.parent.parent / 'x'", "plantwatch/x.py", True),
        ("SQL = Path(__file__).parent / 'sql'", "plantwatch/x.py", False),
        ("ROOT = Path(__file__).resolve().parent.parent", "plantwatch/x.py", False),
        ('cd "$(dirname "$0")/.."', ".ci/run", False),
        ("see ../docs/warehouse.md", "docs/x.md", False),
        ("rule_files: [../rules/pipeline.yml]", "prometheus/tests/x.yml", False),
        ('HOSTILE = ["../../etc/passwd"]', "tests/x.py", False),
        ("cat /work/shared/notes.md", "scripts/x.sh", True),
    ],
)
def test_the_scan_tells_escapes_apart(text: str, where: str, bad: bool) -> None:
    """The checks themselves, on known good and bad lines (a check that cannot fail proves nothing)."""
    found = escapes(text, Path(where))
    assert bool(found) is bad, found


def test_nothing_refers_outside_the_repository() -> None:
    problems = [
        f"{path.relative_to(PROJECT_ROOT)}: {what}"
        for path in tracked_files()
        for what in escapes(path.read_text(errors="replace"), path.relative_to(PROJECT_ROOT))
    ]
    assert not problems, "\n".join(problems)
