"""The web portal and the embed kit: HTML pages, ``/embed``, the SDK and the static files.

Pages are thin: the server renders the chrome (language, navigation, asset URLs) from Jinja2
templates and the page's script fetches the public APIs with the visitor's own key, so a page
shows exactly what the APIs would show that visitor. ``GET /`` stays the OGC API landing page
for API clients: browsers (``Accept: text/html``) and ``f=html`` get the map instead.

Call ``install(app)`` once in the app factory: it adds these routes, the glyph endpoint, the
``/static`` mount and the embed-ticket middleware, and puts the HTML ``/`` ahead of the landing page.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, FastAPI, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from geoshare.access.identity import Forbidden, Unauthenticated, authenticate, origin_of
from geoshare.api.auth import KEY_PARAM, request_origin
from geoshare.api.deps import base_url
from geoshare.api.ogc_params import check_params
from geoshare.api.routes import fonts, ogc
from geoshare.web import MAPLIBRE_JS, SDK_SOURCE, STATIC_DIR, TEMPLATES_DIR, asset_version, embed_ticket, i18n
from layers.errors import BadParameter, LayerError
from layers.publish import LAYER_ID

router = APIRouter(tags=["portal"], include_in_schema=False)

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=300"
MAX_EMBED_LAYERS = 10
MAX_ZOOM = 22.0
MAX_LAT = 85.05112878
BASEMAPS = ("light", "dark")
EMBED_PARAMS = frozenset({"layers", "center", "zoom", "basemap", KEY_PARAM, "lang"})
_JSON_TYPES = ("application/json", "application/geo+json", "application/problem+json")
_HTML_TYPES = ("text/html", "application/xhtml+xml")
_CSP_PORTAL = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "worker-src blob:; child-src blob:; connect-src 'self'; frame-src 'self'; frame-ancestors 'self'"
)
_CSP_EMBED = _CSP_PORTAL.replace("frame-ancestors 'self'", "frame-ancestors *")


# -- rendering ---------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _templates() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _prefix(base: str) -> str:
    """The path the service is mounted under (empty at the root), for links inside pages."""
    return urlsplit(base).path.rstrip("/")


def page_lang(request: Request) -> tuple[str, bool]:
    """The page language and whether it was chosen now (``?lang=``: remembered in a cookie)."""
    raw = request.query_params.get("lang")
    if raw is not None:
        lang = i18n.normalise(raw)
        if lang is None:
            raise BadParameter(f"lang must be one of {', '.join(i18n.LANGS)}, got {raw!r}", field="lang")
        return lang, True
    return i18n.normalise(request.cookies.get(i18n.COOKIE)) or i18n.DEFAULT_LANG, False


def _switch_url(request: Request, lang: str) -> str:
    other = "en" if lang == "zh-CN" else "zh-CN"
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", other)]
    return f"{request.url.path}?{urlencode(query)}"


def render(
    request: Request,
    template: str,
    page: str,
    *,
    status: int = 200,
    csp: str = _CSP_PORTAL,
    config: dict[str, Any] | None = None,
    **context: Any,
) -> HTMLResponse:
    lang, chosen = page_lang(request)
    base = base_url(request)
    prefix = _prefix(base)
    version = asset_version()
    t = i18n.translator(lang)
    page_config = {
        "base": base,
        "prefix": prefix,
        "lang": lang,
        "page": page,
        "version": version,
        "messages": i18n.messages(lang),
        **(config or {}),
    }
    html = (
        _templates()
        .get_template(template)
        .render(
            t=t,
            lang=lang,
            page=page,
            base=base,
            prefix=prefix,
            static=lambda path: f"{prefix}/static/{path}?v={version}",
            sdk_url=f"{prefix}/sdk/geoshare.js?v={version}",
            switch_url=_switch_url(request, lang),
            config=page_config,
            **context,
        )
    )
    headers = {"Content-Security-Policy": csp, "Cache-Control": "no-store", "Vary": "Accept, Cookie"}
    response = HTMLResponse(html, status_code=status, headers=headers)
    if chosen:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


# -- content negotiation at / ------------------------------------------------------------------------


def _accept_q(accept: str, types: tuple[str, ...]) -> tuple[float, int]:
    """Best quality the Accept header gives any of ``types``, and where it first appears."""
    best, position = 0.0, 10_000
    for i, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        if media.lower() not in types:
            continue
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > best:
            best, position = q, min(position, i)
    return best, position


def wants_html(request: Request) -> bool:
    """``f=html`` or an Accept header that prefers HTML to JSON (what browsers send); everything
    else, ``*/*`` and no Accept at all included, keeps getting the OGC landing page as JSON."""
    f = request.query_params.get("f")
    if f is not None:
        return f.lower() in ("html", "text/html")
    accept = request.headers.get("accept", "")
    html_q, html_at = _accept_q(accept, _HTML_TYPES)
    json_q, json_at = _accept_q(accept, _JSON_TYPES)
    return html_q > 0 and (html_q > json_q or (html_q == json_q and html_at < json_at))


def _page_params(request: Request, allowed: frozenset[str] = frozenset({"lang"})) -> None:
    check_params(request.query_params, allowed)


def home(request: Request) -> Response:
    """``/``: the map for browsers, the OGC API landing page (JSON) for API clients."""
    if not wants_html(request):
        return ogc.landing_page(request, base_url(request))
    _page_params(request, frozenset({"lang", "f"}))
    return render(request, "map.html", "map")


# -- pages -------------------------------------------------------------------------------------------


@router.get("/map")
def map_page(request: Request) -> Response:
    _page_params(request)
    return render(request, "map.html", "map")


@router.get("/portal/catalog")
def catalog_page(request: Request) -> Response:
    _page_params(request, frozenset({"lang", "q", "department", "theme", "class"}))
    return render(request, "catalog.html", "catalog")


@router.get("/portal/layers/{layer_id}")
def layer_page(layer_id: str, request: Request) -> Response:
    _page_params(request)
    if not LAYER_ID.match(layer_id):
        raise BadParameter(f"{layer_id!r} is not a layer id", field="layer_id")
    return render(request, "layer.html", "layer", config={"layerId": layer_id}, layer_id=layer_id)


@router.get("/portal/geocode")
def geocode_page(request: Request) -> Response:
    _page_params(request, frozenset({"lang", "address"}))
    return render(request, "geocode.html", "geocode")


def _layer_param(request: Request) -> str | None:
    """An optional ``layer`` query parameter (a layer id the page starts from)."""
    raw = request.query_params.get("layer")
    if raw is None or raw == "":
        return None
    if not LAYER_ID.match(raw):
        raise BadParameter(f"{raw!r} is not a layer id", field="layer")
    return raw


@router.get("/portal/signin")
def signin_page(request: Request) -> Response:
    """Sign in with a department key: the page checks it with ``/whoami`` and keeps it in this
    browser (``localStorage``), never in a cookie, so the server stays stateless."""
    _page_params(request, frozenset({"lang", "next"}))
    after = request.query_params.get("next")
    if after is not None and not (after.startswith("/") and not after.startswith("//") and "\\" not in after):
        raise BadParameter("next must be a path on this site, e.g. /portal/publish", field="next")
    return render(request, "signin.html", "signin", config={"next": after})


@router.get("/portal/publish")
def publish_page(request: Request) -> Response:
    """Upload, check (a dry run naming every problem's feature or line), then publish."""
    _page_params(request, frozenset({"lang", "layer"}))
    layer_id = _layer_param(request)
    return render(request, "publish.html", "publish", config={"layerId": layer_id}, layer_id=layer_id)


@router.get("/portal/agreements")
def agreements_page(request: Request) -> Response:
    _page_params(request, frozenset({"lang", "layer"}))
    layer_id = _layer_param(request)
    return render(request, "agreements.html", "agreements", config={"layerId": layer_id}, layer_id=layer_id)


@router.get("/portal/usage")
def usage_page(request: Request) -> Response:
    _page_params(request, frozenset({"lang", "from", "to", "layer", "department"}))
    return render(request, "usage.html", "usage")


@router.get("/portal/batch")
def batch_page(request: Request) -> Response:
    _page_params(request, frozenset({"lang", "job"}))
    job = request.query_params.get("job")
    if job is not None and not re.fullmatch(r"[0-9a-fA-F-]{32,36}", job):
        raise BadParameter(f"{job!r} is not a job id", field="job")
    return render(request, "batch.html", "batch", config={"job": job})


@router.get("/sdk")
def sdk_page(request: Request) -> Response:
    _page_params(request)
    return render(request, "sdk.html", "sdk")


# -- the SDK -----------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def sdk_bundle() -> bytes:
    """MapLibre (UMD, defines ``maplibregl``) followed by the GeoShare SDK: one script tag, and
    ``GeoShare.map`` can return the map synchronously."""
    sdk = SDK_SOURCE.read_text(encoding="utf-8").replace("__GEOSHARE_VERSION__", asset_version())
    return MAPLIBRE_JS.read_bytes() + b"\n;\n" + sdk.encode()


@router.get("/sdk/geoshare.js")
def sdk_script(request: Request) -> Response:
    _page_params(request, frozenset({"v"}))
    version = asset_version()
    etag = f'"{version}"'
    current = request.query_params.get("v") == version
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE if current else REVALIDATE}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(sdk_bundle(), media_type="text/javascript; charset=utf-8", headers=headers)


# -- /embed ------------------------------------------------------------------------------------------


def _single(params: QueryParams, name: str) -> str | None:
    values = params.getlist(name)
    if len(values) > 1:
        raise BadParameter(f"parameter {name!r} given more than once", field=name)
    return values[0] if values else None


def parse_center(raw: str | None) -> tuple[float, float] | None:
    if raw is None:
        return None
    parts = raw.split(",")
    try:
        lon, lat = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        lon = lat = math.nan
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise BadParameter(f"center must be 'lon,lat' in degrees, got {raw!r}", field="center")
    if not (-180 <= lon <= 180 and -MAX_LAT <= lat <= MAX_LAT):
        raise BadParameter(
            f"center {raw!r} is outside the map: longitude -180..180, latitude ±{MAX_LAT:.2f}", field="center"
        )
    return lon, lat


def parse_zoom(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        zoom = float(raw)
    except ValueError:
        zoom = math.nan
    if not (math.isfinite(zoom) and 0 <= zoom <= MAX_ZOOM):
        raise BadParameter(f"zoom must be a number within 0..{MAX_ZOOM:g}, got {raw!r}", field="zoom")
    return zoom


def parse_layers(raw: str | None) -> list[str]:
    if raw is None or not raw.strip():
        return []
    ids = [p.strip() for p in raw.split(",") if p.strip()]
    for layer_id in ids:
        if not LAYER_ID.match(layer_id):
            raise BadParameter(f"{layer_id!r} in layers is not a layer id", field="layers")
    if len(ids) > MAX_EMBED_LAYERS:
        raise BadParameter(f"at most {MAX_EMBED_LAYERS} layers in one embed", field="layers")
    return list(dict.fromkeys(ids))


def parse_basemap(raw: str | None) -> str:
    if raw is None or raw == "":
        return "light"
    if raw in BASEMAPS or LAYER_ID.match(raw):  # an imagery id has the layer id's shape
        return raw
    raise BadParameter(f"basemap must be light, dark or an imagery id, got {raw!r}", field="basemap")


def _check_key(request: Request, key: str) -> tuple[str | None, LayerError | None]:
    """Authenticate ``key`` for the page that frames the embed (its Referer); returns the prefix,
    or the refusal."""
    client_ip = request.client.host if request.client else None
    try:
        with request.app.state.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            who = authenticate(conn, key, referrer=request_origin(request), client_ip=client_ip)
    except (Unauthenticated, Forbidden) as exc:
        return None, exc
    return who.key_prefix, None


@router.get("/embed")
async def embed_page(request: Request) -> Response:
    params = request.query_params
    for name in params:
        if name not in EMBED_PARAMS:
            raise BadParameter(
                f"unknown parameter {name!r}; /embed takes {', '.join(sorted(EMBED_PARAMS))}", field=name
            )
    layers = parse_layers(_single(params, "layers"))
    center = parse_center(_single(params, "center"))
    zoom = parse_zoom(_single(params, "zoom"))
    basemap = parse_basemap(_single(params, "basemap"))
    key = _single(params, KEY_PARAM)
    ticket = None
    if key:
        prefix, refusal = await run_in_threadpool(_check_key, request, key.strip())
        if refusal is not None:
            return _refused(request, refusal)
        origin = origin_of(request_origin(request))
        if prefix and origin:
            secret = await run_in_threadpool(embed_ticket.secret_for, request.app.state)
            ticket = embed_ticket.issue(secret, prefix, origin, layers, basemap)
    config = {
        "layers": layers,
        "center": list(center) if center else None,
        "zoom": zoom,
        "basemap": basemap,
        "key": key.strip() if key else None,
        "ticket": ticket,
    }
    return render(request, "embed.html", "embed", csp=_CSP_EMBED, config=config)


def _refused(request: Request, refusal: LayerError) -> Response:
    status = refusal.status
    reason = "embed.refused_unauthenticated" if status == 401 else "embed.refused_forbidden"
    return render(
        request,
        "refused.html",
        "embed",
        status=status,
        csp=_CSP_EMBED,
        reason=reason,
        detail=refusal.detail,
    )


# -- static files ------------------------------------------------------------------------------------


class VersionedStatic(StaticFiles):
    """Static files, cached for a year when the URL carries the asset version (``?v=``), briefly
    otherwise."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        query = dict(re.findall(r"(?:^|&)([^=&]+)=([^&]*)", scope.get("query_string", b"").decode("latin-1")))
        response.headers["Cache-Control"] = IMMUTABLE if query.get("v") == asset_version() else REVALIDATE
        return response


# -- wiring ------------------------------------------------------------------------------------------


def install(app: FastAPI) -> None:
    """Add the portal to ``app`` (idempotent): pages, glyphs, static files, embed tickets."""
    if getattr(app.state, "portal_installed", False):
        return
    app.state.portal_installed = True
    app.include_router(router)
    app.include_router(fonts.router)
    app.mount("/static", VersionedStatic(directory=STATIC_DIR), name="static")
    app.add_middleware(embed_ticket.EmbedTicketMiddleware)
    # ahead of the OGC landing page, which it answers for every non-HTML request
    app.router.routes.insert(0, Route("/", home, methods=["GET", "HEAD"], include_in_schema=False))
