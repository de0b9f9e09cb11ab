"""Where the files the commands read are: in the installed package, found through importlib.resources.

A wheel holds everything inside ``plantwatch/``: the package's own data (``sql/``, ``stack/``), the code of the
top-level folders under their import names (``plantwatch/producers/`` with its plants and scenarios, ...), and the
folders the commands read at run time under ``plantwatch/project/`` (the dbt project, the alert rules,
Alertmanager's config and UI, Prometheus' rules, the runbook; pyproject.toml lists them). An editable install (the
checkout) has none of ``plantwatch/project/``: those folders are the checkout's own top-level ones.

pip installs packages as files, never zipped, so every resource here is a real path (dbt, Kafka and Alertmanager
are handed folders and files by name).
"""

from __future__ import annotations

from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

PACKAGE = "plantwatch"
# The folder holding the package: the checkout for an editable install, site-packages for a wheel.
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def package_path(package: str, *parts: str) -> Path:
    """A file or folder of an (already imported) package's data, e.g. ``package_path("plantwatch", "sql")``."""
    resource = files(package).joinpath(*parts)
    if not isinstance(resource, Path):
        raise RuntimeError(f"{package} is not installed as files ({resource!r}): reinstall it with pip")
    return resource


def package_folder(package: str) -> Path:
    """The folder of a subpackage, found without running it (``plantwatch.producers`` from the settings, which it
    imports): ``producers/`` in the checkout, ``plantwatch/producers/`` in a wheel."""
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{package} is not installed")
    return Path(spec.submodule_search_locations[0])


def project_folder(name: str) -> Path:
    """A top-level folder of the project the commands read (``dbt_project``, ``grafana``, ``alertmanager``,
    ``prometheus``, ``docs``): shipped in a wheel as ``plantwatch/project/<name>``, else the checkout's."""
    shipped = package_path(PACKAGE, "project", name)
    return shipped if shipped.is_dir() else PROJECT_ROOT / name


def workspace() -> Path:
    """Where the commands keep what they make (the local stack's state folder, the demo's reports): the checkout
    when run from one, else the current folder."""
    return PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").is_file() else Path.cwd()
