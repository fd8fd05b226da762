"""Control characters and broken UTF-8 in a URL: a 400 naming the parameter, on every route.

PostgreSQL cannot hold NUL in text (psycopg refuses to send it), so a NUL in any parameter that
reached a query was a 500; the other C0 controls (tab, CR and LF included) and DEL have no place
in a URL parameter either, and a percent-escape that is not UTF-8 would silently become U+FFFD.
One pure ASGI middleware checks every request's raw query string and path before routing, so no
route has to care. A clean URL costs one regex match over its bytes (well under a microsecond);
only a URL with percent-escapes or non-ASCII bytes is decoded, and only a bad one is taken apart
to name the parameter at fault.

The refusal is problem+json (``field`` names the parameter), except where an API promised its
clients another error shape: WMTS answers an OWS ExceptionReport, the Amap and Tianditu
compatibility endpoints their vendor's error body.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from geoshare.api import wmts_xml
from geoshare.api.audit_middleware import leaf_routes
from geoshare.api.problems import problem_response
from geoshare.api.responses import json_response
from geoshare.services import compat_amap, compat_tianditu

#: printable ASCII but "%": nothing to decode, nothing to refuse (the common case)
_PLAIN = re.compile(rb"[\x20-\x24\x26-\x7e]*")
#: C0 controls and DEL, refused in every parameter
CONTROL = re.compile("[\x00-\x1f\x7f]")


def fault(raw: bytes) -> str | None:
    """What is wrong with ``raw`` (part of a URL) once percent-decoded, or None when it is clean."""
    if _PLAIN.fullmatch(raw):
        return None
    try:
        text = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 once percent-decoded"
    return text_fault(text)


def text_fault(text: str) -> str | None:
    """``contains the control character U+0000`` for the first control in ``text``, else None."""
    found = CONTROL.search(text)
    return None if found is None else f"contains the control character U+{ord(found.group()):04X}"


def printable(text: str) -> str:
    """``text`` with its controls written as ``\\x00``: safe in a message, a JSON field, XML."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def query_fault(query: bytes) -> tuple[str, str] | None:
    """(parameter, detail) for the first bad parameter of a raw query string, or None."""
    if fault(query) is None:
        return None
    for pair in query.split(b"&"):
        raw_name, _, raw_value = pair.partition(b"=")
        name = printable(unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8", "replace"))
        for part, what in ((raw_name, "name"), (raw_value, "value")):
            problem = fault(part)
            if problem is not None:
                return name, f"the {what} of parameter {name!r} {problem}"
    return "query", f"the query string {fault(query)}"  # not reached: some pair is at fault


def path_fault(scope: Scope) -> tuple[str, str] | None:
    """(path parameter or ``path``, detail) when the request path is bad, or None."""
    raw = scope.get("raw_path")
    problem = fault(raw) if raw is not None else text_fault(scope["path"])
    if problem is None:
        return None
    router = getattr(scope.get("app"), "router", None)
    for route in leaf_routes(router.routes if router is not None else ()):
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        for name, value in (child.get("path_params") or {}).items():
            if isinstance(value, str) and (CONTROL.search(value) or "\ufffd" in value):
                return name, f"path parameter {name!r} {problem}"
        break
    return "path", f"the path {problem}"


def refusal(path: str, field: str, detail: str) -> Response:
    """The 400 in the shape the API at ``path`` promised its clients."""
    if path.startswith("/wmts"):
        body = wmts_xml.exception_report("InvalidParameterValue", detail, field)
        return Response(body, status_code=400, media_type=wmts_xml.XML_TYPE)
    if path.startswith("/compat/amap/"):
        return json_response({**compat_amap.error(compat_amap.INVALID_PARAMS), "detail": detail})
    if path.startswith("/compat/tianditu/"):
        return json_response(compat_tianditu.error(detail))
    return problem_response(400, detail, printable(path), field=field)


class RefuseControlCharacters:
    """Pure ASGI: refuse a request whose query string or path carries a control character or is
    not UTF-8, before routing. The path is then written back with its controls escaped, since the
    audit middleware outside records it and PostgreSQL would refuse the whole audit batch."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            bad = query_fault(scope.get("query_string", b"")) or path_fault(scope)
            if bad is not None:
                response = refusal(scope["path"], *bad)
                scope["path"] = printable(scope["path"])
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
