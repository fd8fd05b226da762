"""A raw ASGI fast path for vector tiles: answered before FastAPI's routing when nothing needs it.

A cached tile is a dict lookup, yet behind FastAPI's routing, dependency injection, Request and
Response objects and exception middleware it was served at ~11% of what bare uvicorn serves. This
middleware sits inside the audit, CORS and GZip middlewares (so they behave as before) and answers a
tile request itself only when it is certain the route would give the very same response:

* a method the tile route accepts, and a path the app routes to it (learnt from the first tile
  request the app routed: the route object, its template and its methods);
* anonymous (no ``X-API-Key`` or ``X-GeoShare-Embed`` header, no ``key`` parameter), or a key in
  ``X-API-Key`` whose principal this worker already reuses (``api.auth``: authenticated within the
  minute, not bound to referrers or IPs, nothing announced on ``gs_access`` since); a plan made
  for one principal object is never used for another;
* the route's own steps give the answer (``routes.tiles.tile_plan``, then ``memory_answer``): the
  layer row in the layer cache, and the tile in the tile cache or the client's copy current (304),
  or a plain tile (no filter or time) read on the worker's asyncio pool
  (``routes.tiles.fetch_from_pool``), as the route would read it.

What a URL means (its checked address and parameters, cache key and headers) is worked out once by
the route's functions and kept as a ``Plan`` for as long as the layer's cached row is the same
object (any change to the layer replaces it), so a hit parses nothing and allocates little: a plan
lookup, the row identity check, one tile cache lookup and the two ASGI messages.

Anything else — a filtered miss, a key to check, an unknown parameter, a bad address, a layer the
reader may not read, a failed read — goes on to the app untouched, and the route gives its usual
answer or problem.

For the audit middleware outside it, a hit leaves in ``scope`` what routing and the route would: the
matched route, the path parameters, and in the request state the principal and (for a 200) one tile
served, so hits are audited and rate limited exactly as before.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from geoshare.access import keys
from geoshare.access.identity import Principal
from geoshare.api.auth import ANONYMOUS, KEY_PARAM, reused_principal
from geoshare.api.routes import tiles
from geoshare.services.layer_cache import layer_cache
from layers.model import LayerInfo
from layers.tiles.cache import TileKey

#: tile URLs whose plan a worker keeps (~2 KB each, so ~8 MB); the least recently used go first
MAX_PLANS = 4096
_PREFIX = "/collections/"
_SEGMENTS = 8  # "", "collections", id, "tiles", tms, z, row, col
#: a key in this header is served here when this worker already holds its principal (``reader``)
_KEY_HEADER = b"x-api-key"
#: embed-vouched requests: the route must check the ticket
_EMBED = b"x-geoshare-embed"
_IF_NONE_MATCH = b"if-none-match"
_CONTENT_TYPE = (b"content-type", tiles.MVT.encode("latin-1"))
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
    raw: tuple[tuple[bytes, bytes], ...]  # the same, encoded as ``Response`` encodes them
    add_length: bool  # ``Response`` adds Content-Length (and Content-Type) unless given
    add_type: bool
    path_params: dict[str, str]


def encode_headers(headers: dict[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    """``headers`` as ``starlette.responses.Response`` puts them on the wire (before length, type)."""
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


class TileFastPath:
    """Pure ASGI; a request that is not a hit costs a look at its path (and, for a tile path, its
    headers and a plan lookup) before it goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.route: Any = None  # the tile route, once the app has routed a tile request to it
        self.methods: frozenset[str] = frozenset()
        self.plans: OrderedDict[tuple[str, bytes], Plan] = OrderedDict()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = self._hit(scope) if self.route is not None else None
        answer = None
        if found is not None:
            answer, plan = found
            if answer is None and tiles.is_plain(plan.tile.request):
                answer = await self._fetch(scope["app"].state, plan)
        if answer is None:
            await self.app(scope, receive, send)
            if self.route is None and scope.get("endpoint") is tiles.tile:
                self._learn(scope)
            return
        status, body, _ = answer
        scope["route"] = self.route
        scope["endpoint"] = tiles.tile
        scope["path_params"] = dict(plan.path_params)
        state = scope.setdefault("state", {})
        state["principal"] = plan.who  # what the ``principal`` dependency leaves for the audit
        raw = list(plan.raw)
        if status != 304:
            state["audit_count"] = 1  # tiles served
            if plan.add_length:
                raw.append((b"content-length", str(len(body)).encode("latin-1")))
            if plan.add_type:
                raw.append(_CONTENT_TYPE)
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})

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
        """Take the route (and its methods) from a request the app itself routed to the tile
        endpoint; a differently mounted route (another template) leaves the fast path off."""
        route = scope.get("route")
        if getattr(route, "path", None) == tiles.TILE_PATH:
            self.methods = frozenset(getattr(route, "methods", None) or ()) & {"GET", "HEAD"}
            self.route = route

    def _hit(self, scope: Scope) -> tuple[tuple[int, bytes, dict[str, str]] | None, Plan] | None:
        """The URL's plan and the answer from memory (None on a cache miss); None for anything the
        app must answer."""
        path: str = scope["path"]
        if not path.startswith(_PREFIX) or scope["method"] not in self.methods or scope.get("root_path"):
            return None
        if_none_match = key = None
        for name, value in scope["headers"]:
            if name == _EMBED:
                return None
            if name == _KEY_HEADER and key is None:
                key = value.decode("latin-1").strip()
            elif name == _IF_NONE_MATCH and if_none_match is None:
                if_none_match = value.decode("latin-1")  # the first one, as Request.headers.get
        state = scope["app"].state
        registry = layer_cache(state)
        who = ANONYMOUS if key is None else reader(registry, key)
        if who is None:
            return None
        memo = (path, scope["query_string"], key)
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
        return tiles.memory_answer(state, plan.key, plan.headers, if_none_match), plan

    @staticmethod
    def _plan(state: Any, path: str, query: bytes, who: Principal) -> Plan | None:
        """The URL's plan for ``who``, when the route would answer it from a cached layer row; None
        for anything else (a key in the URL, malformed, unreadable: the route's to refuse)."""
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
        key, headers = tile.key, tile.headers
        raw = encode_headers(headers)
        names = {name for name, _ in raw}
        path_params = {
            "collection_id": collection_id,
            "tms_id": tms_id,
            "tile_matrix": tile_matrix,
            "tile_row": tile_row,
            "tile_col": tile_col,
        }
        return Plan(
            cached,
            who,
            collection_id,
            tile,
            key,
            headers,
            raw,
            b"content-length" not in names,
            b"content-type" not in names,
            path_params,
        )


def reader(registry: Any, key: str) -> Principal | None:
    """The principal this worker reuses for ``key`` (as ``api.auth.principal`` would), or None when
    the key must be checked by the route: unknown here, bound to referrers or IPs (never reused),
    past its reuse time, or the worker not listening for access changes."""
    return reused_principal(registry, keys.digest(key)) if key else None


def install(app: Any) -> None:
    """Add the fast path innermost of the middlewares (call before every other ``add_middleware``):
    the audit, CORS and GZip middlewares then see its answers as they see the route's."""
    app.add_middleware(TileFastPath)
