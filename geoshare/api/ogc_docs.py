"""The JSON documents of OGC API – Features: landing page, conformance, collections, queryables."""

from __future__ import annotations

from typing import Any

from layers.crs import CRS84, CRS_URIS
from layers.model import LayerInfo

GEOJSON = "application/geo+json"
JSON = "application/json"
SCHEMA_JSON = "application/schema+json"
OPENAPI_JSON = "application/vnd.oai.openapi+json;version=3.0"
TRS_GREGORIAN = "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"

_OGC = "http://www.opengis.net/spec"
CONFORMANCE = [
    f"{_OGC}/ogcapi-features-1/1.0/conf/core",
    f"{_OGC}/ogcapi-features-1/1.0/conf/geojson",
    f"{_OGC}/ogcapi-features-1/1.0/conf/oas30",
    f"{_OGC}/ogcapi-features-2/1.0/conf/crs",
    f"{_OGC}/ogcapi-features-3/1.0/conf/filter",
    f"{_OGC}/ogcapi-features-3/1.0/conf/features-filter",
    f"{_OGC}/ogcapi-features-3/1.0/conf/queryables",
    f"{_OGC}/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    f"{_OGC}/cql2/1.0/conf/cql2-text",
    f"{_OGC}/cql2/1.0/conf/cql2-json",
    f"{_OGC}/cql2/1.0/conf/basic-cql2",
    f"{_OGC}/cql2/1.0/conf/advanced-comparison-operators",
    f"{_OGC}/cql2/1.0/conf/case-insensitive-comparison",
    f"{_OGC}/cql2/1.0/conf/basic-spatial-functions",
    f"{_OGC}/cql2/1.0/conf/basic-spatial-functions-plus",
    f"{_OGC}/cql2/1.0/conf/spatial-functions",
    f"{_OGC}/cql2/1.0/conf/arithmetic",
    *(
        f"{_OGC}/ogcapi-tiles-1/1.0/conf/{c}"
        for c in ("core", "tileset", "tilesets-list", "geodata-tilesets", "mvt", "oas30")
    ),
    *(
        f"{_OGC}/tms/2.0/conf/{c}"
        for c in ("tilematrixset", "json-tilematrixset", "tilesetmetadata", "json-tilesetmetadata")
    ),
]

_GEOMETRY_FORMATS = {
    "POINT": "geometry-point",
    "MULTIPOINT": "geometry-multipoint",
    "LINESTRING": "geometry-linestring",
    "MULTILINESTRING": "geometry-multilinestring",
    "POLYGON": "geometry-polygon",
    "MULTIPOLYGON": "geometry-multipolygon",
}


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def landing(base: str, title: str, description: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "links": [
            link(f"{base}/", "self", JSON, "this document"),
            link(f"{base}/api", "service-desc", OPENAPI_JSON, "the API definition"),
            link(f"{base}/api.html", "service-doc", "text/html", "the API documentation"),
            link(f"{base}/conformance", "conformance", JSON, "OGC conformance classes"),
            link(f"{base}/collections", "data", JSON, "the published layers"),
            link(f"{base}/catalog", "search", JSON, "search layers by keyword, department, theme"),
            link(
                f"{base}/tileMatrixSets",
                "http://www.opengis.net/def/rel/ogc/1.0/tiling-schemes",
                JSON,
                "tile matrix sets",
            ),
        ],
    }


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def collection(base: str, layer: LayerInfo) -> dict[str, Any]:
    """``layer`` as the reader sees it: pass it through ``layers.registry.redact`` first, so fields
    hidden from the reader are named nowhere (schema, key field, time field and extent)."""
    href = f"{base}/collections/{layer.id}"
    extent: dict[str, Any] = {}
    if layer.extent:
        extent["spatial"] = {"bbox": [list(layer.extent[:4])], "crs": CRS84}
    if layer.time_field:
        interval = [_iso(t) for t in (layer.time_extent or [None, None])]
        extent["temporal"] = {"interval": [interval], "trs": TRS_GREGORIAN}
    doc: dict[str, Any] = {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "keywords": list(layer.keywords),
        "itemType": "feature",
        "crs": list(CRS_URIS),
        "storageCrs": CRS84,
        "links": [
            link(href, "self", JSON, layer.title),
            link(f"{href}/items", "items", GEOJSON, "features"),
            link(
                f"{href}/queryables",
                "http://www.opengis.net/def/rel/ogc/1.0/queryables",
                SCHEMA_JSON,
                "queryable properties",
            ),
            link(
                f"{href}/tiles",
                "http://www.opengis.net/def/rel/ogc/1.0/tilesets-vector",
                JSON,
                "vector tilesets",
            ),
        ],
        "geoshare:metadata": {
            "department": layer.department_code,
            "theme": layer.theme,
            "sharingClass": layer.sharing_class,
            "updateFrequency": layer.update_frequency,
            "version": layer.current_version,
            "featureCount": layer.feature_count,
            "geometryType": layer.geometry_type,
            "keyField": layer.key_field if layer.key_field and layer.attribute(layer.key_field) else None,
            "timeField": layer.time_field,
            "source": layer.source,
            "licence": layer.licence,
            "contact": layer.contact,
            "updated": _iso(layer.updated_at),
        },
    }
    if extent:
        doc["extent"] = extent
    if layer.licence:
        doc["license"] = layer.licence
    return doc


_JSON_SCHEMA_TYPES: dict[str, dict[str, str]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "date": {"type": "string", "format": "date"},
    "datetime": {"type": "string", "format": "date-time"},
}


def queryables(base: str, layer: LayerInfo) -> dict[str, Any]:
    """The reader's queryables: ``layer`` redacted of hidden fields, as for ``collection``."""
    gtype = (layer.geometry_type or "").upper()
    props: dict[str, Any] = {
        "geometry": {
            "title": "geometry",
            "format": _GEOMETRY_FORMATS.get(gtype, "geometry-any"),
            "x-ogc-role": "primary-geometry",
        }
    }
    for a in layer.attributes:
        schema: dict[str, Any] = {"title": a.name, **_JSON_SCHEMA_TYPES[a.type]}
        if a.name == layer.time_field:
            schema["x-ogc-role"] = "primary-instant"
        if a.name == layer.key_field:
            schema["x-ogc-role"] = "id"
        props[a.name] = schema
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{base}/collections/{layer.id}/queryables",
        "type": "object",
        "title": layer.title,
        "properties": props,
        "additionalProperties": False,
    }
