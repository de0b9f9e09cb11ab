"""Least-privilege ClickHouse users: who each component connects as, and what each may do.

The grants are declared once in ``plantwatch/sql/access.yaml``. For the local stack they become a ``users.xml``
(the chdb-served engine reads users from a file; it cannot store users created by SQL); for a real server,
``sql_statements`` gives the CREATE USER / GRANT statements. Passwords come from the settings (the environment,
a Kubernetes Secret); the local stack generates the missing ones once into ``<state>/secrets`` (mode 0600).
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from string import Template
from typing import Literal
from xml.sax.saxutils import escape

import orjson
import yaml

from plantwatch.settings import Settings

Role = Literal["ingest", "transform", "quality", "grafana"]
ROLES: tuple[Role, ...] = ("ingest", "transform", "quality", "grafana")
ACCESS_FILE = Path(__file__).parent / "sql" / "access.yaml"


def secrets_file(settings: Settings) -> Path:
    return settings.state_dir / "secrets" / "clickhouse-users.json"


def _generated_passwords(settings: Settings) -> dict[str, str]:
    """Passwords the local stack made for roles whose password is not configured (made once, then kept)."""
    path = secrets_file(settings)
    stored = orjson.loads(path.read_bytes()) if path.exists() else {}
    missing = [r for r in ROLES if r not in stored]
    if missing:
        stored.update({role: secrets.token_urlsafe(18) for role in missing})
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_bytes(orjson.dumps(stored))
    return stored


def role_credentials(settings: Settings, role: Role) -> tuple[str, str]:
    """(user, password) of a role's own user."""
    ch = settings.clickhouse
    password = getattr(ch, f"{role}_password")
    if password is None:
        password = _generated_passwords(settings)[role]
    return getattr(ch, f"{role}_user"), password


def credentials(settings: Settings, role: Role | None) -> tuple[str, str]:
    """(user, password) a component connects with: its role's user, or the admin when role is None or roles
    are off (`clickhouse.roles = false`)."""
    ch = settings.clickhouse
    if role is None or not ch.roles:
        return ch.user, ch.password
    return role_credentials(settings, role)


def _statements(settings: Settings) -> dict[Role, dict[str, list[str]]]:
    """Each role's grants and revokes, templated for every managed database."""
    declared = yaml.safe_load(ACCESS_FILE.read_text())
    values = settings.clickhouse.model_dump()
    out: dict[Role, dict[str, list[str]]] = {}
    for role in ROLES:
        spec = declared[role]
        out[role] = {
            kind: sorted(
                {
                    Template(line).substitute({**values, "database": database})
                    for database in settings.clickhouse.managed_databases
                    for line in spec.get(kind, [])
                }
            )
            for kind in ("grants", "revokes")
        }
    return out


def users_xml(settings: Settings) -> str:
    """The local stack's users file: the passwordless admin on loopback, plus one user a role."""
    ch = settings.clickhouse
    users = [
        f"<{ch.user}><password>{escape(ch.password)}</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks>"
        f"<profile>default</profile><quota>default</quota><access_management>1</access_management></{ch.user}>"
    ]
    for role, statements in _statements(settings).items():
        user, password = role_credentials(settings, role)
        digest = hashlib.sha256(password.encode()).hexdigest()
        queries = [f"GRANT {g}" for g in statements["grants"]] + [f"REVOKE {r}" for r in statements["revokes"]]
        grants = "".join(f"<query>{escape(q)}</query>" for q in queries)
        users.append(
            f"<{user}><password_sha256_hex>{digest}</password_sha256_hex>"
            f"<networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota>"
            f"<grants>{grants}</grants></{user}>"
        )
    body = "\n    ".join(users)
    return (
        "<!-- Rendered by plantwatch/access.py from plantwatch/sql/access.yaml; do not edit. -->\n"
        "<clickhouse>\n  <profiles><default/></profiles>\n  <quotas><default/></quotas>\n"
        f"  <users>\n    {body}\n  </users>\n</clickhouse>\n"
    )


def sql_statements(settings: Settings) -> list[str]:
    """CREATE USER / GRANT / REVOKE for a real clickhouse-server (passwords from the settings)."""
    out = []
    for role, statements in _statements(settings).items():
        user, password = role_credentials(settings, role)
        digest = hashlib.sha256(password.encode()).hexdigest()
        out.append(f"CREATE USER IF NOT EXISTS {user} IDENTIFIED WITH sha256_hash BY '{digest}'")
        out += [f"GRANT {g} TO {user}" for g in statements["grants"]]
        out += [f"REVOKE {r} FROM {user}" for r in statements["revokes"]]
    return out
