"""Audit capture and rate limiting for every request: one pure ASGI middleware.

Pure ASGI (not ``BaseHTTPMiddleware``, which copies each response through a task and a queue): it
wraps ``send`` to see the status, the result count header and the bytes, and reads what the endpoint
left in ``scope`` — the matched route (its template, e.g. ``/collections/{collection_id}/items``), the
path parameters (the layer), and the request state: ``principal`` (set by ``geoshare.api.auth``) and
``audit_count`` (features, tiles or addresses returned; an endpoint may send ``X-Result-Count``
instead). The record goes to the audit writer's buffer as the last body chunk leaves: no I/O here.
Tile reads are tallied instead (one row per reader, layer, client and outcome over each flush; see
``geoshare.access.audit``), and the tile fast path outside this middleware accounts its own answers
with the same ``audit_key`` and ``account``.

Before the request, the rate limiter may answer 429 problem+json with ``Retry-After`` (see
``geoshare.access.ratelimit``); after it, a 401 to a request carrying a key counts as a failed
authentication of the client IP. Health checks and the API documentation are neither limited nor
logged. The middleware also hooks the lifespan: on startup it loads the department limits and starts
the writer thread; on shutdown it writes what is buffered before the app releases its engine.

Keys never reach the log: only the 8-character public prefix of a key is recorded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoshare.access import audit_partitions, keys
from geoshare.access.audit import Access, AuditConfig, AuditWriter, TallyKey
from geoshare.access.identity import Principal
from geoshare.access.ratelimit import LimitConfig, Limiter
from geoshare.api.problems import problem_response

log = logging.getLogger("geoshare.audit")

SKIP_PATHS = frozenset(
    {"/healthz", "/readyz", "/api", "/api.html", "/docs", "/docs/oauth2-redirect", "/redoc", "/favicon.ico"}
)
LAYER_PARAMS = ("collection_id", "layer_id")
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
COUNT_HEADER = b"x-result-count"
#: ``scope["state"]`` flag: the request was admitted by the rate limiter already (the tile fast path)
ADMITTED = "rate_admitted"

# (path prefix, kind) — first match wins; "/items" decides features before the catalog rule
_KINDS: tuple[tuple[str, str], ...] = (
    ("/geocode", "geocode"),
    ("/compat/", "geocode"),
    ("/jobs", "geocode"),
    ("/admin-areas", "divisions"),
    ("/usage", "usage"),
    ("/admin/", "access"),
    ("/whoami", "access"),
    ("/agreements", "access"),
)
_kind_cache: dict[tuple[str, str], str] = {}


def endpoint_kind(method: str, template: str | None) -> str:
    """The roll-up's grouping of an endpoint: features, tiles, export, geocode, divisions, catalog,
    publish, access, usage, other — or unmatched (no route: scans, typos)."""
    if template is None:
        return "unmatched"
    cached = _kind_cache.get((method, template))
    if cached is not None:
        return cached
    if "/tiles" in template:
        kind = "tiles"
    elif template.startswith("/collections/") and "/items" in template:
        kind = "features"
    elif template.endswith("/export"):
        kind = "export"
    else:
        kind = next((k for prefix, k in _KINDS if template.startswith(prefix)), "")
        if not kind and template.startswith("/layers"):
            kind = "catalog" if method in READ_METHODS else "publish"
        elif not kind and (
            template in ("/", "/conformance", "/catalog") or template.startswith("/collections")
        ):
            kind = "catalog"
        kind = kind or "other"
    if len(_kind_cache) < 1024:
        _kind_cache[(method, template)] = kind
    return kind


def _request_key(scope: Scope) -> tuple[str | None, bool]:
    """(public prefix of the key sent, whether a key was sent at all) — never the key itself."""
    sent = keys.sent_key(scope)
    return sent.prefix, sent.present


class Runtime:
    """One worker's audit writer and limiter, kept on ``app.state.audit``."""

    def __init__(self, app: FastAPI) -> None:
        settings = app.state.settings
        self.engine = app.state.engine
        self.config = AuditConfig.from_settings(settings)
        self.limiter = Limiter(LimitConfig.from_settings(settings))
        self.writer = AuditWriter(self.engine, self.config, ticks=[self._tick])
        self._last_refresh = 0.0
        self._last_partitions = 0.0

    def start(self) -> None:
        """Load the department limits now (so they hold from the first request), make the coming
        months' partitions of the log, and start writing."""
        self.refresh_limits()
        self.maintain_partitions()
        self.writer.start()

    def maintain_partitions(self) -> None:
        try:
            with self.engine.begin() as conn:
                audit_partitions.maintain(conn, self.config.retention_months)
        except Exception:  # noqa: BLE001 - no database now: the default partition keeps the rows
            log.warning("could not maintain the audit log's partitions; trying again later", exc_info=True)
        self._last_partitions = time.monotonic()

    def close(self) -> None:
        self.writer.close()

    def refresh_limits(self) -> None:
        try:
            with self.engine.connect() as conn:
                self.limiter.refresh(conn)
        except Exception:  # noqa: BLE001 - no limits table yet or no database: defaults apply
            log.warning("could not load department rate limits; server defaults apply", exc_info=True)
        self._last_refresh = time.monotonic()

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_refresh >= self.limiter.config.refresh_seconds:
            self.refresh_limits()
            self.limiter.prune(now)
        if now - self._last_partitions >= audit_partitions.EVERY_SECONDS:
            self.maintain_partitions()


