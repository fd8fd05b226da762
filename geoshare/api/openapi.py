"""The API definition as OGC clients read it: OpenAPI 3.0.3, generated from the app's own routes.

FastAPI writes OpenAPI 3.1; the OGC API conformance class the landing page claims is ``oas30``, and
GDAL, QGIS, OWSLib and ``ogctests`` read 3.0 (``nullable``, ``example``, ``format: binary``). So the
generated document is lowered to 3.0.3 here, once per worker, and every operation is given the
answers the app really sends: RFC 7807 problems for 400 (a bad parameter), 401 (a bad key), 403 (a
key used where it may not be), 404 (nothing there, or nothing this caller may see), 429 (rate limit, with
``Retry-After``) and 503 (the database restarting); FastAPI's 422 "Validation Error" stays only on
operations with a body (the app answers a bad query or path parameter with a 400).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from layers.crs import CRS_URIS

VERSION = "3.0.3"
PROBLEM = "application/problem+json"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 7807 problem details; field or line name what was at fault",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": "string", "description": "the parameter, field or column at fault"},
        "line": {"type": "integer", "description": "the line of an uploaded file at fault (1: the header)"},
    },
}
_ANSWERS = {
    "400": "a parameter is malformed, unknown or out of range (the problem's field names it)",
    "401": "the API key is unknown, expired or revoked",
    "403": "the key may not do this, or not from this origin or address",
    "404": "no such resource, or not one this caller may see",
    "429": "too many requests: retry after the Retry-After seconds",
    "503": "the database is restarting or unreachable: retry after the Retry-After seconds",
}
_NO_KEY = frozenset({"/healthz", "/readyz"})
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}}


def _param(name: str, description: str, schema: dict[str, Any], **more: Any) -> dict[str, Any]:
    found = {"name": name, "in": "query", "required": False, "description": description, "schema": schema}
    return found | more


_S = {"type": "string"}
#: every query parameter an operation reads by hand (``check_params`` enforces the set; this says
#: what each means): ``query_parameters(SET)`` documents exactly what the route accepts
PARAMETERS: dict[str, tuple[str, dict[str, Any]]] = {
    "key": ("an API key (or the X-API-Key header, preferred)", _S),
    "f": ("the format of the answer", _S),
    "v": ("the version the URL was built for (from TileJSON or the tile set): current makes it immutable",
          _S),
    "properties": ("comma-separated properties to keep (default: all the reader may see)", _S),
    "filter": ("a CQL2 expression over the queryables (/queryables)", _S),
    "filter-lang": ("the language of filter", {"type": "string", "enum": ["cql2-text", "cql2-json"]}),
    "filter-crs": ("the CRS of geometries in filter (default CRS84)", {"type": "string", "enum": CRS_URIS}),
    "datetime": ("an RFC 3339 instant or interval (start/end, '..' for open) on the time field", _S),
    "bbox": ("minx,miny,maxx,maxy in bbox-crs (CRS84 by default)", _S),
    "bbox-crs": ("the CRS of bbox (default CRS84)", {"type": "string", "enum": CRS_URIS}),
    "crs": ("the CRS of the answer (default CRS84)", {"type": "string", "enum": CRS_URIS}),
    "format": ("the file format", {"type": "string", "enum": ["gpkg", "geojson", "csv", "shp"]}),
    "version": ("the layer version (only the current one is kept for export)", {"type": "integer"}),
    "variant": ("the base map's style", {"type": "string", "enum": ["light", "dark"]}),
    "q": ("words to find (all must match)", _S),
    "type": ("the kind of record", {"type": "string", "enum": ["dataset", "service"]}),
    "department": ("a department code (or name, where it says so)", _S),
    "theme": ("a theme", _S),
    "limit": ("how many at most", {"type": "integer", "minimum": 1}),
    "offset": ("how many to skip", {"type": "integer", "minimum": 0}),
    "from": ("first day, YYYY-MM-DD (local), inclusive", {"type": "string", "format": "date"}),
    "to": ("last day, YYYY-MM-DD (local), inclusive", {"type": "string", "format": "date"}),
    "provider": ("the department that owns the layers", _S),
    "layer": ("a layer id", _S),
    "kind": ("an endpoint kind (features, tiles, export, geocode, catalog, …) or read|write|change", _S),
    "group": ("comma-separated among day, department, layer, provider, kind", _S),
    "key_prefix": ("the 8-character public prefix of a key", _S),
    "status": ("an HTTP status", {"type": "integer", "minimum": 100, "maximum": 599}),
    "cursor": ("from a next link: the page after it, on the same layer version (409 after a publish)", _S),
}  # fmt: skip


def items_parameters(default_limit: int, max_limit: int) -> list[dict[str, Any]]:
    """The query parameters of ``/collections/{id}/items`` (OGC API – Features parts 1–3), with the
    limits ``api.ogc_params`` enforces: the table's, with the array forms OGC clients read."""
    shared = ("bbox-crs", "datetime", "filter", "filter-lang", "filter-crs", "crs")
    listed: dict[str, Any] = {"type": "array", "items": _S}
    form: dict[str, Any] = {"style": "form", "explode": False}
    return [
        _param(
            "limit",
            f"features per page; default {default_limit}, larger values are clamped to {max_limit}",
            {"type": "integer", "minimum": 1, "maximum": max_limit, "default": default_limit},
        ),
        _param(
            "bbox",
            "lower left and upper right corner: minx,miny,maxx,maxy (or six numbers with heights), "
            "in bbox-crs; longitudes within -180..180, latitudes within -90..90 in CRS84",
            {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}},
            **form,
        ),
        *[_param(n, *PARAMETERS[n]) for n in shared],
        _param("sortby", "comma-separated queryables, each with an optional + (ascending) or - (descending)",
               listed, **form),
        _param("properties", PARAMETERS["properties"][0], listed, **form),
        _param("cursor", PARAMETERS["cursor"][0], _S),
    ]  # fmt: skip


