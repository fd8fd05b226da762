"""``Allow`` on every 405 (RFC 9110 §15.5.6), listing what the path accepts.

Starlette raises ``HTTPException(405, headers={"Allow": ...})``, but the app's problem+json handler
(``problems.install``) builds a new response and drops those headers; and Starlette names only the
methods of the first route whose path matched, while one path is often several routes (GET and
DELETE of ``/layers/{id}`` are two). This wraps that handler: the body stays the problem, the
exception's headers are kept, and a 405's ``Allow`` is the union over every route matching the path.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from geoshare.api.audit_middleware import leaf_routes


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """The methods of every route whose path matches the request's, sorted; empty if none says."""
    # as the app's router saw it: a mount the 405 came from has moved ``root_path`` on
    top = {**scope, "root_path": scope.get("app_root_path", scope.get("root_path", ""))}
    methods: set[str] = set()
    for route in leaf_routes(app.router.routes):
        match, _ = route.matches(top)
        if match is not Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Wrap the app's HTTPException handler (call after ``problems.install``)."""
    handler = app.exception_handlers[StarletteHTTPException]

    async def with_headers(request: Request, exc: StarletteHTTPException) -> Response:
        response: Response = await handler(request, exc)
        if exc.headers:
            response.headers.update(exc.headers)
        if exc.status_code == 405:
            methods = allowed_methods(request.app, request.scope)
            if methods:
                response.headers["Allow"] = ", ".join(methods)
        return response

    app.add_exception_handler(StarletteHTTPException, with_headers)
