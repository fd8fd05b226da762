"""The catalog as OGC API – Records (Part 1, record-core): what exists, who keeps it, how current.

Each published layer and image the reader may see is a record of type ``dataset``; the platform's
shared services (the base map's tiles, WMTS, address matching) are records of type ``service``.
A record is a GeoJSON feature whose geometry is the resource's extent and whose properties carry
the record-core members (``type``, ``title``, ``description``, ``keywords``, ``themes``,
``contacts``, ``created``, ``updated``, ``license``, ``formats``) and GeoShare's own under a
``geoshare:`` prefix: keeper, sharing class, update frequency, currency (as of), CRS. Links go to
the items, tiles and WMTS endpoints. Restricted resources follow the layer rule: a record the reader
may not see is neither listed nor counted, exactly as in ``/catalog``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from geoshare.access import policy
from geoshare.access.identity import Principal
from layers import catalog
from layers.crs import CRS_URIS
from layers.imagery import imagery_catalog_records
from layers.model import LayerInfo

DATASET, SERVICE = "dataset", "service"
TYPES = (DATASET, SERVICE)
THEME_SCHEME = "https://geoshare.example/def/theme"  # the platform's own theme vocabulary
CLASS_NAMES = {"public": "社会公开", "shared": "部门共享", "restricted": "依法专用"}
IT_OFFICE = "the IT office (platform administrators)"
_MVT, _JSON, _GEOJSON = "application/vnd.mapbox-vector-tile", "application/json", "application/geo+json"
_TILESETS = "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector"

#: the platform's own shared services: (id, title, description, keywords, path, link rel, type)
SERVICES: tuple[tuple[str, str, str, list[str], str, str, str], ...] = (
    ("basemap", "政务电子地图（矢量瓦片）", "The government base map as vector tiles and MapLibre styles.",
     ["底图", "basemap", "MVT"], "/basemap", "service", _JSON),
    ("wmts", "政务电子地图 WMTS", "Base map, layers and imagery as OGC WMTS 1.0.0 (Tianditu grids).",
     ["WMTS", "天地图"], "/wmts?SERVICE=WMTS&REQUEST=GetCapabilities", "service", "application/xml"),
    ("geocode", "地址匹配服务", "Forward, reverse and batch address matching against the address database.",
     ["地址匹配", "geocoding", "地址库"], "/geocode", "service", _JSON),
    ("features", "政务图层 OGC API – Features", "Every layer's features, CQL2 filters, CRS.",
     ["OGC API", "Features"], "/collections", "data", _JSON),
)  # fmt: skip


def _polygon(extent: list[float] | None) -> dict[str, Any] | None:
    if not extent or len(extent) < 4:
        return None
    x0, y0, x1, y1 = extent[:4]
    return {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]}


def _time(layer: LayerInfo) -> dict[str, Any] | None:
    if not layer.time_extent:
        return None
    return {"interval": [t.isoformat() if t else ".." for t in layer.time_extent]}


def _keeper(code: str | None, names: dict[str, str]) -> list[dict[str, Any]]:
    return [{"organization": names.get(code, code) if code else IT_OFFICE, "roles": ["custodian"]}]


def layer_record(base: str, layer: LayerInfo, names: dict[str, str]) -> dict[str, Any]:
    href = f"{base}/collections/{layer.id}"
    links = [
        {"href": href, "rel": "collection", "type": _JSON, "title": "the layer (OGC API – Features)"},
        {"href": f"{href}/items", "rel": "items", "type": _GEOJSON, "title": "its features"},
        {"href": f"{href}/tiles", "rel": _TILESETS, "type": _JSON, "title": "its vector tiles"},
        {"href": f"{base}/wmts?SERVICE=WMTS&REQUEST=GetCapabilities", "rel": "alternate",
         "type": "application/xml", "title": "WMTS (layer " + layer.id + ")"},
        {"href": f"{base}/layers/{layer.id}/export?format=gpkg", "rel": "enclosure",
         "type": "application/geopackage+sqlite3", "title": "download as GeoPackage"},
    ]  # fmt: skip
    return _record(
        f"layer.{layer.id}", _polygon(layer.extent), _time(layer), {
            "type": DATASET, "title": layer.title, "description": layer.description,
            "keywords": list(layer.keywords),
            "themes": [{"concepts": [{"id": layer.theme}], "scheme": THEME_SCHEME}] if layer.theme else [],
            "contacts": _keeper(layer.department_code, names),
            "updated": layer.updated_at.isoformat(), "license": layer.licence,
            "formats": [{"name": "GeoJSON"}, {"name": "MVT"}, {"name": "GeoPackage"}, {"name": "CSV"}],
            "geoshare:department": layer.department_code, "geoshare:sharingClass": layer.sharing_class,
            "geoshare:sharingClassName": CLASS_NAMES.get(layer.sharing_class),
            "geoshare:updateFrequency": layer.update_frequency, "geoshare:asOf": layer.updated_at.isoformat(),
            "geoshare:version": layer.current_version, "geoshare:featureCount": layer.feature_count,
            "geoshare:geometryType": layer.geometry_type, "geoshare:crs": CRS_URIS,
            "geoshare:source": layer.source,
        }, links,
    )  # fmt: skip


def image_record(entry: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return _record(
        f"imagery.{entry['id']}", _polygon(entry["extent"]), None, {
            "type": DATASET, "title": entry["title"], "description": entry["description"],
            "keywords": ["遥感影像", "imagery"],
            "themes": [{"concepts": [{"id": "imagery"}], "scheme": THEME_SCHEME}],
            "contacts": _keeper(entry["department"], names), "updated": entry["updated"],
            "license": entry.get("licence"), "formats": [{"name": "PNG"}, {"name": "JPEG"}, {"name": "WebP"}],
            "geoshare:department": entry["department"], "geoshare:sharingClass": entry["class"],
            "geoshare:sharingClassName": CLASS_NAMES.get(str(entry["class"])),
            "geoshare:updateFrequency": None, "geoshare:asOf": entry["updated"],
            "geoshare:source": entry.get("source"),
        }, [{**link, "title": link.get("title", "")} for link in entry["links"]],
    )  # fmt: skip


def service_records(base: str) -> list[dict[str, Any]]:
    out = []
    for sid, title, description, keywords, path, rel, media in SERVICES:
        properties = {
            "type": SERVICE, "title": title, "description": description, "keywords": keywords,
            "themes": [], "contacts": _keeper(None, {}), "geoshare:department": None,
            "geoshare:sharingClass": "public", "geoshare:sharingClassName": CLASS_NAMES["public"],
            "geoshare:updateFrequency": "continual", "geoshare:crs": CRS_URIS,
        }  # fmt: skip
        out.append(_record(f"service.{sid}", None, None, properties, [
            {"href": f"{base}{path}", "rel": rel, "type": media, "title": title}]))  # fmt: skip
    return out


def _record(
    rid: str, geometry: Any, time: Any, properties: dict[str, Any], links: list[dict[str, Any]]
) -> dict[str, Any]:
    return {"type": "Feature", "id": rid, "conformsTo": [RECORD_CORE], "geometry": geometry,
            "time": time, "properties": properties, "links": links}  # fmt: skip


RECORD_CORE = "http://www.opengis.net/spec/ogcapi-records-1/1.0/conf/record-core"


def search(
    conn: Connection,
    who: Principal,
    base: str,
    names: dict[str, str],
    *,
    q: str | None,
    bbox: tuple[float, float, float, float] | None,
    interval: tuple[datetime | None, datetime | None] | None,
    kind: str | None,
    department: str | None,
    theme: str | None,
) -> list[dict[str, Any]]:
    """Every record matching all the filters that ``who`` may see, layers first by rank."""
    found: list[dict[str, Any]] = []
    if kind in (None, DATASET):
        page = catalog.search(
            conn, q, department=department, theme=theme, limit=10_000, offset=0,
            visibility=policy.visibility(who), bbox=bbox, interval=interval,
        )  # fmt: skip
        found += [layer_record(base, layer, names) for layer in page.layers]
        found += [
            image_record(entry, names)
            for entry in imagery_catalog_records(conn, policy.visibility(who), base)
            if _image_matches(entry, q, bbox, interval, department, theme, names)
        ]
    if kind in (None, SERVICE) and department is None and theme is None and bbox is None:
        words = (q or "").lower().split()
        found += [
            r for r in service_records(base)
            if all(w in f"{r['properties']['title']} {r['properties']['description']} "
                   f"{' '.join(r['properties']['keywords'])}".lower() for w in words)
        ]  # fmt: skip
    return found


def _image_matches(
    entry: dict[str, Any],
    q: str | None,
    bbox: tuple[float, float, float, float] | None,
    interval: tuple[datetime | None, datetime | None] | None,
    department: str | None,
    theme: str | None,
    names: dict[str, str],
) -> bool:
    text = f"{entry['title']} {entry['description']} {entry.get('source') or ''} 遥感影像 imagery".lower()
    if any(w not in text for w in (q or "").lower().split()):
        return False
    if department and department not in (entry["department"], names.get(entry["department"] or "")):
        return False
    if theme and theme.lower() != "imagery":
        return False
    if bbox:
        x0, y0, x1, y1 = entry["extent"][:4]
        if x0 > bbox[2] or x1 < bbox[0] or y0 > bbox[3] or y1 < bbox[1]:
            return False
    if interval:
        updated = datetime.fromisoformat(str(entry["updated"]))
        if (interval[0] and updated < interval[0]) or (interval[1] and updated > interval[1]):
            return False
    return True
