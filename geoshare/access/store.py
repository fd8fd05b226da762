"""Departments, users and API keys: create, list, revoke — one statement each, shared by CLI and API.

Input is checked here, before the database sees it, so both front ends refuse the same things with
the same messages (``InvalidInput``/``Conflict``/``NotFound`` naming the field). The full key exists
only in the ``CreatedKey`` returned by ``create_key``; the database keeps its digest.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from geoshare.access import keys
from geoshare.access.identity import ROLES, origin_of
from layers.errors import Conflict, InvalidInput, NotFound

CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_RELATIVE = re.compile(r"^(\d{1,5})([dh])$")
_PREFIX = re.compile(r"^(?:gsk_)?([a-z0-9]{8})(?:_.*)?$")
_HOST = re.compile(r"^(?:(?:\*\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::\d{1,5})?$")
_MAX_BINDINGS = 50


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    contact: str | None
    created_at: datetime


@dataclass(frozen=True)
class User:
    id: int
    department: str
    name: str
    role: str
    created_at: datetime
    disabled_at: datetime | None


@dataclass(frozen=True)
class KeyInfo:
    """Everything about a key except its secret and digest."""

    prefix: str
    department: str
    user_id: int | None
    role: str
    status: str  # active | revoked | expired
    label: str | None
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    revoked_at: datetime | None
    allowed_referrers: list[str]
    allowed_ips: list[str]
    last_used_at: datetime | None


@dataclass(frozen=True)
class CreatedKey:
    key: str  # the full key: show it once, then forget it
    info: KeyInfo


# -- input -------------------------------------------------------------------------------------------


def check_code(code: str, field: str = "code") -> str:
    if not isinstance(code, str) or not CODE.match(code):
        raise InvalidInput(f"{field} must be 1–32 letters, digits, '_' or '-', got {code!r}", field=field)
    return code


def check_role(role: str, field: str = "role") -> str:
    if role not in ROLES:
        raise InvalidInput(f"{field} must be one of {', '.join(ROLES)}, got {role!r}", field=field)
    return role


def _text(value: str | None, field: str, *, required: bool = False, limit: int = 200) -> str | None:
    value = value.strip() if isinstance(value, str) else value
    if required and not value:
        raise InvalidInput(f"{field} is required", field=field)
    if value and len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters", field=field)
    return value or None


def parse_expires(value: str | datetime | None, now: datetime | None = None) -> datetime | None:
    """``90d`` / ``12h`` from now, a date (midnight UTC starting it) or an ISO date-time; must be future."""
    if value is None or value == "":
        return None
    now = now or datetime.now(UTC)
    if isinstance(value, datetime):
        when = value
    elif m := _RELATIVE.match(value.strip()):
        amount, unit = int(m.group(1)), m.group(2)
        when = now + (timedelta(days=amount) if unit == "d" else timedelta(hours=amount))
    else:
        try:
            when = (
                datetime.combine(date.fromisoformat(value.strip()), datetime.min.time())
                if len(value.strip()) == 10
                else datetime.fromisoformat(value.strip())
            )
        except ValueError:
            raise InvalidInput(
                f"expires must be like 90d, 12h, 2027-01-01 or 2027-01-01T08:00+08:00, got {value!r}",
                field="expires",
            ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= now:
        raise InvalidInput(f"expires {when.isoformat()} is not in the future", field="expires")
    return when


def normalise_referrers(values: list[str] | None) -> list[str]:
    """Origins such as ``https://map.example.gov.cn`` or ``https://*.example.gov.cn`` (no paths)."""
    out: list[str] = []
    for value in values or []:
        origin = origin_of(value) if isinstance(value, str) else None
        path = value.strip().split("://", 1)[-1].partition("/")[2] if origin else ""
        host = origin.split("://", 1)[1] if origin else ""
        if origin is None or path or not _HOST.match(host):
            raise InvalidInput(
                f"allowed referrer {value!r} is not an origin like https://map.example.gov.cn "
                "or https://*.example.gov.cn",
                field="allowed_referrers",
            )
        if origin not in out:
            out.append(origin)
    if len(out) > _MAX_BINDINGS:
        raise InvalidInput(f"at most {_MAX_BINDINGS} allowed referrers", field="allowed_referrers")
    return out