def query_parameters(names: Any) -> dict[str, Any]:
    """``openapi_extra`` documenting the query parameters ``names`` (a route's accepted set)."""
    return {"parameters": [_param(n, *PARAMETERS[n]) for n in sorted(names) if n in PARAMETERS]}


# -- 3.1 to 3.0 ------------------------------------------------------------------------------------------

_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")


def lower_schema(schema: Any) -> Any:
    """One JSON Schema (2020-12, as FastAPI writes it) as an OpenAPI 3.0 schema object."""
    if not isinstance(schema, dict):
        return schema
    out = {k: v for k, v in schema.items() if k not in ("$schema", "$id", "contentEncoding")}
    for key in _SCHEMA_LISTS:
        if key in out:
            out[key] = [lower_schema(s) for s in out[key]]
    for key in _SCHEMA_MAPS:
        if key in out:
            out[key] = {name: lower_schema(s) for name, s in out[key].items()}
    for key in ("items", "additionalProperties", "not"):
        if isinstance(out.get(key), dict):
            out[key] = lower_schema(out[key])
    if "prefixItems" in out:
        out["items"] = out.pop("prefixItems")[0] if out["prefixItems"] else {}
    if isinstance(out.get("type"), list):
        kinds = [t for t in out["type"] if t != "null"]
        if len(kinds) < len(out["type"]):
            out["nullable"] = True
        out["type"] = kinds[0] if kinds else "string"
    elif out.get("type") == "null":
        del out["type"]
        out["nullable"] = True
    for key in ("anyOf", "oneOf"):
        options = out.get(key)
        if options and any(o.get("nullable") and set(o) == {"nullable"} for o in options):
            rest = [o for o in options if not (o.get("nullable") and set(o) == {"nullable"})]
            del out[key]
            out["nullable"] = True
            if len(rest) == 1:
                only = rest[0]
                out.update({"allOf": [only]} if "$ref" in only else only)
            elif rest:
                out[key] = rest
    if "const" in out:
        out["enum"] = [out.pop("const")]
    if isinstance(out.get("examples"), list):
        examples = out.pop("examples")
        if examples:
            out["example"] = examples[0]
    for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[flag] = out.pop(bound)
            out[bound] = True
    if "contentMediaType" in out:
        out.pop("contentMediaType")
        out.setdefault("format", "binary")
    return out


