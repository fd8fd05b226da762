"""``GET /catalog``: find layers by keyword (Chinese included), department, theme and class.

Only layers the caller may read are searched, listed and counted.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query
from sqlalchemy import Connection
from starlette.responses import Response

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.api.auth import principal
from geoshare.api.deps import base_url, get_conn
from layers import catalog
from layers.imagery import imagery_catalog_records
from layers.model import LayerInfo

router = APIRouter(tags=["catalog"])


def _entry(base: str, layer: LayerInfo) -> dict[str, object]:
    href = f"{base}/collections/{layer.id}"
    return {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "keywords": list(layer.keywords),
        "department": layer.department_code,
        "theme": layer.theme,
        "class": layer.sharing_class,
        "updateFrequency": layer.update_frequency,
        "featureCount": layer.feature_count,
        "geometryType": layer.geometry_type,
        "extent": layer.extent,
        "version": layer.current_version,
        "updated": layer.updated_at.isoformat(),
        "links": [
            {"href": href, "rel": "collection", "type": "application/json"},
            {"href": f"{href}/items", "rel": "items", "type": "application/geo+json"},
        ],
    }


def _imagery(
    conn: Connection,
    who: Principal,
    base: str,
    q: str | None,
    department: str | None,
    theme: str | None,
    sharing_class: str | None,
) -> list[dict[str, object]]:
    """Images matching the same filters (a handful per city: filtered here, not in SQL)."""
    words = (q or "").split()
    found = []
    for record in imagery_catalog_records(conn, policy.visibility(who), base):
        text = f"{record['title']} {record['description']} {record['source'] or ''}"
        if words and not all(w.lower() in text.lower() for w in words):
            continue
        if department and record["department"] != department:
            continue
        if theme and theme != "imagery":
            continue
        if sharing_class and record["class"] != sharing_class:
            continue
        found.append(record)
    return found


@router.get("/catalog", summary="Search the catalog: layers and imagery")
def search_catalog(
    q: Annotated[str | None, Query(description="words in title, description or keywords")] = None,
    department: Annotated[str | None, Query(description="department code or name")] = None,
    theme: str | None = None,
    sharing_class: Annotated[
        str | None, Query(alias="class", description="public, shared or restricted")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    key: Annotated[str | None, Query(description="API key (or the X-API-Key header)")] = None,
    who: Principal = Depends(principal),
    conn: Connection = Depends(get_conn),
    base: str = Depends(base_url),
) -> Response:
    page = catalog.search(
        conn,
        q,
        department=department,
        theme=theme,
        sharing_class=sharing_class,
        limit=limit,
        offset=offset,
        visibility=policy.visibility(who),
    )
    body = {
        "layers": [_entry(base, layer) for layer in page.layers],
        "numberMatched": page.number_matched,
        "imagery": _imagery(conn, who, base, q, department, theme, sharing_class),
    }
    return Response(orjson.dumps(body), media_type="application/json")