def normalise_ips(values: list[str] | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Addresses or CIDR ranges; host bits set (``10.0.0.1/8``) are refused as ambiguous."""
    out: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for value in values or []:
        try:
            net = ipaddress.ip_network(str(value).strip(), strict=True)
        except ValueError as exc:
            raise InvalidInput(f"allowed IP {value!r}: {exc}", field="allowed_ips") from None
        if net not in out:
            out.append(net)
    if len(out) > _MAX_BINDINGS:
        raise InvalidInput(f"at most {_MAX_BINDINGS} allowed IP ranges", field="allowed_ips")
    return out


def parse_prefix(value: str) -> str:
    """A key's prefix from ``abcd1234``, ``gsk_abcd1234`` or a whole key pasted by mistake."""
    m = _PREFIX.match((value or "").strip())
    if not m:
        raise InvalidInput("prefix must be the 8 lower-case letters or digits after gsk_", field="prefix")
    return m.group(1)


def _constraint(exc: IntegrityError) -> str | None:
    diag = getattr(exc.orig, "diag", None)
    return getattr(diag, "constraint_name", None)


# -- departments ---------------------------------------------------------------------------------------


def create_department(conn: Connection, code: str, name: str, contact: str | None = None) -> Department:
    check_code(code)
    row = conn.execute(
        text(
            """
            INSERT INTO gs.department (code, name, contact) VALUES (:code, :name, :contact)
            ON CONFLICT (code) DO NOTHING
            RETURNING code, name, contact, created_at
            """
        ),
        {"code": code, "name": _text(name, "name", required=True), "contact": _text(contact, "contact")},
    ).first()
    if row is None:
        raise Conflict(f"department {code!r} already exists", field="code")
    return Department(*row)


def list_departments(conn: Connection) -> list[Department]:
    rows = conn.execute(text("SELECT code, name, contact, created_at FROM gs.department ORDER BY code"))
    return [Department(*r) for r in rows]


# -- users ---------------------------------------------------------------------------------------------

_USER_COLS = "u.id, u.department_code, u.name, u.role, u.created_at, u.disabled_at"


def create_user(conn: Connection, department: str, name: str, role: str = "consumer") -> User:
    check_code(department, "department")
    check_role(role)
    try:
        row = conn.execute(
            text(
                f"""
                INSERT INTO gs.app_user AS u (department_code, name, role) VALUES (:department, :name, :role)
                ON CONFLICT (department_code, name) DO NOTHING
                RETURNING {_USER_COLS}
                """
            ),
            {"department": department, "name": _text(name, "name", required=True), "role": role},
        ).first()
    except IntegrityError as exc:
        if "department" in (_constraint(exc) or ""):
            raise InvalidInput(f"unknown department {department!r}", field="department") from None
        raise
    if row is None:
        raise Conflict(f"department {department!r} already has a user named {name.strip()!r}", field="name")
    return User(*row)


def list_users(conn: Connection, department: str | None = None) -> list[User]:
    """All users, or one department's (unknown department → ``InvalidInput``, same statement)."""
    rows = conn.execute(
        text(
            f"""
            SELECT {_USER_COLS} FROM gs.department d LEFT JOIN gs.app_user u ON u.department_code = d.code
            WHERE CAST(:department AS text) IS NULL OR d.code = :department
            ORDER BY d.code, u.id
            """
        ),
        {"department": department},
    ).all()
    if department is not None and not rows:
        raise InvalidInput(f"unknown department {department!r}", field="department")
    return [User(*r) for r in rows if r[0] is not None]


# -- keys ----------------------------------------------------------------------------------------------

_KEY_COLS = """
    k.prefix, k.department_code, k.user_id, k.role,
    CASE WHEN k.revoked_at IS NOT NULL THEN 'revoked'
         WHEN k.expires_at <= now() THEN 'expired' ELSE 'active' END,
    k.label, k.created_at, k.created_by, k.expires_at, k.revoked_at,
    k.allowed_referrers, k.allowed_ips, k.last_used_at
"""
_INSERT_KEY = text(
    f"""
    INSERT INTO gs.api_key AS k (prefix, digest, department_code, user_id, role, label, created_by,
                                 expires_at, allowed_referrers, allowed_ips)
    SELECT :prefix, :digest, :department, CAST(:user_id AS bigint), :role, :label, :created_by,
           CAST(:expires_at AS timestamptz), CAST(:referrers AS text[]), CAST(:ips AS cidr[])
    WHERE NOT EXISTS (  -- a user's key never outranks the user, nor is issued to a disabled user
        SELECT 1 FROM gs.app_user u
        WHERE u.id = CAST(:user_id AS bigint)
          AND (u.disabled_at IS NOT NULL
               OR array_position(CAST(:roles AS text[]), u.role)
                  < array_position(CAST(:roles AS text[]), CAST(:role AS text))))
    ON CONFLICT (prefix) DO NOTHING
    RETURNING {_KEY_COLS}
    """
)


def _key_info(row: Any) -> KeyInfo:
    info = KeyInfo(*row)
    return replace(info, allowed_ips=[str(n) for n in info.allowed_ips or []])


def create_key(
    conn: Connection,
    department: str,
    role: str = "consumer",
    *,
    label: str | None = None,
    expires: str | datetime | None = None,
    allowed_referrers: list[str] | None = None,
    allowed_ips: list[str] | None = None,
    user_id: int | None = None,
    created_by: str | None = None,
) -> CreatedKey:
    """Issue a key; the returned ``CreatedKey.key`` is the only time the secret is ever available."""
    params = {
        "department": check_code(department, "department"),
        "role": check_role(role),
        "label": _text(label, "label"),
        "created_by": _text(created_by, "created_by"),
        "expires_at": parse_expires(expires),
        "referrers": normalise_referrers(allowed_referrers),
        "ips": normalise_ips(allowed_ips),
        "user_id": user_id,
        "roles": list(ROLES),
    }
    for _ in range(3):  # a prefix collision (1 in ~10^12) just draws again
        new = keys.generate()
        try:
            row = conn.execute(_INSERT_KEY, {**params, "prefix": new.prefix, "digest": new.digest}).first()
        except IntegrityError as exc:
            name = _constraint(exc)
            if name == "api_key_department_fk":
                raise InvalidInput(f"unknown department {department!r}", field="department") from None
            if name == "api_key_user_fk":
                raise InvalidInput(
                    f"user {user_id} does not exist in department {department!r}", field="user_id"
                ) from None
            raise
        if row is not None:
            return CreatedKey(key=new.key, info=_key_info(row))
        if user_id is not None:
            _refuse_for_user(conn, user_id, role)
    raise RuntimeError("could not draw an unused key prefix")  # pragma: no cover


def _refuse_for_user(conn: Connection, user_id: int, role: str) -> None:
    """Explain why the insert was filtered out (error path only, so the extra read is free)."""
    user = conn.execute(
        text("SELECT role, disabled_at FROM gs.app_user WHERE id = :id"), {"id": user_id}
    ).first()
    if user is not None and user.disabled_at is not None:
        raise InvalidInput(f"user {user_id} is disabled", field="user_id")
    if user is not None:
        raise InvalidInput(f"user {user_id} is a {user.role} and cannot hold a {role} key", field="role")


def list_keys(conn: Connection, department: str | None = None) -> list[KeyInfo]:
    """All keys, or one department's (unknown department → ``InvalidInput``, same statement)."""
    rows = conn.execute(
        text(
            f"""
            SELECT {_KEY_COLS}
            FROM gs.department d LEFT JOIN gs.api_key k ON k.department_code = d.code
            WHERE CAST(:department AS text) IS NULL OR d.code = :department
            ORDER BY d.code, k.created_at, k.prefix
            """
        ),
        {"department": department},
    ).all()
    if department is not None and not rows:
        raise InvalidInput(f"unknown department {department!r}", field="department")
    return [_key_info(r) for r in rows if r[0] is not None]


def revoke_key(conn: Connection, prefix: str, department: str | None = None) -> KeyInfo:
    """Revoke (idempotently: the first revocation time is kept). With ``department``, only its keys:
    another department's key is "not found", so its existence is not revealed."""
    prefix = parse_prefix(prefix)
    row = conn.execute(
        text(
            f"""
            UPDATE gs.api_key AS k SET revoked_at = coalesce(k.revoked_at, now())
            WHERE k.prefix = :prefix
              AND (CAST(:department AS text) IS NULL OR k.department_code = :department)
            RETURNING {_KEY_COLS}
            """
        ),
        {"prefix": prefix, "department": department},
    ).first()
    if row is None:
        raise NotFound(f"no API key with prefix {prefix!r}", field="prefix")
    return _key_info(row)
