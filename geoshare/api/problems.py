"""RFC 7807 problem+json for every error, naming the parameter, field or line at fault."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import orjson
import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from layers.errors import LayerError

log = logging.getLogger("geoshare.api")
PROBLEM_JSON = "application/problem+json"


class Problem(Exception):
    """Raise from a route to answer with a problem body."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = {k: v for k, v in extra.items() if v is not None}


def problem_response(status: int, detail: str, instance: str | None = None, **extra: Any) -> Response:
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"Retry-After": str(extra["retry_after"])} if "retry_after" in extra else None
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _loc_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "path", "body", "header", "form")]
    return ".".join(parts) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        return problem_response(exc.status, exc.detail, request.url.path, **exc.extra)

    @app.exception_handler(LayerError)
    async def _layer_error(request: Request, exc: LayerError) -> Response:
        return problem_response(exc.status, exc.detail, request.url.path, field=exc.field, line=exc.line)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"field": _loc_name(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "request", "message": "invalid"}
        status = 400 if all(e.get("loc", ("",))[0] in ("query", "path") for e in exc.errors()) else 422
        return problem_response(
            status,
            f"invalid parameter {first['field']!r}: {first['message']}",
            request.url.path,
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no resource at {request.url.path}"
        return problem_response(exc.status_code, detail, request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        if program_limit(exc):
            return limit_problem(request.url.path, exc)
        if database_unavailable(exc):  # raised outside the routes (``api.outage`` answers theirs)
            log.warning("database unavailable on %s: %s", request.url.path, exc)
            return unavailable_problem(request.url.path)
        log.exception("unhandled error on %s", request.url.path)
        return problem_response(500, "internal error; the incident was logged", request.url.path)


#: ``Retry-After`` of a 503 while the database cannot be reached
UNAVAILABLE_RETRY_SECONDS = 5


#: SQLSTATEs of a server that is going away or cannot take the connection: class 08 (connection
#: exception) by prefix, and these. Everything else the server answers (psycopg maps class 54,
#: "program limit exceeded", to OperationalError too) is about the statement, not availability.
_UNAVAILABLE_STATES = frozenset({"57P01", "57P02", "57P03", "53300"})


def _sqlstate(exc: BaseException) -> str | None:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    state = getattr(orig, "sqlstate", None)
    return state if isinstance(state, str) else None


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or dropped the connection (a restart, a failover, too many
    clients): the client should try again (503), which is not a fault of this code (500). Told by
    SQLSTATE when the server answered; without one, by the error's kind (refused, reset, closed)."""
    state = _sqlstate(exc)
    if state is not None:
        return state.startswith("08") or state in _UNAVAILABLE_STATES
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError)
    return isinstance(exc, UNAVAILABLE_ERRORS)


def limit_problem(path: str, exc: BaseException) -> Response:
    """The 422 for a statement past one of PostgreSQL's limits that validation did not foresee."""
    log.warning("PostgreSQL limit exceeded on %s: %s", path, exc)
    return problem_response(
        422,
        "the data exceeds a PostgreSQL limit (too many fields, or a value or row too large); "
        "nothing was written",
        path,
    )


def unavailable_problem(path: str) -> Response:
    """The 503 for a database that is restarting or unreachable: the client retries, as told."""
    return problem_response(
        503,
        "the database is unavailable or restarting; try again shortly",
        path,
        retry_after=UNAVAILABLE_RETRY_SECONDS,
    )


def program_limit(exc: BaseException) -> bool:
    """SQLSTATE class 54 (a row, index entry or column count past PostgreSQL's limits): the data's
    fault, a 422. The validator refuses these first, naming the field; this is the fallback."""
    state = _sqlstate(exc)
    return state is not None and state.startswith("54")


UNAVAILABLE_ERRORS = (
    psycopg.OperationalError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,  # refused or reset: the server is not there
)
