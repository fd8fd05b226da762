"""Rendering each published version's dense tiles (``layers.tiles.pyramid_build``) after publishing.

The pyramid is cut as most readers see the layer: without its restricted fields on a public or
shared layer (anonymous readers and other departments), with every field on a restricted layer
(its owner). Other readers get their tiles cut on request, as before.

Publishing over HTTP starts the build on a daemon thread once the publish has committed, so the
answer does not wait for it; the CLI builds in the foreground with a progress bar. Either way a
failure is logged and leaves the layer served as before: the pyramid is a speed-up, never the data.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from geoshare.settings import Settings
from layers.model import LayerInfo, TilePyramid
from layers.registry import TRUSTED, get_layer
from layers.tiles import pyramid_build
from layers.tiles.budget import TileBudget
from layers.tiles.pyramid_build import Progress

log = logging.getLogger("geoshare.tile_pyramids")


def tile_budget(settings: Settings) -> TileBudget:
    """The size budget of every layer's tiles, per request and in pyramids alike."""
    return TileBudget(settings.tile_budget_gzip_bytes, settings.tile_budget_raw_bytes)


def pyramid_hidden(layer: LayerInfo) -> frozenset[str]:
    """The fields the pyramid's tiles leave out: those most readers may not see."""
    return frozenset() if layer.sharing_class == "restricted" else frozenset(layer.restricted_fields)


def wanted(feature_count: int, settings: Settings) -> bool:
    """Worth building: pyramids on, and enough features for one tile to be dense."""
    least = settings.tile_pyramid_min_features
    return least > 0 and feature_count >= least


def build(
    engine: Engine, settings: Settings, layer_id: str, progress: Progress | None = None
) -> TilePyramid | None:
    """Render the current version's pyramid in one transaction: readers see it whole or not at all."""
    with engine.begin() as conn:
        layer = get_layer(conn, layer_id, TRUSTED)
        if not wanted(layer.feature_count, settings):
            return None
        pyramid = pyramid_build.build(
            conn,
            layer,
            hidden=pyramid_hidden(layer),
            tms_ids=settings.tile_pyramid_tms,
            max_zoom=settings.tile_pyramid_max_zoom,
            min_features=settings.tile_pyramid_min_features,
            feature_limit=settings.tile_feature_limit,
            budget=tile_budget(settings),
            progress=progress,
        )
        if pyramid is None:
            conn.rollback()  # nothing dense, or a newer version arrived: leave no table behind
            return None
    log.info(
        "layer %s v%s: %d dense tiles (%.1f MB) rendered in %.1fs",
        layer_id,
        pyramid.version,
        pyramid.tiles,
        pyramid.bytes / 1e6,
        pyramid.seconds,
    )
    return pyramid


def clear(engine: Engine, layer_id: str) -> None:
    with engine.begin() as conn:
        pyramid_build.clear(conn, get_layer(conn, layer_id, TRUSTED))


def build_in_background(engine: Engine, settings: Settings, layer_id: str, feature_count: int) -> bool:
    """Start the build on a daemon thread when the layer is large enough; True when started."""
    if not wanted(feature_count, settings):
        return False

    def run() -> None:
        try:
            build(engine, settings, layer_id)
        except Exception:  # noqa: BLE001 - tiles are still cut on request
            log.exception("rendering the dense tiles of layer %s failed", layer_id)

    threading.Thread(target=run, name=f"tile-pyramid-{layer_id}", daemon=True).start()
    return True
