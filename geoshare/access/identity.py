"""Who is asking: the principal behind a request, established from its API key.

One primary-key probe per keyed request and no cache, so a revocation or an expiry takes effect on
the very next request on every worker. Error messages are precise for the key's holder (revoked,
expired on …, which binding refused) but only once the full key has matched its digest: a guessed
or unknown key learns nothing, not even whether its prefix exists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import shapely
from sqlalchemy import Connection, text

from geoshare.access import keys
from layers.errors import LayerError

# lowest first: a role may do everything the roles before it may
ROLES = ("consumer", "publisher", "department_admin", "platform_admin")
LAST_USED_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often per key
_DUMMY_DIGEST = "0" * 64  # compared against when the prefix is unknown, so both paths cost the same


class Unauthenticated(LayerError):
    """No usable credentials: the key is malformed, unknown, revoked or expired (401)."""

    status = 401


class Forbidden(LayerError):
    """Valid credentials that may not do this, or may not be used from here (403)."""

    status = 403


def rank(role: str | None) -> int:
    """Position of a role in ``ROLES`` (-1 for none), for "at least" comparisons."""
    return ROLES.index(role) if role in ROLES else -1


@dataclass(frozen=True)
class Grant:
    """What the department's approved, current sharing agreements give it on one layer: the fields
    they list, and the area rows must lie in (None: the whole layer). Several agreements on one
    layer add up: fields are united, and so are areas, unless one of them has none."""

    fields: frozenset[str]
    area: bytes | None
    agreements: tuple[int, ...]


@dataclass(frozen=True)
class Principal:
    """The caller as the policy sees it; anonymous when every field is None."""

    department: str | None
    role: str | None
    key_prefix: str | None
    user_id: int | None = None
    grants: Mapping[str, Grant] = field(default_factory=dict, compare=False, hash=False)
    # until when a worker may reuse this principal for the same key without asking the database:
    # None for keys bound to referrers or IPs (checked per request) and for trusted principals
    cacheable_until: datetime | None = field(default=None, compare=False, hash=False)

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(department=None, role=None, key_prefix=None, user_id=None)

    @property
    def is_anonymous(self) -> bool:
        return self.role is None

    @property
    def is_platform_admin(self) -> bool:
        return self.role == "platform_admin"

    def has_role(self, role: str) -> bool:
        """At least ``role`` (platform admins have every role), in whatever department."""
        return rank(self.role) >= rank(role)

    def is_member_of(self, department: str) -> bool:
        return self.department is not None and self.department == department

    def can_administer(self, department: str) -> bool:
        """Manage keys (and, later, agreements) of ``department``."""
        return self.is_platform_admin or (self.role == "department_admin" and self.is_member_of(department))

    def can_publish_for(self, department: str) -> bool:
        """Publish or delete layers owned by ``department``."""
        return self.is_platform_admin or (self.has_role("publisher") and self.is_member_of(department))

    def can_grant(self, role: str) -> bool:
        """Issue a key with ``role``: never above one's own; platform admin keys only by platform admins."""
        if self.is_platform_admin:
            return role in ROLES
        return self.role == "department_admin" and rank(role) <= rank("department_admin")


# -- bindings --------------------------------------------------------------------------------------


def origin_of(value: str | None) -> str | None:
    """``scheme://host[:port]`` of a URL or origin, lower-case, default port dropped; None if not one."""
    if not value:
        return None
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    default = 443 if parts.scheme == "https" else 80
    suffix = f":{port}" if port and port != default else ""
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host  # IPv6 literal
    return f"{parts.scheme}://{host}{suffix}"


def origin_allowed(origin: str, allowed: list[str]) -> bool:
    """Exact origins, or ``scheme://*.domain`` for any subdomain (not the bare domain itself)."""
    scheme, _, host = origin.partition("://")
    for rule in allowed:
        if rule == origin:
            return True
        rule_scheme, _, rule_host = rule.partition("://")
        if rule_host.startswith("*.") and rule_scheme == scheme and host.endswith(rule_host[1:]):
            return True
    return False


def ip_allowed(client_ip: str | None, networks: list[Any]) -> bool:
    """Whether the peer address lies in one of the networks (IPv4-mapped IPv6 counts as IPv4)."""
    try:
        ip = ipaddress.ip_address((client_ip or "").strip())
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in ipaddress.ip_network(str(net)) for net in networks)


# -- authentication -----------------------------------------------------------------------------------

