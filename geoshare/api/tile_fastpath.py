"""A raw ASGI fast path for vector tiles: answered before any middleware when nothing needs them.

A cached tile is a dict lookup, yet behind FastAPI's routing, dependency injection, Request and
Response objects and seven middlewares it was served at under a third of what bare uvicorn serves.
This layer sits in front of the app's whole stack (``api.app.GeoShareApp``: FastAPI's own error,
telemetry and body-limit layers included), and answers a tile request itself only when it is certain
the app would give the very same response:

* a method the tile route accepts, and a path the app routes to it (learnt from the first tile
  request the app routed: the route object, its template and its methods);
* anonymous (no ``X-API-Key`` or ``X-GeoShare-Embed`` header, no ``key`` parameter), or a key in
  ``X-API-Key`` whose principal this worker already reuses (``api.auth``: authenticated within the
  minute, not bound to referrers or IPs, nothing announced on ``gs_access`` since); a plan made
  for one principal object is never used for another;
* the rate limiter admits it (a refusal is the app's to give, with its problem body);
* the route's own steps give the answer (``routes.tiles.tile_plan``, then ``memory_answer``): the
  layer row in the layer cache, and the tile in the tile cache or the client's copy current (304),
  or a plain tile (no filter or time) read on the worker's asyncio pool
  (``routes.tiles.fetch_from_pool``), as the route would read it.

What the middlewares it skips would have done, it does the same way: the CORS and compression
headers of ``api.http_policy`` (a compressed tile is compressed once per worker and kept in the
tile cache beside the plain one), the rate limiter's bookkeeping, and the audit record
(``audit_middleware.audit_key`` and ``account``: tile reads are tallied per flush).

What a URL means (its checked address and parameters, cache key and headers) is worked out once by
the route's functions and kept as a ``Plan`` for as long as the layer's cached row is the same
object (any change to the layer replaces it), so a hit parses nothing and allocates little.

Anything else — a filtered miss, a key to check, an unknown parameter, a bad address, a layer the
reader may not read, a failed read, a refusal — goes on to the app untouched, and it gives its
usual answer or problem.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from geoshare.access import keys
from geoshare.access.audit import TallyKey
from geoshare.access.identity import Principal
from geoshare.api import http_policy, input_text
from geoshare.api.audit_middleware import ADMITTED, account, audit_key, leaf_routes
from geoshare.api.auth import ANONYMOUS, KEY_PARAM, reused_principal
from geoshare.api.routes import tiles
from geoshare.services.layer_cache import layer_cache
from layers.model import LayerInfo
from layers.tiles.cache import TileKey

log = logging.getLogger("geoshare.tiles")

#: tile URLs whose plan a worker keeps (~2 KB each, so ~8 MB); the least recently used go first
MAX_PLANS = 4096
_PREFIX = "/collections/"
_SEGMENTS = 8  # "", "collections", id, "tiles", tms, z, row, col
#: a key in this header is served here when this worker already holds its principal (``reader``)
_KEY_HEADER = b"x-api-key"
#: embed-vouched requests: the route must check the ticket
_EMBED = b"x-geoshare-embed"
_IF_NONE_MATCH = b"if-none-match"
_ORIGIN = b"origin"
_ACCEPT_ENCODING = b"accept-encoding"
_CONTENT_TYPE = (b"content-type", tiles.MVT.encode("latin-1"))
_GZIP = (b"content-encoding", b"gzip")
_CORS = (
    (b"access-control-allow-origin", ", ".join(http_policy.CORS_ALLOW_ORIGINS).encode("latin-1")),
    (b"access-control-expose-headers", ", ".join(http_policy.CORS_EXPOSE_HEADERS).encode("latin-1")),
)
_NO_PARAMS = QueryParams()


@dataclass(frozen=True, slots=True)
class Plan:
    """What one tile URL means for one reader, worked out once by the route's own code
    (``tile_address``, ``tile_plan``) and valid while ``layer`` is the cached registry row: a
    publish or any change to the layer replaces that row, and the plan is made again."""

    layer: LayerInfo
    who: Principal  # the reader the plan was made for (a reused principal object, or anonymous)
    collection_id: str
    tile: tiles.TilePlan  # what the route works out: the reader's view, the tile, key and headers
    key: TileKey
    headers: dict[str, str]  # ETag, Cache-Control, Vary as ``tile_headers`` gives them
    head: tuple[tuple[bytes, bytes], ...]  # the same but Vary, encoded as ``Response`` encodes them
    vary_small: tuple[bytes, bytes]  # Vary as it leaves the app: for empty and small bodies
    vary_large: tuple[bytes, bytes]  # and for bodies the compression middleware looks at
    path_params: dict[str, str]
    audit_keys: dict[tuple[str, int, str | None], TallyKey]  # (method, status, client) -> audit key


@dataclass(frozen=True, slots=True)
class Asked:
    """What the request's headers say that changes the answer."""

    key: str | None
    if_none_match: str | None
    origin: bool
    gzip: bool


