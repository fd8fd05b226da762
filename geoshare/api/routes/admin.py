"""The admin API for identities: departments and users (platform admins), API keys (platform admins,
and department admins for their own department), and ``/whoami`` for any caller to check a key.

Department admins never learn about other departments' keys: revoking one answers 404, as for a key
that does not exist.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from starlette.responses import Response

from geoshare.access import audit, store
from geoshare.access.identity import Forbidden, Principal
from geoshare.api.auth import (
    principal,
    require_authenticated,
    require_department_admin,
    require_platform_admin,
)
from geoshare.api.deps import get_conn
from geoshare.api.responses import json_response
from geoshare.services.layer_cache import layer_cache

router = APIRouter(tags=["access"])


class DepartmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(description="1–32 letters, digits, '_' or '-'", examples=["scjgj"])
    name: str = Field(examples=["北京市市场监督管理局"])
    contact: str | None = None


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: str
    name: str
    role: str = Field("consumer", description="platform_admin | department_admin | publisher | consumer")


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: str | None = Field(None, description="default: the caller's department")
    role: str = Field("consumer", description="platform_admin | department_admin | publisher | consumer")
    label: str | None = None
    expires: str | None = Field(
        None, description="90d, 12h, 2027-01-01 or an ISO date-time", examples=["90d"]
    )
    allowed_referrers: list[str] = Field(
        default_factory=list,
        description="browser key: origins allowed to use it, e.g. https://*.example.gov.cn",
    )
    allowed_ips: list[str] = Field(default_factory=list, description="addresses or CIDR ranges")
    user_id: int | None = None


@router.get("/whoami", summary="The identity behind the request's API key (anonymous without one)")
def whoami(who: Principal = Depends(principal)) -> Response:
    doc: dict[str, Any] = {"anonymous": who.is_anonymous, **who.__dict__}
    doc.pop("cacheable_until", None)  # the worker's business
    doc["grants"] = {
        layer: {"fields": sorted(g.fields), "area_limited": g.area is not None, "agreements": g.agreements}
        for layer, g in who.grants.items()
    }
    return json_response(doc)


@router.post("/admin/departments", status_code=201, summary="Register a department")
def create_department(
    body: DepartmentIn,
    conn: Connection = Depends(get_conn),
    who: Principal = Depends(require_platform_admin),
) -> Response:
    created = store.create_department(conn, body.code, body.name, body.contact)
    audit.record_change(conn, who, "department.create", f"department:{body.code}", {"name": body.name})
    return json_response(created, 201)


@router.get("/departments", summary="The city's departments: codes and names (public)")
def public_departments(conn: Connection = Depends(get_conn)) -> Response:
    """Layers, agreements and usage name departments by code; pages and clients show the names.
    Which departments exist is public (contacts and keys are not)."""
    doc = {"departments": [{"code": d.code, "name": d.name} for d in store.list_departments(conn)]}
    return json_response(doc, 200, {"Cache-Control": "public, max-age=300"})


@router.get("/admin/departments", summary="All departments")
def list_departments(
    conn: Connection = Depends(get_conn), _: Principal = Depends(require_platform_admin)
) -> Response:
    return json_response({"departments": store.list_departments(conn)})


@router.post("/admin/users", status_code=201, summary="Create a user in a department")
def create_user(
    body: UserIn,
    conn: Connection = Depends(get_conn),
    who: Principal = Depends(require_platform_admin),
) -> Response:
    created = store.create_user(conn, body.department, body.name, body.role)
    audit.record_change(conn, who, "user.create", f"user:{body.department}/{body.name}", {"role": body.role})
    return json_response(created, 201)


@router.get("/admin/users", summary="Users, all or of one department")
def list_users(
    department: str | None = Query(None, description="department code"),
    conn: Connection = Depends(get_conn),
    _: Principal = Depends(require_platform_admin),
) -> Response:
    return json_response({"users": store.list_users(conn, department)})


@router.post(
    "/admin/keys", status_code=201, summary="Issue an API key (the key is shown only in this answer)"
)
def create_key(
    body: KeyIn,
    conn: Connection = Depends(get_conn),
    who: Principal = Depends(require_authenticated),
) -> Response:
    department = body.department or who.department or ""
    require_department_admin(who, department)
    if not who.can_grant(store.check_role(body.role)):
        raise Forbidden(f"a {who.role} cannot issue {body.role} keys", field="role")
    created = store.create_key(
        conn,
        department,
        body.role,
        label=body.label,
        expires=body.expires,
        allowed_referrers=body.allowed_referrers,
        allowed_ips=body.allowed_ips,
        user_id=body.user_id,
        created_by=f"key:{who.key_prefix}",
    )
    audit.record_change(
        conn, who, "key.create", f"key:{created.info.prefix}", {"department": department, "role": body.role}
    )
    doc = {
        "key": created.key,
        "warning": "store this key now: it cannot be shown again",
        **created.info.__dict__,
    }
    return json_response(doc, 201, {"Cache-Control": "no-store"})


@router.get("/admin/keys", summary="API keys by prefix (never their secrets or digests)")
def list_keys(
    department: str | None = Query(None, description="department code (department admins: their own)"),
    conn: Connection = Depends(get_conn),
    who: Principal = Depends(require_authenticated),
) -> Response:
    if not who.is_platform_admin:
        department = department or who.department or ""
        require_department_admin(who, department)
    return json_response({"keys": store.list_keys(conn, department)})


@router.post("/admin/keys/{prefix}/revoke", summary="Revoke a key (takes effect on the next request)")
def revoke_key(
    prefix: str,
    request: Request,
    conn: Connection = Depends(get_conn),
    who: Principal = Depends(require_authenticated),
) -> Response:
    if not who.is_platform_admin:
        require_department_admin(who, who.department or "")
    scope = None if who.is_platform_admin else who.department
    revoked = store.revoke_key(conn, prefix, scope)
    audit.record_change(conn, who, "key.revoke", f"key:{revoked.prefix}")
    layer_cache(request.app.state).forget_principals()  # committed (autocommit): stop reusing it here now
    return json_response(revoked)


@router.delete("/admin/keys/{prefix}", summary="Revoke a key (kept, revoked, for the audit trail)")
def delete_key(
    prefix: str,
    request: Request,
    conn: Connection = Depends(get_conn),
    who: Principal = Depends(require_authenticated),
) -> Response:
    return revoke_key(prefix, request, conn, who)
