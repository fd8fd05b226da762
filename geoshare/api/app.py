"""The FastAPI application factory (``uvicorn geoshare.api.app:create_app --factory``)."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from starlette.types import ASGIApp

from geoshare import __version__
from geoshare.api import (
    allow_header,
    audit_middleware,
    auth,
    front_audit,
    http_policy,
    input_text,
    openapi,
    outage,
    problems,
    tile_fastpath,
)
from geoshare.api.routes import (
    admin,
    admin_areas,
    agreements,
    basemap,
    catalog,
    compat,
    export,
    geocode,
    health,
    imagery,
    jobs,
    layers,
    ogc,
    places,
    portal,
    raster,
    records,
    reverse,
    tiles,
    usage,
    wmts,
)
from geoshare.db.engine import make_engine
from geoshare.front import gate
from geoshare.jobs import geocode_job
from geoshare.services import geocoding
from geoshare.services.layer_cache import layer_cache
from geoshare.settings import Settings, get_settings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    geocode_job.recover_stale(app.state.engine)  # jobs of a worker that died are failed, not left running
    geocoding.holder(app.state).warm_up()  # build the address index while the first requests arrive
    layer_cache(app.state)  # start listening for layer changes before the first request
    front = front_audit.start(app)  # audit what the nginx front answers itself, when there is one
    gate.start(app.state)  # and keep its cache's gate: what it may still answer by itself
    yield
    if front is not None:
        front.close()
    layer_cache(app.state).stop()
    if getattr(app.state, "async_pool", None) is not None:
        await app.state.async_pool.close()
    geocode_job.stop_jobs(app)
    app.state.engine.dispose()


class GeoShareApp(FastAPI):
    """FastAPI with the tile fast path (``api.tile_fastpath``) in front of its whole middleware
    stack, FastAPI's own error, telemetry and body-limit layers included: a cached tile needs none
    of them, and the fast path does the CORS, compression, rate-limit and audit work itself by the
    same rules. ``tile_fast_path = False`` builds the app without it (tests compare the two)."""

    tile_fast_path = True

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return tile_fastpath.TileFastPath(stack) if self.tile_fast_path else stack


def _telemetry(settings: Settings) -> dict[str, Any]:
    """FastAPI's OpenTelemetry bridge switched off unless the settings ask for it (FastAPI releases
    before the bridge take no such argument)."""
    if settings.telemetry or "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = GeoShareApp(
        lifespan=_lifespan,
        title="GeoShare",
        version=__version__,
        description="The city's shared base map, address database and departmental layers "
        "(OGC API – Features, CRS, CQL2).",
        openapi_url="/api",
        docs_url="/api.html",
        **_telemetry(settings),
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url, settings.pool_size)
    app.add_middleware(input_text.RefuseControlCharacters)  # innermost: audited, limited, CORS'd
    app.add_middleware(
        GZipMiddleware,
        minimum_size=http_policy.GZIP_MINIMUM_SIZE,
        compresslevel=http_policy.GZIP_LEVEL,
        thread_minimum_size=http_policy.GZIP_THREAD_MINIMUM_SIZE,
    )
    audit_middleware.install(app)  # outermost: counts bytes sent, refuses over-limit calls first
    problems.install(app)
    openapi.install(app)  # the API definition as OpenAPI 3.0.3, every problem answer documented
    outage.install(app)  # a database outage: 503s audited as such, two log lines, no tracebacks
    allow_header.install(app)  # a 405 keeps its Allow header (problems' handler drops it)
    auth.install_log_redaction()  # keys in access logs cut to their prefix
    for module in (
        health,
        raster,  # before the vector tile routes, which would take 5.png for a tile column
        wmts,
        ogc,
        tiles,
        basemap,
        catalog,
        records,
        layers,
        export,
        geocode,
        places,
        reverse,
        admin_areas,
        compat,
        jobs,
        admin,
        agreements,
        imagery,
        usage,
    ):
        app.include_router(module.router)
    portal.install(app)  # pages, glyphs, static files; the HTML "/" ahead of the OGC landing page
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(http_policy.CORS_ALLOW_ORIGINS),
        allow_methods=list(http_policy.CORS_ALLOW_METHODS),
        allow_headers=list(http_policy.CORS_ALLOW_HEADERS),
        expose_headers=list(http_policy.CORS_EXPOSE_HEADERS),
    )
    return app
