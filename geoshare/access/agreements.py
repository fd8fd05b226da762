"""Sharing agreements (共享协议): filed by a consumer department, decided by the provider.

Shared by the HTTP API and the CLI. Who may do what:

* file: a department admin or publisher of the consumer department (or a platform admin on its
  behalf). Layer names are not checked against what exists unless the consumer may already see the
  layer, so filing reveals nothing about restricted layers; the provider checks them when deciding.
* approve / reject: a department admin or publisher of the provider department, or a platform admin;
  approving checks that every layer is the provider's and every field exists.
* revoke: either party, or a platform admin; it takes effect on the next request (grants are read
  with the key on every request, see ``identity.authenticate``).
* read: the two parties and platform admins; anyone else gets "not found".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from geoshare.access import audit
from geoshare.access.identity import Forbidden, Principal
from layers.errors import Conflict, InvalidInput, NotFound

MAX_LAYERS = 100
MAX_DAYS = 5 * 366  # agreements are renewed, not open-ended


@dataclass(frozen=True)
class LayerGrant:
    layer: str
    fields: list[str]


@dataclass(frozen=True)
class Agreement:
    id: int
    consumer: str
    provider: str
    purpose: str
    update_frequency: str | None
    starts_on: date
    ends_on: date
    area_code: str | None
    area_name: str | None
    status: str  # requested | approved | rejected | revoked | expired
    layers: list[LayerGrant]
    requested_by: str | None
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    revoked_by: str | None
    revoked_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["in_force"] = self.status == "approved"
        return doc


_SELECT = """
SELECT a.id, a.consumer_code AS consumer, a.provider_code AS provider, a.purpose, a.update_frequency,
       a.starts_on, a.ends_on, a.area_code, a.area_name,
       CASE WHEN a.status = 'approved' AND a.ends_on < current_date THEN 'expired' ELSE a.status END
           AS status,
       a.requested_by, a.requested_at, a.decided_by, a.decided_at, a.decision_note,
       a.revoked_by, a.revoked_at,
       (SELECT json_agg(json_build_array(al.layer_id, al.fields) ORDER BY al.layer_id)
        FROM gs.agreement_layer al WHERE al.agreement_id = a.id) AS layers
FROM gs.agreement a
"""


def _from_row(row: Any) -> Agreement:
    m = dict(row._mapping)
    m["layers"] = [LayerGrant(layer, list(fields)) for layer, fields in m["layers"] or []]
    return Agreement(**m)


def _actor(who: Principal) -> str:
    return f"{who.department or '-'}/{who.key_prefix or 'cli'}"


def _department_exists(conn: Connection, code: str, field: str) -> None:
    if conn.execute(text("SELECT 1 FROM gs.department WHERE code = :c"), {"c": code}).first() is None:
        raise NotFound(f"department {code!r} does not exist", field=field)


def _check_layers(layers: list[LayerGrant]) -> list[LayerGrant]:
    if not layers:
        raise InvalidInput("an agreement names at least one layer", field="layers")
    if len(layers) > MAX_LAYERS:
        raise InvalidInput(f"at most {MAX_LAYERS} layers per agreement", field="layers")
    seen: set[str] = set()
    for i, grant in enumerate(layers):
        if grant.layer in seen:
            raise InvalidInput(f"layer {grant.layer!r} is named twice", field=f"layers[{i}].layer")
        seen.add(grant.layer)
        if not grant.fields:
            raise InvalidInput("name at least one field", field=f"layers[{i}].fields")
        if len(set(grant.fields)) != len(grant.fields):
            raise InvalidInput("a field is named twice", field=f"layers[{i}].fields")
    return layers


def _check_fields(conn: Connection, provider: str, layers: list[LayerGrant], *, strict: bool) -> None:
    """Every layer belongs to ``provider`` and has the fields named. ``strict`` False (filing):
    only layers the filer could see anyway are checked; others are the provider's to check."""
    for i, grant in enumerate(layers):
        row = conn.execute(
            text("SELECT department_code, attributes, sharing_class FROM gs.layer WHERE id = :id"),
            {"id": grant.layer},
        ).first()
        if row is None or (not strict and row.sharing_class == "restricted"):
            if strict:
                raise InvalidInput(f"layer {grant.layer!r} does not exist", field=f"layers[{i}].layer")
            continue
        if row.department_code != provider:
            raise InvalidInput(
                f"layer {grant.layer!r} belongs to department {row.department_code!r}, not {provider!r}",
                field=f"layers[{i}].layer",
            )
        names = {a["name"] for a in row.attributes}
        unknown = [f for f in grant.fields if f not in names]
        if unknown:
            raise InvalidInput(
                f"layer {grant.layer!r} has no field(s) {', '.join(map(repr, unknown))}",
                field=f"layers[{i}].fields",
            )


