"""Publishing over HTTP: ``POST /layers``, version history, the change feed, and ``DELETE /layers/{id}``.

``POST /layers?dry_run=true`` reads and validates the upload exactly as a publish would (geocoding an
address CSV included) and answers with what would be published, writing nothing: publishers see
every problem (feature or line number and reason) before anything goes live
(``geoshare.services.dry_run``).

Reads follow the sharing policy (a layer the caller may not read is "not found"; restricted fields
are stripped from the change feed). Writes need a key: a publisher (or department admin) of the
owning department, or a platform admin. Publishing under another department's name is 403 (the
caller named it); publishing over an id another department owns is 403 too (ids are unique, so an
id collision cannot be hidden); deleting a layer the caller cannot even read is 404 like an unknown
id, one it can read but not manage is 403. The CLI stays trusted and needs no key.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Connection, Engine, text
from starlette.concurrency import run_in_threadpool

from geocode.model import CONFIDENT
from geoshare.access import audit, policy
from geoshare.access.identity import Forbidden, Principal
from geoshare.api.auth import principal, require_authenticated
from geoshare.api.deps import base_url
from geoshare.api.problems import Problem
from geoshare.services import address_layers, geocoding, publishing, tile_pyramids
from geoshare.services.dry_run import dry_run_addresses, dry_run_file
from geoshare.services.layer_cache import layer_cache
from layers.errors import NotFound
from layers.ingest.limits import too_large
from layers.model import LayerMetadata
from layers.registry import get_layer, layer_owner

router = APIRouter(tags=["layers"])


def actor_of(who: Principal, request: Request) -> str:
    """Who publishes, as the version history records it: the key that did it (never a header a
    client may fill with any name), with the person the client names beside it."""
    person = (request.headers.get("x-geoshare-user") or "").strip()[:100]
    return f"key:{who.key_prefix}" + (f" ({person})" if person else "")

CHUNK = 1024 * 1024
_TEXT_FIELDS = (
    "title", "department", "description", "contact", "theme", "update_frequency", "source", "licence",
    "key_field", "time_field", "kind",
)  # fmt: skip
_OPTIONS = ("encoding", "source_crs", "lon_column", "lat_column", "source_layer", "where")
_KNOWN = {"id", "class", "sharing_class", "keywords", "restricted_fields", *_TEXT_FIELDS, *_OPTIONS}


def _string_list(value: Any, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise Problem(422, f"{field} must be a list of strings", field=f"metadata.{field}")


def parse_metadata(raw: str) -> tuple[str, LayerMetadata, dict[str, str | None]]:
    """The ``metadata`` form field: a JSON object; unknown keys are refused so typos do not go unnoticed."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(422, f"metadata is not valid JSON: {exc}", field="metadata") from exc
    if not isinstance(data, dict):
        raise Problem(422, "metadata must be a JSON object", field="metadata")
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise Problem(422, f"unknown metadata field {unknown[0]!r}", field=f"metadata.{unknown[0]}")
    for key in ("id", "title", "department"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise Problem(422, f"metadata.{key} is required", field=f"metadata.{key}")
    for key in (*_TEXT_FIELDS, *_OPTIONS, "class", "sharing_class"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise Problem(422, f"metadata.{key} must be a string", field=f"metadata.{key}")
    metadata = LayerMetadata(
        title=data["title"],
        department=data["department"],
        description=data.get("description") or "",
        contact=data.get("contact"),
        keywords=_string_list(data.get("keywords"), "keywords"),
        theme=data.get("theme"),
        sharing_class=data.get("class") or data.get("sharing_class") or "shared",
        restricted_fields=_string_list(data.get("restricted_fields"), "restricted_fields"),
        update_frequency=data.get("update_frequency"),
        source=data.get("source"),
        licence=data.get("licence"),
        key_field=data.get("key_field") or None,
        time_field=data.get("time_field") or None,
        kind=data.get("kind") or "thematic",
    )
    return data["id"], metadata, {k: data.get(k) for k in _OPTIONS}


def _spool(upload: UploadFile, folder: Path, limit: int) -> Path:
    """Copy the upload to disk under a safe name that keeps its extension (format sniffing uses it)."""
    suffix = "".join(Path(upload.filename or "").suffixes[-1:]).lower()
    suffix = suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""
    target = folder / f"upload{suffix}"
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise Problem(413, f"the file is larger than the {limit} byte limit", field="file")
            out.write(chunk)
    return target


def _links(base: str, layer_id: str) -> list[dict[str, str]]:
    return [
        {"href": f"{base}/collections/{layer_id}", "rel": "collection", "type": "application/json"},
        {"href": f"{base}/layers/{layer_id}/versions", "rel": "version-history", "type": "application/json"},
        {"href": f"{base}/layers/{layer_id}/changes?since=0", "rel": "changes", "type": "application/json"},
    ]


def _base_layer(conn: Connection, layer_id: str) -> bool:
    return bool(
        conn.execute(text("SELECT kind = 'base' FROM gs.layer WHERE id = :id"), {"id": layer_id}).scalar()
    )


def _check_publish(engine: Engine, who: Principal, layer_id: str, department: str, kind: str) -> None:
    """403 unless ``who`` may publish for ``department`` and for the id's current owner, if any;
    base layers (the IT office's base map) only by platform admins."""
    if kind == "base" and not who.is_platform_admin:
        raise Forbidden("only platform administrators publish base layers", field="metadata.kind")
    if not who.can_publish_for(department):
        raise Forbidden(
            f"only publishers of department {department!r} or platform administrators may publish its layers",
            field="metadata.department",
        )
    with engine.connect() as conn:
        owner = layer_owner(conn, layer_id)
    if owner is not None and not who.can_publish_for(owner):
        raise Forbidden(f"layer id {layer_id!r} belongs to another department", field="metadata.id")
    if owner is not None and not who.is_platform_admin:
        with engine.connect() as conn:
            if _base_layer(conn, layer_id):
                raise Forbidden(
                    f"layer {layer_id!r} is a base layer: platform administrators only", field="metadata.id"
                )


def _check_delete(engine: Engine, who: Principal, layer_id: str) -> None:
    """404 (as for an unknown id) when ``who`` cannot read the layer, 403 when it can but may not delete."""
    with engine.connect() as conn:
        owner = layer_owner(conn, layer_id)
        base = owner is not None and _base_layer(conn, layer_id)
        if owner is None or (who.can_publish_for(owner) and (who.is_platform_admin or not base)):
            return  # unknown ids get the engine's own 404
        try:
            get_layer(conn, layer_id, policy.visibility(who))
        except NotFound:
            raise NotFound(f"layer {layer_id!r} does not exist", field="id") from None
    if base:
        raise Forbidden(f"layer {layer_id!r} is a base layer: platform administrators only", field="id")
    raise Forbidden(
        f"only publishers of department {owner!r} or platform administrators may delete this layer",
        field="id",
    )


def _check_owner_view(engine: Engine, who: Principal, layer_id: str) -> None:
    """Publisher diagnostics (unmatched source records) are for the owner and platform admins only."""
    with engine.connect() as conn:
        try:
            layer = get_layer(conn, layer_id, policy.visibility(who))
        except NotFound:
            layer = None
    if layer is None or not policy.is_owner(who, layer):
        raise NotFound(f"layer {layer_id!r} does not exist", field="id")


def _dry_run_json(report: dict[str, Any]) -> Response:
    return Response(orjson.dumps(report, default=_plain), media_type="application/json")


def _plain(value: Any) -> Any:
    """numpy/pandas scalars in source reports."""
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


@router.post("/layers", status_code=201, summary="Publish a layer (a new version if it exists)")
async def publish_layer(
    request: Request,
    file: UploadFile = File(..., description="GeoJSON, zipped Shapefile, GeoPackage or CSV with lon/lat"),
    metadata: str = Form(..., description="JSON: id, title, department, class, description, keywords, …"),
    encoding: str | None = Form(None),
    source_crs: str | None = Form(None),
    lon_column: str | None = Form(None),
    lat_column: str | None = Form(None),
    source_layer: str | None = Form(None, description="layer of a multi-layer source (e.g. OSM lines)"),
    where: str | None = Form(None, description="OGR SQL attribute filter, e.g. highway IS NOT NULL"),
    address_column: str | None = Form(
        None, description="CSV of records without coordinates: geocode this column and publish the matches"
    ),
    min_score: float = Form(CONFIDENT, ge=0.0, le=1.0, description="lowest match score published"),
    dry_run: bool = Query(
        False,
        description="validate and report what would be published (feature count, fields, CRS, "
        "repairs, match rate), writing nothing; 200 with the report, or the problem a publish would raise",
    ),
    who: Principal = Depends(require_authenticated),
) -> Response:
    layer_id, meta, options = parse_metadata(metadata)
    await run_in_threadpool(
        _check_publish, request.app.state.engine, who, layer_id, meta.department, meta.kind
    )
    given = {
        "encoding": encoding,
        "source_crs": source_crs,
        "lon_column": lon_column,
        "lat_column": lat_column,
        "source_layer": source_layer,
        "where": where,
    }
    options.update({k: v for k, v in given.items() if v})
    settings = request.app.state.settings
    limits = publishing.upload_limits(settings)
    geocoded: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="geoshare-upload-") as folder:
        path = await run_in_threadpool(_spool, file, Path(folder), settings.upload_max_bytes)
        source_name = Path(file.filename or "upload").name
        if address_column and path.stat().st_size > limits.max_bytes:  # read whole into memory
            raise too_large(source_name, "the data", limits)
        if dry_run and address_column:
            report = await run_in_threadpool(
                dry_run_addresses,
                request.app.state.engine,
                geocoding.holder(request.app.state).get(),
                layer_id,
                path,
                meta,
                source_name,
                address_column,
                encoding=options.get("encoding"),
                min_score=min_score,
                limits=limits,
            )
            return _dry_run_json(report)
        if dry_run:
            report = await run_in_threadpool(
                dry_run_file, request.app.state.engine, layer_id, path, meta, source_name, limits, **options
            )
            return _dry_run_json(report)
        if address_column:
            result, report = await run_in_threadpool(
                address_layers.publish_address_file,
                request.app.state.engine,
                settings,
                layer_id,
                path,
                meta,
                address_column,
                encoding=options.get("encoding"),
                min_score=min_score,
                index=geocoding.holder(request.app.state).get(),
                actor=actor_of(who, request),
                source_name=Path(file.filename or "upload").name,
            )
            geocoded = address_layers.summary(
                report, f"{base_url(request)}/layers/{layer_id}/versions/{result.version}"
            )
        else:
            result = await run_in_threadpool(
                publishing.publish,
                request.app.state.engine,
                settings,
                layer_id,
                path,
                meta,
                actor=actor_of(who, request),
                source_name=source_name,
                limits=limits,
                **options,
            )
    layer_cache(request.app.state).invalidate(result.layer_id)  # this worker sees its own publish at once
    rendering = tile_pyramids.build_in_background(
        request.app.state.engine, settings, result.layer_id, result.feature_count
    )
    detail = {"version": result.version, "features": result.feature_count}
    audit.record_change(request.app.state.engine, who, "layer.publish", f"layer:{result.layer_id}", detail)
    base = base_url(request)
    body = {
        "id": result.layer_id,
        "version": result.version,
        "feature_count": result.feature_count,
        "added": result.added,
        "removed": result.removed,
        "modified": result.modified,
        "repaired": result.repaired,
        "warnings": result.warnings,  # what the data made doubtful (integers kept as text, a CRS …)
        # the densest tiles are being pre-rendered in the background; until then they are cut on request
        "dense_tiles": "rendering" if rendering else "none",
        "links": _links(base, result.layer_id),
    }
    if geocoded is not None:
        body["geocoding"] = geocoded
    return JSONResponse(body, status_code=201, headers={"Location": f"{base}/collections/{result.layer_id}"})


@router.get("/layers/{layer_id}/versions", summary="Version history of a layer")
def layer_versions(request: Request, layer_id: str, who: Principal = Depends(principal)) -> Response:
    history = publishing.versions(request.app.state.engine, layer_id, who)
    base = f"{base_url(request)}/layers/{layer_id}/versions"
    versions = []
    for v in history:
        item = v.as_json()
        if "geocoding" in item["report"]:
            item["report"] = {
                **item["report"],
                "geocoding": address_layers.summary(v.report, f"{base}/{v.version}"),
            }
        versions.append(item)
    return Response(orjson.dumps({"layer": layer_id, "versions": versions}), media_type="application/json")


@router.get(
    "/layers/{layer_id}/versions/{version}/unmatched",
    summary="Records of a geocoded version that were not published (CSV, or JSON with f=json)",
)
def layer_version_unmatched(
    request: Request,
    layer_id: str,
    version: int,
    f: str = Query("csv", pattern="^(csv|json)$"),
    who: Principal = Depends(principal),
) -> Response:
    _check_owner_view(request.app.state.engine, who, layer_id)
    rows = address_layers.unmatched_rows(request.app.state.engine, layer_id, version)
    if f == "json":
        return Response(
            orjson.dumps({"layer": layer_id, "version": version, "rows": rows}), media_type="application/json"
        )
    return Response(
        address_layers.rows_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{layer_id}-v{version}-unmatched.csv"'},
    )


@router.get("/layers/{layer_id}/changes", summary="Features added, modified or removed since version N")
def layer_changes(
    request: Request,
    layer_id: str,
    since: int = Query(..., description="the version the client last synced; 0 for everything"),
    limit: int = Query(1000, ge=1, description="changes per page"),
    after: str | None = Query(None, description="cursor from the previous page's next link"),
    who: Principal = Depends(principal),
) -> Response:
    limit = min(limit, request.app.state.settings.items_max_limit)
    page = publishing.changes(request.app.state.engine, layer_id, since, limit, after, who=who)
    base = base_url(request)
    links = [{"href": f"{base}/layers/{layer_id}/versions", "rel": "version-history"}]
    if page.next_after is not None:
        query = str(request.url.include_query_params(after=page.next_after).query)
        links.append({"href": f"{base}/layers/{layer_id}/changes?{query}", "rel": "next"})
    body = {
        "layer": layer_id,
        "since": page.since,
        "current_version": page.current_version,
        "changes": [{"id": c.id, "change": c.change, "feature": c.feature} for c in page.changes],
        "links": links,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.delete("/layers/{layer_id}", status_code=204, summary="Delete a layer with all its versions")
def delete_layer(
    request: Request, layer_id: str, who: Principal = Depends(require_authenticated)
) -> Response:
    _check_delete(request.app.state.engine, who, layer_id)
    publishing.delete(request.app.state.engine, layer_id)
    layer_cache(request.app.state).invalidate(layer_id)
    audit.record_change(request.app.state.engine, who, "layer.delete", f"layer:{layer_id}")
    return Response(status_code=204)