def encode_headers(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """``headers`` as ``starlette.responses.Response`` puts them on the wire (before length, type)."""
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


def _vary(base: str, *more: str) -> tuple[bytes, bytes]:
    return (b"vary", ", ".join(v for v in (base, *more) if v).encode("latin-1"))


def gzip_body(body: bytes) -> bytes:
    """``body`` compressed exactly as the GZip middleware compresses it."""
    compressor = zlib.compressobj(http_policy.GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


class TileFastPath:
    """Pure ASGI; a request that is not a hit costs a look at its path (and, for a tile path, its
    headers and a plan lookup) before it goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route: Any = None  # the tile route, once the app has routed a tile request to it
        self.methods: frozenset[str] = frozenset()
        self.plans: OrderedDict[tuple[str, bytes, str | None], Plan] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.route is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            if self.route is None and scope["type"] == "http" and scope.get("endpoint") is tiles.tile:
                self._learn(scope)
            return
        state = scope["app"].state
        rt = getattr(state, "audit", None)  # made by the app's lifespan: before that, the app answers
        found = self._hit(scope, state) if rt is not None else None
        if found is None:
            await self.app(scope, receive, send)
            return
        answer, plan, asked = found
        started, ts, now = time.perf_counter(), time.time(), time.monotonic()
        client = scope.get("client")
        ip = client[0] if client else None
        prefix, has_key = plan.who.key_prefix, asked.key is not None
        if rt.limiter.admit(ip, prefix, has_key, now) is not None:
            await self.app(scope, receive, send)  # refused: the audit middleware answers 429
            return
        wired = None
        try:
            if answer is None and tiles.is_plain(plan.tile.request):
                answer = await self._fetch(state, plan)
            if answer is not None:
                wired = await self._wire(state, plan, answer[0], answer[1], asked)
        except Exception:  # noqa: BLE001 - nothing sent yet: the app answers, and reports any error
            log.warning("tile fast path failed on %s; the app answers", scope["path"], exc_info=True)
        if answer is None or wired is None:
            scope.setdefault("state", {})[ADMITTED] = True
            await self.app(scope, receive, send)
            return
        status = answer[0]
        headers, body = wired
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        rt.limiter.settle(ip, prefix, has_key, status, plan.who, now)
        if rt.config.enabled:
            method = scope["method"]
            key = plan.audit_keys.get((method, status, ip))
            if key is None:
                key = audit_key(scope, tiles.TILE_PATH, plan.path_params, plan.who, prefix, rt, status)
                if len(plan.audit_keys) < 64:  # a handful of clients per URL; a crowd is not kept
                    plan.audit_keys[(method, status, ip)] = key
            sent = 0 if method == "HEAD" else len(body)  # the server drops a HEAD's body
            account(rt, key, ts, started, sent, 1 if status == 200 else None)

    @staticmethod
    async def _wire(
        state: Any, plan: Plan, status: int, body: bytes, asked: Asked
    ) -> tuple[list[tuple[bytes, bytes]], bytes]:
        """The headers and body as they would leave the app through its GZip and CORS middlewares."""
        cors = _CORS if asked.origin else ()
        if status == 304 or len(body) < http_policy.GZIP_MINIMUM_SIZE:
            headers = [*plan.head, plan.vary_small]
            if status != 304:
                headers += [(b"content-length", str(len(body)).encode("latin-1")), _CONTENT_TYPE]
            return [*headers, *cors], body
        encoding: tuple[tuple[bytes, bytes], ...] = ()
        if asked.gzip:
            cache = tiles.tile_cache(state)
            packed = cache.get(("gzip", plan.key))
            if packed is None:
                if len(body) >= http_policy.GZIP_THREAD_MINIMUM_SIZE:
                    packed = await anyio.to_thread.run_sync(gzip_body, body)
                else:
                    packed = gzip_body(body)
                cache.put(("gzip", plan.key), packed)
            body, encoding = packed, (_GZIP,)
        length = (b"content-length", str(len(body)).encode("latin-1"))
        return [*plan.head, plan.vary_large, length, _CONTENT_TYPE, *encoding, *cors], body

    @staticmethod
    async def _fetch(state: Any, plan: Plan) -> tuple[int, bytes, dict[str, str]] | None:
        """A plain tile not in the cache, read as the route reads it (``tiles.fetch_from_pool``);
        None, for the route to answer, when this loop has no pool or the read fails."""
        try:
            data = await tiles.fetch_from_pool(state, plan.tile)
        except Exception:  # noqa: BLE001 - the route reads it again and gives its own answer
            return None
        return None if data is None else (200, data, plan.headers)

    def _learn(self, scope: Scope) -> None:
        """Take the route from a request the app itself routed to the tile endpoint, and the methods
        of every route it has to that endpoint (GET and HEAD are two routes); a differently mounted
        route (another template) leaves the fast path off."""
        route = scope.get("route")
        if getattr(route, "path", None) == tiles.TILE_PATH:
            methods = {
                method
                for r in leaf_routes(scope["app"].router.routes)
                if getattr(r, "endpoint", None) is tiles.tile and getattr(r, "path", None) == tiles.TILE_PATH
                for method in getattr(r, "methods", None) or ()
            }
            self.methods = frozenset(methods) & {"GET", "HEAD"}
            self.route = route

    @staticmethod
    def _asked(scope: Scope) -> Asked | None:
        """The headers that shape the answer; None when the request carries an embed ticket."""
        key = if_none_match = None
        origin = gzip = False
        for name, value in scope["headers"]:
            if name == _EMBED:
                return None
            if name == _KEY_HEADER and key is None:
                key = value.decode("latin-1").strip()
            elif name == _IF_NONE_MATCH and if_none_match is None:
                if_none_match = value.decode("latin-1")  # the first one, as Request.headers.get
            elif name == _ORIGIN:
                origin = True
            elif name == _ACCEPT_ENCODING and not gzip:
                gzip = b"gzip" in value  # the first one decides, as GZipMiddleware's headers.get
        return Asked(key, if_none_match, origin, gzip)

    def _hit(
        self, scope: Scope, state: Any
    ) -> tuple[tuple[int, bytes, dict[str, str]] | None, Plan, Asked] | None:
        """The URL's plan, what was asked and the answer from memory (None on a cache miss); None
        for anything the app must answer."""
        path: str = scope["path"]
        if not path.startswith(_PREFIX) or scope["method"] not in self.methods or scope.get("root_path"):
            return None
        asked = self._asked(scope)
        if asked is None:
            return None
        registry = layer_cache(state)
        who = ANONYMOUS if asked.key is None else reader(registry, asked.key)
        if who is None:
            return None
        memo = (path, scope["query_string"], asked.key)
        plan = self.plans.get(memo)
        if plan is not None and plan.who is who and registry.peek(plan.collection_id) is plan.layer:
            self.plans.move_to_end(memo)
        else:
            plan = self._plan(state, path, memo[1], who)
            if plan is None:
                return None
            self.plans[memo] = plan
            while len(self.plans) > MAX_PLANS:
                self.plans.popitem(last=False)
        return tiles.memory_answer(state, plan.key, plan.headers, asked.if_none_match), plan, asked

    @staticmethod
    def _plan(state: Any, path: str, query: bytes, who: Principal) -> Plan | None:
        """The URL's plan for ``who``, when the route would answer it from a cached layer row; None
        for anything else (a key in the URL, malformed, unreadable: the route's to refuse)."""
        if query and input_text.query_fault(query) is not None:
            return None  # the app refuses it, naming the parameter
        parts = path.split("/")
        if len(parts) != _SEGMENTS or parts[3] != "tiles" or "//" in path or path[-1] == "/":
            return None
        params = QueryParams(query) if query else _NO_PARAMS
        if KEY_PARAM in params:
            return None
        _, _, collection_id, _, tms_id, tile_matrix, tile_row, tile_col = parts
        cached = layer_cache(state).peek(collection_id)
        if cached is None:
            return None
        try:
            z, row, col, version = tiles.tile_address(params, tms_id, tile_matrix, tile_row, tile_col)
            tile = tiles.tile_plan(cached, params, collection_id, who, tms_id, z, row, col, version)
        except Exception:  # noqa: BLE001 - any refusal is the route's to give, as a problem
            return None
        headers = tile.headers
        if set(headers) != {"ETag", "Cache-Control", "Vary"}:
            return None  # headers this path does not know how the middlewares would change
        vary = headers["Vary"]
        return Plan(
            cached,
            who,
            collection_id,
            tile,
            tile.key,
            headers,
            encode_headers({k: v for k, v in headers.items() if k != "Vary"}),
            # the compression middleware adds Accept-Encoding for bodies it looks at; CORS adds Origin
            _vary(vary, "Origin"),
            _vary(vary, "Accept-Encoding", "Origin"),
            {
                "collection_id": collection_id,
                "tms_id": tms_id,
                "tile_matrix": tile_matrix,
                "tile_row": tile_row,
                "tile_col": tile_col,
            },
            {},
        )


def reader(registry: Any, key: str) -> Principal | None:
    """The principal this worker reuses for ``key`` (as ``api.auth.principal`` would), or None when
    the key must be checked by the route: unknown here, bound to referrers or IPs (never reused),
    past its reuse time, or the worker not listening for access changes."""
    return reused_principal(registry, keys.digest(key)) if key else None