def runtime(app: FastAPI) -> Runtime:
    """The app's audit runtime; normally made at startup, else here on first use (an app run without
    its lifespan, e.g. a test client outside ``with``), then at the cost of one query on that request."""
    rt: Runtime | None = getattr(app.state, "audit", None)
    if rt is None:
        rt = app.state.audit = Runtime(app)
        rt.start()
    return rt


def leaf_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """The app's routes in routing order, with routers included without a prefix opened up (FastAPI
    0.12x+ keeps an included router as one route whose ``matches`` names no template)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None and not getattr(getattr(route, "include_context", None), "prefix", ""):
            yield from leaf_routes(included.routes)
        else:
            yield route


def _route_of(app: FastAPI, scope: Scope) -> tuple[str | None, dict[str, Any]]:
    """Template and path parameters for a request refused before routing (429s only)."""
    for route in leaf_routes(app.router.routes):
        match, child = route.matches(scope)
        if match is Match.FULL:
            return getattr(route, "path", None), child.get("path_params", {})
    return None, {}


class AuditMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] in SKIP_PATHS:
                await self.app(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(scope, receive), send)
        else:
            await self.app(scope, receive, send)

    def _lifespan_receive(self, scope: Scope, receive: Receive) -> Callable[[], Awaitable[Message]]:
        async def wrapped() -> Message:
            message = await receive()
            app: FastAPI = scope["app"]
            if message["type"] == "lifespan.startup":
                rt = getattr(app.state, "audit", None) or Runtime(app)
                app.state.audit = rt
                await anyio.to_thread.run_sync(rt.start)
            elif message["type"] == "lifespan.shutdown" and getattr(app.state, "audit", None) is not None:
                await anyio.to_thread.run_sync(app.state.audit.close)
            return message

        return wrapped

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        app: FastAPI = scope["app"]
        rt = getattr(app.state, "audit", None) or runtime(app)
        limiter = rt.limiter
        started = time.perf_counter()
        ts = time.time()
        client = scope.get("client")
        ip = client[0] if client else None
        prefix, has_key = _request_key(scope)
        state: MutableMapping[str, Any] = scope.setdefault("state", {})  # shared with request.state

        # the tile fast path outside admits the requests it starts to answer and then hands on
        refusal = None if state.get(ADMITTED) else limiter.admit(ip, prefix, has_key, time.monotonic())
        if refusal is not None:
            response = problem_response(
                429, refusal.detail, scope["path"], retry_after=refusal.retry_after, field=refusal.field
            )
            await response(scope, receive, send)
            if rt.config.enabled:
                template, params = _route_of(app, scope)
                key = audit_key(scope, template, params, None, prefix, rt, 429)
                account(rt, key, ts, started, len(response.body), None)
            return

        status = 500
        size = 0
        count_header: bytes | None = None
        done = False

        def finish() -> None:
            nonlocal done
            done = True
            who = state.get("principal")
            limiter.settle(ip, prefix, has_key, status, who, time.monotonic())
            if not rt.config.enabled:
                return
            count = state.get("audit_count")
            if count is None and count_header is not None and count_header.isdigit():
                count = int(count_header)
            route = scope.get("route")
            template = getattr(route, "path", None)
            key = audit_key(scope, template, scope.get("path_params") or {}, who, prefix, rt, status)
            account(rt, key, ts, started, size, count)

        head = scope["method"] == "HEAD"  # the server sends no body, whatever the app gives it

        async def send_wrapper(message: Message) -> None:
            nonlocal status, size, count_header
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == COUNT_HEADER:
                        count_header = value
            elif message["type"] == "http.response.body":
                size += 0 if head else len(message.get("body", b""))
                if not message.get("more_body", False) and not done:
                    finish()
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if not done:  # an exception, or a response without a final body chunk
                finish()


def audit_key(
    scope: Scope,
    template: str | None,
    params: dict[str, Any],
    who: Principal | None,
    prefix: str | None,
    rt: Runtime,
    status: int,
) -> TallyKey:
    """What the audit log records of a request besides its time, size, count and duration."""
    method: str = scope["method"]
    if who is not None and who.key_prefix is not None:
        department, key_prefix, role = who.department, who.key_prefix, who.role
    else:
        # an endpoint that did not ask who is calling: a key proven on this worker still names its
        # department; otherwise the prefix that was tried (public) and nobody
        known = rt.limiter.proven(prefix)
        department, role = known if known else (None, None)
        key_prefix = prefix
    kind = endpoint_kind(method, template)
    layer = next((params[p] for p in LAYER_PARAMS if p in params), None)
    return TallyKey(
        kind="read" if method in READ_METHODS or kind == "geocode" else "write",
        method=method,
        endpoint=template if template is not None else scope["path"][:200],
        endpoint_kind=kind,
        layer_id=str(layer)[:100] if layer is not None else None,
        department_code=department,
        key_prefix=key_prefix,
        role=role,
        client_ip=(scope.get("client") or (None,))[0],
        status=status,
    )


def account(rt: Runtime, key: TallyKey, ts: float, started: float, size: int, count: int | None) -> None:
    """Hand the request to the audit writer: tile reads into the flush's tally, the rest as rows."""
    duration_ms = (time.perf_counter() - started) * 1000.0
    if key.endpoint_kind == "tiles" and key.kind == "read":
        rt.writer.tally(key, ts, size, count, duration_ms)
    else:
        rt.writer.submit(Access(ts, *key, duration_ms, size, count))


def install(app: FastAPI) -> None:
    """Add the middleware (call after the app's own ``add_middleware`` calls: outside them, so it
    counts the bytes sent and refuses before any other work; only CORS, embed tickets and the tile
    fast path are outside it)."""
    app.add_middleware(AuditMiddleware)