def file(
    conn: Connection,
    who: Principal,
    *,
    consumer: str | None,
    provider: str,
    layers: list[LayerGrant],
    purpose: str,
    starts_on: date,
    ends_on: date,
    update_frequency: str | None = None,
    area_code: str | None = None,
) -> Agreement:
    """File a request; it grants nothing until the provider approves it."""
    consumer = consumer or who.department
    if consumer is None:
        raise InvalidInput("name the consumer department", field="consumer")
    if not who.is_platform_admin and not (who.is_member_of(consumer) and who.has_role("publisher")):
        raise Forbidden(
            "only publishers or administrators of the consumer department file its agreements",
            field="consumer",
        )
    if consumer == provider:
        raise InvalidInput("a department needs no agreement for its own layers", field="provider")
    if not purpose or not purpose.strip():
        raise InvalidInput("say what the data is for", field="purpose")
    if ends_on < starts_on:
        raise InvalidInput("the period ends before it starts", field="ends_on")
    if (ends_on - starts_on).days > MAX_DAYS:
        raise InvalidInput(f"an agreement runs at most {MAX_DAYS} days; renew it instead", field="ends_on")
    _department_exists(conn, consumer, "consumer")
    _department_exists(conn, provider, "provider")
    _check_fields(conn, provider, _check_layers(layers), strict=False)
    area_name = None
    if area_code is not None:
        area = conn.execute(
            text("SELECT full_name, geom IS NOT NULL AS has_geom FROM addr.division WHERE code = :c"),
            {"c": area_code},
        ).first()
        if area is None or not area.has_geom:
            raise InvalidInput(f"no division with code {area_code!r} and a boundary", field="area_code")
        area_name = area.full_name
    new_id = conn.execute(
        text(
            """
            INSERT INTO gs.agreement (consumer_code, provider_code, purpose, update_frequency,
                                      starts_on, ends_on, area_code, area_name, area, requested_by)
            VALUES (:consumer, :provider, :purpose, :freq, :starts, :ends, :area_code, :area_name,
                    (SELECT ST_Multi(geom) FROM addr.division WHERE code = :area_code), :by)
            RETURNING id
            """
        ),
        {
            "consumer": consumer,
            "provider": provider,
            "purpose": purpose.strip(),
            "freq": update_frequency,
            "starts": starts_on,
            "ends": ends_on,
            "area_code": area_code,
            "area_name": area_name,
            "by": _actor(who),
        },
    ).scalar_one()
    conn.execute(
        text("INSERT INTO gs.agreement_layer (agreement_id, layer_id, fields) VALUES (:a, :l, :f)"),
        [{"a": new_id, "l": g.layer, "f": g.fields} for g in layers],
    )
    audit.record_change(
        conn, who, "agreement.file", f"agreement:{new_id}", {"consumer": consumer, "provider": provider}
    )
    return get(conn, who, new_id)


def _readable_by(who: Principal) -> tuple[str, dict[str, Any]]:
    if who.is_platform_admin:
        return "true", {}
    return "(a.consumer_code = :dept OR a.provider_code = :dept)", {"dept": who.department}


def get(conn: Connection, who: Principal, agreement_id: int) -> Agreement:
    where, params = _readable_by(who)
    row = conn.execute(
        text(f"{_SELECT} WHERE a.id = :id AND {where}"), {"id": agreement_id, **params}
    ).first()
    if row is None:
        raise NotFound(f"agreement {agreement_id} does not exist", field="agreement_id")
    return _from_row(row)


