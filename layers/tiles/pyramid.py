"""Dense-tile pyramids: a layer version's heaviest vector tiles, rendered once and read by key.

Cutting a tile costs a few microseconds per feature, so the few tiles holding thousands of
features (low zooms, the city centre) take tens of milliseconds each, and they are the tiles every
map asks for: they set the database's load and the 99th percentile. ``layers.tiles.pyramid_build``
renders them after a version is published into ``layerdata."<version table>_tiles"``.

A request whose tile would be cut exactly like the stored ones (the same attributes in the same
order, no filter, no time, no area, the same feature limit, a set the pyramid holds) reads the row;
``COALESCE`` falls back to cutting the tile in the same statement when there is none (PostgreSQL
runs the second sub-select only then), so light tiles cost what they always did, and a pyramid
still being built, or never built, changes nothing but speed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Integer, LargeBinary, Text, bindparam, column, func, select, table
from sqlalchemy.sql.selectable import TableClause

from layers.model import LayerInfo, TilePyramid

if TYPE_CHECKING:
    from layers.tiles.mvt import TileRequest


def pyramid_table(layer: LayerInfo) -> str:
    if not layer.table_name:
        raise ValueError(f"layer {layer.id} has no published version")
    return f"{layer.table_name}_tiles"


def table_clause(name: str) -> TableClause:
    return table(
        name,
        column("tms", Text()),
        column("z", Integer()),
        column("x", Integer()),
        column("y", Integer()),
        column("mvt", LargeBinary()),
        schema="layerdata",
    )


def answers(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str],
    area_wkb: bytes | None,
    feature_limit: int,
) -> TilePyramid | None:
    """The pyramid whose stored tile is byte for byte what ``tile`` would be cut as, if any."""
    pyramid = layer.tile_pyramid
    if (
        pyramid is None
        or pyramid.version != layer.current_version
        or area_wkb is not None
        or tile.filter is not None
        or tile.interval is not None
        or feature_limit != pyramid.feature_limit
        or tile.tms_id not in pyramid.tms_ids
    ):
        return None
    if tile.properties is not None:
        names = tuple(dict.fromkeys(tile.properties))
    else:
        names = tuple(a.name for a in layer.attributes if a.name not in hidden)
    return pyramid if names == pyramid.attributes else None


#: the tile's address in a stored-tile lookup, bound by these names in statement templates
STORED_TILE_KEYS = ("stored_tms", "stored_z", "stored_x", "stored_y")


def stored_tile_params(tile: TileRequest) -> dict[str, Any]:
    return {"stored_tms": tile.tms_id, "stored_z": tile.z, "stored_x": tile.x, "stored_y": tile.y}


def stored_tile(pyramid: TilePyramid, tile: TileRequest, template: bool = False) -> ColumnElement[Any]:
    """``(SELECT mvt FROM <pyramid> WHERE <tile>)``: NULL when the tile is not a dense one."""
    t = table_clause(pyramid.table)
    values = stored_tile_params(tile)
    types = {"stored_tms": Text(), "stored_z": Integer(), "stored_x": Integer(), "stored_y": Integer()}
    b = {
        k: bindparam(k, type_=types[k]) if template else bindparam(k, values[k], type_=types[k], unique=True)
        for k in STORED_TILE_KEYS
    }
    return (
        select(t.c.mvt)
        .where(
            t.c.tms == b["stored_tms"], t.c.z == b["stored_z"], t.c.x == b["stored_x"], t.c.y == b["stored_y"]
        )
        .scalar_subquery()
    )


def prefer_stored(
    cut: ColumnElement[Any],
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str],
    area_wkb: bytes | None,
    feature_limit: int,
    template: bool = False,
) -> ColumnElement[Any]:
    """``cut`` (the tile cut from the data), or the stored tile ahead of it when the pyramid answers
    the request: the cut is then only evaluated for a tile the pyramid does not hold."""
    pyramid = answers(layer, tile, hidden, area_wkb, feature_limit)
    if pyramid is None:
        return cut
    return func.coalesce(stored_tile(pyramid, tile, template), cut)
