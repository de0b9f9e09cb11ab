"""Least-privilege ClickHouse users: who each component connects as, and what each may do.

The grants are declared once in ``plantwatch/sql/access.yaml``. For the local stack they become a ``users.xml``
(the chdb-served engine reads users from a file; it cannot store users created by SQL); for a real server,
``sql_statements`` gives the CREATE USER / GRANT statements. Passwords come from the settings (the environment,
a Kubernetes Secret); the local stack generates the missing ones once into ``<state>/secrets`` (mode 0600).

The local stack's admin is ``plantwatch_admin`` with a generated password (``default`` is the engine's own
passwordless session, which may do nothing but serve: see plantwatch/stack/clickhouse_server.py). Which admin a
client uses (``admin_credentials``): the configured ``clickhouse.user``/``password`` when set, else the local
stack's admin once the stack made one, else ``default`` with no password (a stack started before the admin
existed, or a server of your own that has only ``default``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from string import Template
from typing import Any, Literal
from xml.sax.saxutils import escape

import orjson
import yaml

from plantwatch.resources import package_path
from plantwatch.settings import Settings

Role = Literal["ingest", "transform", "quality", "grafana"]
ROLES: tuple[Role, ...] = ("ingest", "transform", "quality", "grafana")
ACCESS_FILE = package_path("plantwatch", "sql", "access.yaml")
LOCAL_ADMIN = "plantwatch_admin"  # the local stack's admin user
SERVER_USER = "default"  # the chdb engine's own session
ADMIN_KEY = "admin"  # the admin's password in the secrets file


class AccessError(ValueError):
    """The users cannot be rendered as configured."""


def secrets_file(settings: Settings) -> Path:
    return settings.state_dir / "secrets" / "clickhouse-users.json"


def _stored_passwords(settings: Settings) -> dict[str, str]:
    path = secrets_file(settings)
    return orjson.loads(path.read_bytes()) if path.exists() else {}


def _generated_passwords(settings: Settings, *, admin: bool = False) -> dict[str, str]:
    """Passwords the local stack made for roles whose password is not configured (made once, then kept); the
    admin's too when ``admin`` (only the stack makes it, when it renders its users)."""
    path = secrets_file(settings)
    stored = _stored_passwords(settings)
    missing = [r for r in (*ROLES, *([ADMIN_KEY] if admin else [])) if r not in stored]
    if missing:
        stored.update({key: secrets.token_urlsafe(18) for key in missing})
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


def admin_credentials(settings: Settings) -> tuple[str, str]:
    """(user, password) of the admin: as configured, else the local stack's, else `default` with none."""
    ch = settings.clickhouse
    if ch.user is not None or ch.password is not None:
        return ch.user or SERVER_USER, ch.password or ""
    stored = _stored_passwords(settings)
    if ADMIN_KEY in stored:
        return LOCAL_ADMIN, stored[ADMIN_KEY]
    return SERVER_USER, ""


def credentials(settings: Settings, role: Role | None) -> tuple[str, str]:
    """(user, password) a component connects with: its role's user, or the admin when role is None or roles
    are off (`clickhouse.roles = false`)."""
    if role is None or not settings.clickhouse.roles:
        return admin_credentials(settings)
    return role_credentials(settings, role)


def pinned(settings: Settings) -> Settings:
    """These settings with the admin's and every role's credentials written in, as the state folder gives them
    now: a copy with another state folder, or a child process given them as variables, connects the same way."""
    user, password = admin_credentials(settings)
    roles = {f"{role}_password": role_credentials(settings, role)[1] for role in ROLES}
    clickhouse = settings.clickhouse.model_copy(update={"user": user, "password": password, **roles})
    return settings.model_copy(update={"clickhouse": clickhouse})


def _declared() -> dict[str, Any]:
    return yaml.safe_load(ACCESS_FILE.read_text())


SQL_DIR = package_path("plantwatch", "sql")
_CREATED = re.compile(
    r"CREATE\s+(TABLE|VIEW|MATERIALIZED\s+VIEW|DICTIONARY)\s+IF\s+NOT\s+EXISTS\s+\$\{database\}\.(\S+)", re.I
)


