"""Usage statistics (``/usage``, JSON or CSV) from the daily roll-up, and the raw audit log for
platform admins (``/usage/audit``).

Who sees what: a platform admin everything; any key of department D the calls made by D and the
calls made on D's layers (so ``group=department&provider=D`` lists the top consumers of D's layers);
anonymous callers nothing (401). The roll-up is kept by the audit writer, so a report is a read of
a few hundred rows however long the log is; figures lag the calls by about a second.
"""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Request
from sqlalchemy import Connection, text
from starlette.datastructures import QueryParams
from starlette.responses import Response

from geoshare.access import policy
from geoshare.access.audit import AuditConfig
from geoshare.access.identity import Principal
from geoshare.api import openapi
from geoshare.api.auth import KEY_PARAM, require_authenticated, require_platform_admin
from geoshare.api.deps import base_url, get_conn
from geoshare.api.ogc_params import check_params
from geoshare.api.responses import json_response
from layers.errors import BadParameter

router = APIRouter(tags=["usage and audit"])

GROUPS = {
    "day": "day",
    "department": "department_code",
    "layer": "layer_id",
    "provider": "layer_department",
    "kind": "endpoint_kind",
}
METRICS = ("calls", "items", "errors", "limited", "bytes", "avg_ms")
ANONYMOUS = "anonymous"  # the department filter value for calls without a key
MAX_DAYS = 3660
USAGE_PARAMS = frozenset({"from", "to", "department", "provider", "layer", "kind", "group", "f", KEY_PARAM})
AUDIT_PARAMS = frozenset(
    {"from", "to", "department", "layer", "key_prefix", "kind", "status", "limit", "cursor", "f", KEY_PARAM}
)
AUDIT_COLUMNS = (
    "id", "ts", "kind", "method", "endpoint", "endpoint_kind", "layer_id", "layer_department",
    "department_code", "key_prefix", "role", "actor", "client_ip", "status", "duration_ms", "bytes",
    "items", "requests", "action", "target", "detail",
)  # fmt: skip
CSV_MEDIA = "text/csv; charset=utf-8"


# -- parameters ------------------------------------------------------------------------------------------


