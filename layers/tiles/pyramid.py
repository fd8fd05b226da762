"""Dense-tile pyramids: a layer version's heaviest vector tiles, rendered once and read by key.

Cutting a tile costs a few microseconds per feature, so the few tiles holding thousands of
features (low zooms, the city centre) take tens of milliseconds each, and they are the tiles every
map asks for: they set the database's load and the 99th percentile. ``layers.tiles.pyramid_build``
renders them after a version is published into ``layerdata."<version table>_tiles"``.

A request whose tile would be cut exactly like the stored ones (the same attributes in the same
order, no filter, no time, no area, the same feature limit and size budget, a set the pyramid
holds) reads the row;
``COALESCE`` falls back to cutting the tile in the same statement when there is none (PostgreSQL
runs the second sub-select only then), so light tiles cost what they always did, and a pyramid
still being built, or never built, changes nothing but speed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    LargeBinary,
    Text,
    bindparam,
    column,
    func,
    literal,
    select,
    table,
    text,
)
from sqlalchemy.sql.selectable import TableClause

from layers.model import LayerInfo, TilePyramid
from layers.tiles.budget import TileBudget

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


#: the tile's address in a stored-tile lookup, and the budget it must have been cut under, bound
#: by these names in statement templates
STORED_TILE_KEYS = ("stored_tms", "stored_z", "stored_x", "stored_y", "stored_gzip", "stored_raw")
#: the ``tms`` of the row naming the budget a pyramid's tiles were cut under (z 0, x gzip, y raw
#: bytes): a pyramid cut under another budget (or before budgets) answers nothing
BUDGET_ROW = "budget"
_TYPES = {
    "stored_tms": Text(),
    "stored_z": Integer(),
    "stored_x": Integer(),
    "stored_y": Integer(),
    "stored_gzip": Integer(),
    "stored_raw": Integer(),
}


def stored_tile_params(tile: TileRequest, budget: TileBudget) -> dict[str, Any]:
    return {
        "stored_tms": tile.tms_id,
        "stored_z": tile.z,
        "stored_x": tile.x,
        "stored_y": tile.y,
        "stored_gzip": budget.gzip_bytes,
        "stored_raw": budget.raw_bytes,
    }


def stored_tile(
    pyramid: TilePyramid, tile: TileRequest, budget: TileBudget, template: bool = False
) -> ColumnElement[Any]:
    """``(SELECT mvt FROM <pyramid> WHERE <tile> AND <cut under this budget>)``: NULL when the tile
    is not a dense one (the budget test is one primary-key probe, evaluated once)."""
    t = table_clause(pyramid.table)
    values = stored_tile_params(tile, budget)
    b = {
        k: bindparam(k, type_=_TYPES[k])
        if template
        else bindparam(k, values[k], type_=_TYPES[k], unique=True)
        for k in STORED_TILE_KEYS
    }
    marker = table_clause(pyramid.table).alias("budget_row")
    same_budget = (
        select(literal(1))
        .where(marker.c.tms == BUDGET_ROW, marker.c.z == 0, marker.c.x == b["stored_gzip"])
        .where(marker.c.y == b["stored_raw"])
        .exists()
    )
    return (
        select(t.c.mvt)
        .where(
            t.c.tms == b["stored_tms"], t.c.z == b["stored_z"], t.c.x == b["stored_x"], t.c.y == b["stored_y"]
        )
        .where(same_budget)
        .scalar_subquery()
    )


def prefer_stored(
    cut: ColumnElement[Any],
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str],
    area_wkb: bytes | None,
    feature_limit: int,
    budget: TileBudget,
    template: bool = False,
) -> ColumnElement[Any]:
    """``cut`` (the tile cut from the data), or the stored tile ahead of it when the pyramid answers
    the request: the cut is then only evaluated for a tile the pyramid does not hold."""
    pyramid = answers(layer, tile, hidden, area_wkb, feature_limit)
    if pyramid is None:
        return cut
    return func.coalesce(stored_tile(pyramid, tile, budget, template), cut)


def is_stored(
    layer: LayerInfo,
    tile: TileRequest,
    hidden: frozenset[str],
    area_wkb: bytes | None,
    feature_limit: int,
    budget: TileBudget,
    template: bool = False,
) -> ColumnElement[Any]:
    """Whether the tile statement answers from the pyramid: its tiles met the budget when they were
    rendered, so their bytes need no second look (``IS NOT NULL`` reads no stored bytes)."""
    pyramid = answers(layer, tile, hidden, area_wkb, feature_limit)
    if pyramid is None:
        return literal(False)
    return stored_tile(pyramid, tile, budget, template).is_not(None)


def stored_full_detail_zoom(
    conn: Connection, layer: LayerInfo, tms_id: str, budget: TileBudget
) -> int | None:
    """The full-detail zoom the current version's pyramid build found for ``tms_id`` under
    ``budget`` (``pyramid_build.build``), if it did."""
    doc = conn.execute(
        text("SELECT tile_pyramid FROM gs.layer WHERE id = :id AND current_version = :v"),
        {"id": layer.id, "v": layer.current_version},
    ).scalar()
    if not doc or int(doc.get("version", -1)) != layer.current_version:
        return None
    if doc.get("budget") != [budget.gzip_bytes, budget.raw_bytes]:
        return None
    found = (doc.get("full_detail_zoom") or {}).get(tms_id)
    return int(found) if found is not None else None