_GRANTS = """
        SELECT jsonb_agg(jsonb_build_array(al.layer_id, al.fields, a.id, encode(ST_AsBinary(a.area), 'hex')))
               AS grants
        FROM gs.agreement a JOIN gs.agreement_layer al ON al.agreement_id = a.id
        WHERE a.consumer_code = {department} AND a.status = 'approved'
          AND current_date BETWEEN a.starts_on AND a.ends_on
"""
_LOOKUP = text(
    """
    SELECT k.digest, k.department_code, k.role, k.user_id, k.expires_at, k.revoked_at,
           k.allowed_referrers, k.allowed_ips, k.last_used_at, u.role AS user_role, u.disabled_at,
           g.grants, (current_date + 1)::timestamptz AS day_ends
    FROM gs.api_key k
    LEFT JOIN gs.app_user u ON u.id = k.user_id
    LEFT JOIN LATERAL ("""
    + _GRANTS.format(department="k.department_code")
    + """
    ) g ON true
    WHERE k.prefix = :prefix
    """
)
_TOUCH = text(
    """
    UPDATE gs.api_key SET last_used_at = :now
    WHERE prefix = :prefix AND (last_used_at IS NULL OR last_used_at < :stale)
    """
)


def authenticate(
    conn: Connection,
    key: str | None,
    *,
    referrer: str | None = None,
    client_ip: str | None = None,
    now: datetime | None = None,
) -> Principal:
    """The principal for ``key`` (anonymous when None), or raise ``Unauthenticated``/``Forbidden``.

    ``referrer`` is the request's ``Origin`` (or else ``Referer``) header, ``client_ip`` the peer.
    """
    if key is None:
        return Principal.anonymous()
    prefix = keys.parse_prefix(key)
    if prefix is None:
        raise Unauthenticated("the API key is malformed (expected gsk_<prefix>_<secret>)")
    row = conn.execute(_LOOKUP, {"prefix": prefix}).mappings().first()
    if not keys.matches(key, row["digest"] if row else _DUMMY_DIGEST) or row is None:
        raise Unauthenticated("the API key is not recognised")
    now = now or datetime.now(UTC)
    if row["revoked_at"] is not None:
        raise Unauthenticated(f"the API key gsk_{prefix}_… is revoked")
    if row["expires_at"] is not None and row["expires_at"] <= now:
        when = row["expires_at"].astimezone(UTC)
        raise Unauthenticated(f"the API key gsk_{prefix}_… expired on {when:%Y-%m-%d %H:%M} UTC")
    if row["disabled_at"] is not None:
        raise Unauthenticated(f"the user of API key gsk_{prefix}_… is disabled")
    if row["allowed_referrers"]:
        origin = origin_of(referrer)
        if origin is None:
            raise Forbidden(
                "this browser key is bound to allowed referrers and the request sent no Origin or Referer",
                field="Referer",
            )
        if not origin_allowed(origin, row["allowed_referrers"]):
            raise Forbidden(
                f"this browser key is bound to allowed referrers and {origin} is not one of them",
                field="Referer",
            )
    if row["allowed_ips"] and not ip_allowed(client_ip, row["allowed_ips"]):
        raise Forbidden(f"the API key is bound to allowed IP ranges and {client_ip} is outside them")
    if row["last_used_at"] is None or now - row["last_used_at"] >= LAST_USED_EVERY:
        conn.execute(_TOUCH, {"prefix": prefix, "now": now, "stale": now - LAST_USED_EVERY})
    role = row["role"]
    if row["user_role"] is not None and rank(row["user_role"]) < rank(role):
        role = row["user_role"]  # a user demoted after the key was issued
    cacheable_until = None
    if not row["allowed_referrers"] and not row["allowed_ips"]:
        # agreements start and end with the database's day; touch last_used_at about once a minute
        limits = [row["day_ends"], now + LAST_USED_EVERY]
        cacheable_until = min([*limits, row["expires_at"]] if row["expires_at"] else limits)
    return Principal(
        department=row["department_code"],
        role=role,
        key_prefix=prefix,
        user_id=row["user_id"],
        grants=merge_grants(row["grants"] or []),
        cacheable_until=cacheable_until,
    )


def department_principal(conn: Connection, department: str, role: str = "consumer") -> Principal:
    """The principal of a trusted caller acting for ``department`` without a key (CLI jobs such as
    offline packages), with that department's current agreements."""
    grants = conn.execute(text(_GRANTS.format(department=":d")), {"d": department}).scalar()
    return Principal(department=department, role=role, key_prefix=None, grants=merge_grants(grants or []))


def merge_grants(rows: list[Any]) -> dict[str, Grant]:
    """Per layer, the sum of the agreements naming it (rows of layer id, fields, agreement id, area)."""
    parts: dict[str, list[Any]] = {}
    for layer_id, fields, agreement_id, area in rows:
        parts.setdefault(layer_id, []).append((frozenset(fields), agreement_id, area and bytes.fromhex(area)))
    grants: dict[str, Grant] = {}
    for layer_id, items in parts.items():
        areas = [a for _, _, a in items]
        if any(a is None for a in areas):
            area = None
        elif len(areas) == 1:
            area = areas[0]
        else:
            area = shapely.to_wkb(shapely.union_all(shapely.from_wkb(areas)))
        grants[layer_id] = Grant(
            fields=frozenset().union(*(f for f, _, _ in items)),
            area=area,
            agreements=tuple(sorted(i for _, i, _ in items)),
        )
    return grants