def _one(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise BadParameter(f"parameter {name!r} given {len(values)} times", field=name)
    value = values[0].strip() if values else None
    return value or None


def _date(params: QueryParams, name: str) -> date | None:
    value = _one(params, name)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadParameter(f"{name} must be a date YYYY-MM-DD, got {value!r}", field=name) from None


def _period(params: QueryParams, zone: str) -> tuple[date, date]:
    """``from``..``to`` inclusive; by default the last 30 days up to today (local)."""
    today = datetime.now(ZoneInfo(zone)).date()
    end = _date(params, "to") or today
    start = _date(params, "from") or end - timedelta(days=29)
    if start > end:
        raise BadParameter(f"from ({start}) is after to ({end})", field="from")
    if (end - start).days > MAX_DAYS:
        raise BadParameter(f"the period may span at most {MAX_DAYS} days", field="from")
    return start, end


def _format(params: QueryParams) -> str:
    f = (_one(params, "f") or "json").lower()
    if f not in ("json", "csv"):
        raise BadParameter(f"f must be json or csv, got {f!r}", field="f")
    return f


def _groups(params: QueryParams) -> list[str]:
    raw = _one(params, "group") or "day"
    names = [g.strip() for g in raw.split(",") if g.strip()]
    if not names:
        raise BadParameter("group needs at least one of " + ", ".join(GROUPS), field="group")
    for g in names:
        if g not in GROUPS:
            raise BadParameter(f"group must be among {', '.join(GROUPS)}; got {g!r}", field="group")
    if len(set(names)) != len(names):
        raise BadParameter("group names a column twice", field="group")
    return names


def _int(params: QueryParams, name: str, default: int | None, low: int, high: int) -> int | None:
    value = _one(params, name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadParameter(f"{name} must be an integer, got {value!r}", field=name) from None
    if not low <= number <= high:
        raise BadParameter(f"{name} must be between {low} and {high}, got {number}", field=name)
    return number


def _zone(request: Request) -> str:
    return AuditConfig.from_settings(request.app.state.settings).timezone


# -- output ----------------------------------------------------------------------------------------------


def _csv(columns: list[str], rows: list[dict[str, Any]], file_name: str) -> Response:
    out = io.StringIO()
    out.write("\ufeff")  # Excel opens UTF-8 CSV correctly only with a BOM
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(
            [
                ""
                if row[c] is None
                else (orjson.dumps(row[c]).decode() if isinstance(row[c], dict) else row[c])
                for c in columns
            ]
        )
    return Response(
        out.getvalue().encode(),
        media_type=CSV_MEDIA,
        headers={"Content-Disposition": f'attachment; filename="{file_name}"'},
    )


# -- /usage -----------------------------------------------------------------------------------------------


def usage_rows(
    conn: Connection,
    who: Principal,
    start: date,
    end: date,
    groups: list[str],
    *,
    department: str | None = None,
    provider: str | None = None,
    layer: str | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """The roll-up summed by ``groups`` within what ``who`` may see (one query). A layer ``who`` may
    not read is named in no row, not even among its own calls (a probe of a restricted layer's id
    must not learn that it exists): its calls count as calls on no layer, like an unknown id's."""
    where = ["day BETWEEN :start AND :end"]
    visible, bind = policy.visibility(who).predicate("l")
    bind.update({"start": start, "end": end})
    source = "gs.usage_daily"
    if not who.is_platform_admin:
        where.append("(department_code = :own OR layer_department = :own)")
        bind["own"] = who.department
        seen = f"(u.layer_department = :own OR {visible})"
        source = f"""(
            SELECT u.day, u.department_code, u.endpoint_kind, u.calls, u.items, u.errors, u.limited,
                   u.bytes, u.duration_ms, CASE WHEN {seen} THEN u.layer_id END AS layer_id,
                   CASE WHEN {seen} THEN u.layer_department END AS layer_department
            FROM gs.usage_daily u LEFT JOIN gs.layer l ON l.id = u.layer_id
            WHERE u.day BETWEEN :start AND :end
        ) AS usage_daily"""
    if department == ANONYMOUS:
        where.append("department_code IS NULL")
    elif department is not None:
        where.append("department_code = :department")
        bind["department"] = department
    for column, value in (("layer_department", provider), ("layer_id", layer), ("endpoint_kind", kind)):
        if value is not None:
            where.append(f"{column} = :{column}")
            bind[column] = value
    keys = [f"{GROUPS[g]} AS {g}" for g in groups]
    sql = f"""
        SELECT {", ".join(keys)}{"," if keys else ""}
               sum(calls)::bigint AS calls, sum(items)::bigint AS items, sum(errors)::bigint AS errors,
               sum(limited)::bigint AS limited, sum(bytes)::bigint AS bytes,
               round((sum(duration_ms) / nullif(sum(calls), 0))::numeric, 2)::float8 AS avg_ms
        FROM {source}
        WHERE {" AND ".join(where)}
        {"GROUP BY " + ", ".join(str(i) for i in range(1, len(groups) + 1)) if groups else ""}
        HAVING sum(calls) > 0
        ORDER BY {"day, " if "day" in groups else ""}calls DESC
            {"".join(f", {g} NULLS FIRST" for g in groups if g != "day")}
    """
    rows = [dict(r) for r in conn.execute(text(sql), bind).mappings()]
    for r in rows:
        if "day" in r:
            r["day"] = r["day"].isoformat()
    return rows


def _totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    calls = sum(r["calls"] for r in rows)
    totals: dict[str, Any] = {m: sum(r[m] for r in rows) for m in METRICS if m != "avg_ms"}
    totals["avg_ms"] = round(sum((r["avg_ms"] or 0) * r["calls"] for r in rows) / calls, 2) if calls else None
    return totals


@router.get(
    "/usage",
    summary="Usage statistics per day, department, layer (JSON or CSV)",
    description="Parameters: from, to (YYYY-MM-DD, inclusive; default the last 30 days), department "
    "(the calling department; 'anonymous' for calls without a key), provider (the layer owner), layer, "
    "kind (features, tiles, export, geocode, catalog, …), group (comma-separated among day, department, "
    "layer, provider, kind; default day), f (json|csv). A department's key sees the calls its "
    "department made and the calls made on its layers; platform admins see everything.",
    openapi_extra=openapi.query_parameters(USAGE_PARAMS),
)
def usage(
    request: Request,
    who: Principal = Depends(require_authenticated),
    conn: Connection = Depends(get_conn),
) -> Response:
    params = request.query_params
    check_params(params, USAGE_PARAMS)
    f = _format(params)
    start, end = _period(params, _zone(request))
    groups = _groups(params)
    rows = usage_rows(
        conn,
        who,
        start,
        end,
        groups,
        department=_one(params, "department"),
        provider=_one(params, "provider"),
        layer=_one(params, "layer"),
        kind=_one(params, "kind"),
    )
    request.state.audit_count = len(rows)
    if f == "csv":
        return _csv([*groups, *METRICS], rows, f"usage-{start}-{end}.csv")
    return json_response(
        {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "scope": "all" if who.is_platform_admin else who.department,
            "group": groups,
            "rows": rows,
            "totals": _totals(rows),
        }
    )


# -- /usage/audit -----------------------------------------------------------------------------------------


@router.get(
    "/usage/audit",
    summary="The raw audit log, newest first (platform admins)",
    description="Parameters: from, to (YYYY-MM-DD, local days), department, layer, key_prefix, kind "
    "(read|write|change), status, limit (1–1000, default 100), cursor (from the next link), f (json|csv).",
    openapi_extra=openapi.query_parameters(AUDIT_PARAMS),
)
def audit_log(
    request: Request,
    who: Principal = Depends(require_platform_admin),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    params = request.query_params
    check_params(params, AUDIT_PARAMS)
    f = _format(params)
    limit = _int(params, "limit", 100, 1, 1000) or 100
    cursor = _int(params, "cursor", None, 1, 2**63 - 1)
    where = ["true"]
    bind: dict[str, Any] = {"limit": limit + 1, "tz": _zone(request)}
    if cursor is not None:
        where.append("id < :cursor")
        bind["cursor"] = cursor
    start, end = _date(params, "from"), _date(params, "to")
    if start is not None:
        where.append("ts >= CAST(:start AS date)::timestamp AT TIME ZONE :tz")
        bind["start"] = start
    if end is not None:
        where.append("ts < (CAST(:end AS date) + 1)::timestamp AT TIME ZONE :tz")
        bind["end"] = end
    department = _one(params, "department")
    if department == ANONYMOUS:
        where.append("department_code IS NULL")
    elif department is not None:
        where.append("department_code = :department")
        bind["department"] = department
    for column, name in (("layer_id", "layer"), ("key_prefix", "key_prefix"), ("kind", "kind")):
        value = _one(params, name)
        if value is not None:
            where.append(f"{column} = :{column}")
            bind[column] = value
    status = _int(params, "status", None, 100, 599)
    if status is not None:
        where.append("status = :status")
        bind["status"] = status
    sql = f"""
        SELECT {", ".join(AUDIT_COLUMNS)}
        FROM gs.audit_log WHERE {" AND ".join(where)}
        ORDER BY id DESC LIMIT :limit
    """
    rows = [dict(r) for r in conn.execute(text(sql), bind).mappings()]
    more = len(rows) > limit
    rows = rows[:limit]
    for r in rows:
        r["ts"] = r["ts"].isoformat()
        r["client_ip"] = str(r["client_ip"]) if r["client_ip"] is not None else None
    request.state.audit_count = len(rows)
    if f == "csv":
        return _csv(list(AUDIT_COLUMNS), rows, "audit.csv")
    next_link = None
    if more:
        kept = [(k, v) for k, v in params.multi_items() if k not in ("cursor", KEY_PARAM)]
        next_link = f"{base}/usage/audit?{urlencode([*kept, ('cursor', rows[-1]['id'])])}"
    return json_response({"rows": rows, "next": next_link})