def _lower_content(content: dict[str, Any]) -> None:
    for media in content.values():
        if "schema" in media:
            media["schema"] = lower_schema(media["schema"])


def lower(doc: dict[str, Any]) -> dict[str, Any]:
    """The whole document as OpenAPI 3.0.3."""
    doc["openapi"] = VERSION
    doc.pop("jsonSchemaDialect", None)
    doc.pop("webhooks", None)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in list(schemas):
        schemas[name] = lower_schema(schemas[name])
    for item in doc.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:
                    parameter["schema"] = lower_schema(parameter["schema"])
            _lower_content(operation.get("requestBody", {}).get("content", {}))
            for response in operation.get("responses", {}).values():
                _lower_content(response.get("content", {}))
    return doc


# -- the answers every operation gives -------------------------------------------------------------------


_OWS_EXCEPTION = {"application/xml": {"schema": {"type": "string", "description": "an OWS ExceptionReport"}}}


def _problem(description: str, retry: bool = False, ows: bool = False) -> dict[str, Any]:
    """A problem answer; WMTS (``ows``) answers with an OWS ExceptionReport, as its clients expect."""
    problem = {PROBLEM: {"schema": _PROBLEM_REF}}
    content = {**_OWS_EXCEPTION, **problem} if ows else problem  # limits and outages: problems
    answer: dict[str, Any] = {"description": description, "content": content}
    if retry:
        answer["headers"] = _RETRY_AFTER
    return answer


def add_answers(doc: dict[str, Any]) -> dict[str, Any]:
    """The problems each operation may answer, and no FastAPI 422 where the app answers 400."""
    doc["components"]["schemas"]["Problem"] = PROBLEM_SCHEMA
    for path, item in doc.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            answers = operation["responses"]
            has_body = "requestBody" in operation
            if "422" in answers:
                if has_body:
                    answers["422"] = _problem("the request body is not what this operation takes")
                else:
                    del answers["422"]
            names = {p.get("name") for p in operation.setdefault("parameters", [])}
            if "key" not in names and path not in _NO_KEY:  # every operation takes a key so
                operation["parameters"].append(_param("key", *PARAMETERS["key"]))
            ows = path.startswith("/wmts")
            for status in ("400", "401", "403", "404", "429", "503"):
                if status in answers:
                    continue  # a 400 (unknown parameters are refused) and a 404 (nothing there) anywhere
                retry = status in ("429", "503")
                answers[status] = _problem(_ANSWERS[status], retry, ows)
    schemas = doc["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and unused not in str(doc["paths"]):
            del schemas[unused]
    return doc


#: path parameters as OGC API – Features names them (GDAL's OAPIF driver reads the items
#: operation at ``/collections/{collectionId}/items`` for its page size and server-side filters)
OGC_NAMES = {"collection_id": "collectionId", "feature_id": "featureId"}


def ogc_names(doc: dict[str, Any]) -> dict[str, Any]:
    """The routes' Python parameter names written as the OGC standards write them."""
    renamed = {}
    for path, item in doc.get("paths", {}).items():
        for py_name, ogc_name in OGC_NAMES.items():
            path = path.replace("{" + py_name + "}", "{" + ogc_name + "}")
        for operation in item.values():
            for parameter in operation.get("parameters", []) if isinstance(operation, dict) else ():
                if parameter.get("in") == "path":
                    parameter["name"] = OGC_NAMES.get(parameter["name"], parameter["name"])
        renamed[path] = item
    doc["paths"] = renamed
    return doc


def install(app: FastAPI) -> None:
    """Serve the 3.0.3 document at the app's ``openapi_url`` (built once, on first request)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title,
                version=app.version,
                openapi_version=VERSION,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = ogc_names(add_answers(lower(doc)))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]