def list_for(
    conn: Connection,
    who: Principal,
    *,
    role: str | None = None,
    status: str | None = None,
    layer: str | None = None,
) -> list[Agreement]:
    """Agreements ``who`` is party to (platform admins: all filings); ``role`` consumer|provider."""
    where, params = _readable_by(who)
    clauses = [where]
    if role == "consumer":
        clauses.append("a.consumer_code = :me")
    elif role == "provider":
        clauses.append("a.provider_code = :me")
    elif role is not None:
        raise InvalidInput("role is consumer or provider", field="role")
    if status is not None:
        if status not in ("requested", "approved", "rejected", "revoked", "expired"):
            raise InvalidInput("status is requested, approved, rejected, revoked or expired", field="status")
        clauses.append(
            "CASE WHEN a.status = 'approved' AND a.ends_on < current_date THEN 'expired' ELSE a.status END"
            " = :status"
        )
    if layer is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM gs.agreement_layer al"
            " WHERE al.agreement_id = a.id AND al.layer_id = :layer)"
        )
    rows = conn.execute(
        text(f"{_SELECT} WHERE {' AND '.join(clauses)} ORDER BY a.requested_at DESC, a.id DESC"),
        {**params, "me": who.department, "status": status, "layer": layer},
    )
    return [_from_row(r) for r in rows]


def _locked(conn: Connection, who: Principal, agreement_id: int) -> Agreement:
    get(conn, who, agreement_id)  # "not found" for non-parties before taking any lock
    conn.execute(text("SELECT 1 FROM gs.agreement WHERE id = :id FOR UPDATE"), {"id": agreement_id})
    return get(conn, who, agreement_id)  # re-read under the lock


def decide(
    conn: Connection, who: Principal, agreement_id: int, *, approve: bool, note: str | None = None
) -> Agreement:
    """The provider's decision on a pending request."""
    agreement = _locked(conn, who, agreement_id)
    if not who.is_platform_admin and not (who.is_member_of(agreement.provider) and who.has_role("publisher")):
        raise Forbidden("only the provider department's publishers or administrators decide this request")
    if agreement.status != "requested":
        raise Conflict(f"agreement {agreement_id} is already {agreement.status}", field="agreement_id")
    if approve:
        _check_fields(conn, agreement.provider, agreement.layers, strict=True)
    conn.execute(
        text(
            "UPDATE gs.agreement SET status = :status, decided_by = :by, decided_at = now(),"
            " decision_note = :note WHERE id = :id"
        ),
        {
            "status": "approved" if approve else "rejected",
            "by": _actor(who),
            "note": note,
            "id": agreement_id,
        },
    )
    action = "agreement.approve" if approve else "agreement.reject"
    audit.record_change(conn, who, action, f"agreement:{agreement_id}", {"note": note})
    return get(conn, who, agreement_id)


def revoke(conn: Connection, who: Principal, agreement_id: int, note: str | None = None) -> Agreement:
    """End an agreement (or withdraw a pending request) before its period is over."""
    agreement = _locked(conn, who, agreement_id)
    party = who.has_role("publisher") and (
        who.is_member_of(agreement.provider) or who.is_member_of(agreement.consumer)
    )
    if not (who.is_platform_admin or party):
        raise Forbidden("only publishers or administrators of either party revoke an agreement")
    if agreement.status not in ("requested", "approved"):
        raise Conflict(f"agreement {agreement_id} is already {agreement.status}", field="agreement_id")
    conn.execute(
        text(
            "UPDATE gs.agreement SET status = 'revoked', revoked_by = :by, revoked_at = now(),"
            " decision_note = COALESCE(:note, decision_note) WHERE id = :id"
        ),
        {"by": _actor(who), "note": note, "id": agreement_id},
    )
    audit.record_change(conn, who, "agreement.revoke", f"agreement:{agreement_id}", {"note": note})
    return get(conn, who, agreement_id)
