"""The FastAPI application factory (``uvicorn geoshare.api.app:create_app --factory``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware

from geoshare import __version__
from geoshare.api import audit_middleware, auth, problems, tile_fastpath
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
    portal,
    raster,
    reverse,
    tiles,
    usage,
    wmts,
)
from geoshare.db.engine import make_engine
from geoshare.jobs import geocode_job
from geoshare.services import geocoding
from geoshare.services.layer_cache import layer_cache
from geoshare.settings import Settings, get_settings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    geocode_job.recover_stale(app.state.engine)  # jobs of a worker that died are failed, not left running
    geocoding.holder(app.state).warm_up()  # build the address index while the first requests arrive
    layer_cache(app.state)  # start listening for layer changes before the first request
    yield
    layer_cache(app.state).stop()
    if getattr(app.state, "async_pool", None) is not None:
        await app.state.async_pool.close()
    geocode_job.stop_jobs(app)
    app.state.engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        lifespan=_lifespan,
        title="GeoShare",
        version=__version__,
        description="The city's shared base map, address database and departmental layers "
        "(OGC API – Features, CRS, CQL2).",
        openapi_url="/api",
        docs_url="/api.html",
    )
    app.state.settings = settings
    app.state.engine = make_engine(settings.database_url, settings.pool_size)
    tile_fastpath.install(app)  # innermost: cached anonymous tiles answered before FastAPI
    # level 9 (the default) costs ~4x the CPU of level 4 for a few percent smaller JSON
    app.add_middleware(GZipMiddleware, minimum_size=2048, compresslevel=4)
    audit_middleware.install(app)  # outermost: counts bytes sent, refuses over-limit calls first
    problems.install(app)
    auth.install_log_redaction()  # keys in access logs cut to their prefix
    for module in (
        health,
        raster,  # before the vector tile routes, which would take 5.png for a tile column
        wmts,
        ogc,
        tiles,
        basemap,
        catalog,
        layers,
        export,
        geocode,
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
    # embeds and the SDK on departments' own sites read tiles and geocode across origins; keys travel
    # in X-API-Key or ?key=, never cookies, so no credentials are allowed
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "HEAD"],
        allow_headers=["X-API-Key", "X-GeoShare-Embed"],
        expose_headers=["ETag", "Retry-After"],
    )
    return app