def migrated_objects(settings: Settings) -> list[str]:
    """The names of the objects `plantwatch db migrate` creates in a managed database (plantwatch/sql/*.sql); with a
    cluster, each table's local table under its Distributed one too, and each view's twin over the local tables
    (docs/scale-out.md)."""
    ch = settings.clickhouse
    values = ch.model_dump()
    names: set[str] = set()
    for path in sorted(SQL_DIR.glob("*.sql")):
        for _kind, name in _CREATED.findall(path.read_text()):
            names.add(Template(name).substitute(values))
            if ch.cluster:
                names.add(Template(name).substitute(values) + ch.local_suffix)
    return sorted(names)


def _with_local_tables(lines: list[str], values: dict[str, Any], migrated: list[str]) -> list[str]:
    """Grant or revoke lines, each again on the local table of the object it names where `db migrate` made one (on a
    cluster; ``migrated`` names local tables only then): the rows live there, and a per-shard ingest
    (`ingest.into_shard`) writes there directly, so a right on the Distributed table alone (or a revoke that leaves
    the local table open) would not say what the role may do. ``values``: the ClickHouse settings."""
    out = []
    for line in lines:
        out.append(line)
        if match := re.fullmatch(r"(.* ON \$\{database\}\.)(\$\{\w+\}|\w+)", line):
            local = Template(match.group(2)).substitute(values) + values["local_suffix"]
            if local in migrated:
                out.append(match.group(1) + local)
    return out


def _statements(settings: Settings) -> dict[Role, dict[str, list[str]]]:
    """Each role's grants and revokes, templated for every managed database (table engines granted by name,
    `revokes_on_migrated` on every object migrate creates, and on a cluster each table's local table too)."""
    declared = _declared()
    values = settings.clickhouse.model_dump()
    migrated = migrated_objects(settings)
    out: dict[Role, dict[str, list[str]]] = {}
    for role in ROLES:
        spec = declared[role]
        lines = {
            "grants": _with_local_tables(spec.get("grants", []), values, migrated),
            "revokes": [
                *_with_local_tables(spec.get("revokes", []), values, migrated),
                *(f"{spec['revokes_on_migrated']} ON ${{database}}.{name}" for name in migrated
                  if "revokes_on_migrated" in spec),
            ],
        }  # fmt: skip
        out[role] = {
            kind: sorted(
                {
                    " ".join(Template(line).substitute({**values, "database": database}).split())
                    for database in settings.clickhouse.managed_databases
                    for line in lines[kind]
                }
            )
            for kind in ("grants", "revokes")
        }
        out[role]["grants"] += [f"TABLE ENGINE ON {engine}" for engine in spec.get("engines", [])]
    return out


def _user_xml(name: str, password: str, grants: list[str], revokes: list[str], *, hashed: bool = True) -> str:
    secret = (
        f"<password_sha256_hex>{hashlib.sha256(password.encode()).hexdigest()}</password_sha256_hex>"
        if hashed
        else f"<password>{escape(password)}</password>"
    )
    queries = [f"GRANT {g}" for g in grants] + [f"REVOKE {r}" for r in revokes]
    body = "".join(f"<query>{escape(q)}</query>" for q in queries)
    return (
        f"<{name}>{secret}<networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile>"
        f"<quota>default</quota><grants>{body}</grants></{name}>"
    )


def users_xml(settings: Settings) -> str:
    """The local stack's users file: the engine's own session (``default``), the admin with its password (made
    once into the secrets file unless configured), and one user a role."""
    ch = settings.clickhouse
    local = _declared()["local"]
    if ch.password is None:
        _generated_passwords(settings, admin=True)
    admin, admin_password = admin_credentials(settings)
    if admin == SERVER_USER:
        raise AccessError(
            f"the local stack's admin cannot be `{SERVER_USER}` (the engine's own session, which has no password): "
            f"unset PLANTWATCH_CLICKHOUSE__USER or name another user"
        )
    if not admin_password:
        raise AccessError("the local stack's admin needs a password: unset PLANTWATCH_CLICKHOUSE__PASSWORD or set one")
    users = [
        _user_xml(SERVER_USER, "", local["server"]["grants"], [], hashed=False),
        _user_xml(admin, admin_password, local["admin"]["grants"], local["admin"].get("revokes", [])),
    ]
    for role, statements in _statements(settings).items():
        user, password = role_credentials(settings, role)
        users.append(_user_xml(user, password, statements["grants"], statements["revokes"]))
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
