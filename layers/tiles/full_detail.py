"""A layer's full-detail zoom: the lowest zoom from which no tile leaves a feature out.

Found by the pyramid build when it renders a version's dense tiles and stored with it
(``pyramid.stored_full_detail_zoom``); for a layer without one, found here once per version,
reader scope and budget: if the whole layer in the set's first tile fits, every zoom is whole;
otherwise the densest tile of each zoom (one grouped scan) is cut from the deepest zoom up until
one is thinned.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import Connection

from layers.model import LayerInfo
from layers.tiles.budget import TileBudget, is_thinned
from layers.tiles.matrixsets import get_tms
from layers.tiles.mvt import TileRequest, fetch_tile
from layers.tiles.pyramid import stored_full_detail_zoom
from layers.tiles.pyramid_build import DEFAULT_MAX_ZOOM, dense_tiles

_FOUND: dict[tuple[object, ...], int] = {}


def full_detail_zoom(
    conn: Connection,
    layer: LayerInfo,
    tms_id: str,
    budget: TileBudget,
    hidden: frozenset[str],
    feature_limit: int,
) -> int:
    stored = stored_full_detail_zoom(conn, layer, tms_id, budget)
    if stored is not None:
        return stored
    key = (layer.id, layer.table_name, tms_id, budget, hidden, feature_limit)
    if key not in _FOUND:
        _FOUND[key] = _compute(
            conn, dataclasses.replace(layer, tile_pyramid=None), tms_id, budget, hidden, feature_limit
        )
    return _FOUND[key]


def _compute(
    conn: Connection,
    layer: LayerInfo,
    tms_id: str,
    budget: TileBudget,
    hidden: frozenset[str],
    feature_limit: int,
) -> int:
    tms = get_tms(tms_id)
    if not layer.table_name:
        return tms.minzoom
    densest: dict[int, tuple[int, int]] = {}
    for z, col, row, _ in dense_tiles(conn, layer, tms_id, min(DEFAULT_MAX_ZOOM, tms.maxzoom), 1):
        densest.setdefault(z, (col, row))  # densest first

    def thinned(z: int) -> bool:
        col, row = densest[z]
        return is_thinned(
            fetch_tile(conn, layer, TileRequest(tms_id, z, col, row), hidden, None, feature_limit, budget)
        )

    if tms.minzoom not in densest or not thinned(tms.minzoom):
        return tms.minzoom
    for z in sorted(densest, reverse=True):
        if thinned(z):
            return z + 1
    return tms.minzoom
