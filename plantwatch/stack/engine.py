"""The ClickHouse engine of the local stack: the chdb wheels, pinned together."""

from __future__ import annotations

from importlib import metadata

PINNED = {"chdb": "4.4.0", "chdb-core": "26.9.0"}


class EngineMissing(RuntimeError):
    pass


def check_engine() -> None:
    """Fail with a plain message unless the pinned chdb wheels are installed."""
    for package, version in PINNED.items():
        try:
            found = metadata.version(package)
        except metadata.PackageNotFoundError:
            found = None
        if found != version:
            raise EngineMissing(
                f"ClickHouse for the local stack comes from the {package}=={version} wheel, but "
                f"{'none is installed' if found is None else f'{found} is installed'}: "
                f"pip install 'chdb=={PINNED['chdb']}' 'chdb-core=={PINNED['chdb-core']}'"
            )
