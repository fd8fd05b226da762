"""Rendering a layer version's dense-tile pyramid (read by ``layers.tiles.pyramid``).

Counts come from one grouped scan for all zooms: the tile matrix sets are quadtrees with one origin,
so counts at the deepest zoom roll up to every coarser one by shifting the indices. Each tile holding
at least ``min_features`` (counted at the features' bounding-box centres) is rendered with the very
statement a request would run, passes over the size budget included (``fetch_tile``), so a stored
tile and a cut one are the same bytes.

The build also finds each set's full-detail zoom: one deeper than the deepest tile it had to thin
(a tile too light to be dense is far too light to exceed a budget). It is stored with the version's
pyramid document, beside the budget it holds for.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import orjson
from sqlalchemy import Connection, text

from layers import storage
from layers.model import LayerInfo, TilePyramid
from layers.registry import redact
from layers.tiles.budget import DEFAULT_BUDGET, TileBudget, is_thinned
from layers.tiles.matrixsets import MERCATOR_IDS, get_tms, tile_bounds
from layers.tiles.mvt import DEFAULT_FEATURE_LIMIT, TileRequest, fetch_tile
from layers.tiles.pyramid import BUDGET_ROW, pyramid_table, table_clause

DEFAULT_MIN_FEATURES = 1_000
DEFAULT_MAX_ZOOM = 16
_MERCATOR_HALF = 20037508.342789244  # metres from the central meridian to the antimeridian
_MAX_LAT = 85.05112878

Progress = Callable[[int, int], None]  # (tiles rendered, tiles to render)


def _projected_xy(tms_id: str) -> tuple[str, str]:
    """SQL for the x and y, in the set's CRS, of each row's bounding-box centre."""
    lon = "(ST_XMin(geom) + ST_XMax(geom)) / 2"
    lat = "(ST_YMin(geom) + ST_YMax(geom)) / 2"
    if tms_id not in MERCATOR_IDS:
        return lon, lat
    x = f"{lon} * {_MERCATOR_HALF / 180.0!r}"
    y = f"ln(tan(radians(90 + greatest(least({lat}, {_MAX_LAT}), -{_MAX_LAT})) / 2)) * 6378137.0"
    return x, y


def dense_tiles(
    conn: Connection, layer: LayerInfo, tms_id: str, max_zoom: int, min_features: int
) -> list[tuple[int, int, int, int]]:
    """(z, col, row, features) of every tile from the set's first level to ``max_zoom`` holding at
    least ``min_features`` features, densest first."""
    tms = get_tms(tms_id)
    max_zoom = min(max_zoom, tms.maxzoom)
    minx, miny, maxx, maxy = tile_bounds(tms, max_zoom, 0, 0)
    x, y = _projected_xy(tms_id)
    sql = f"""
        WITH cells AS (
            SELECT floor(({x} - :left) / :width)::bigint AS col,
                   floor((:top - {y}) / :height)::bigint AS row, count(*) AS n
            FROM {storage.qualified(layer.table_name or "")}
            WHERE geom IS NOT NULL
            GROUP BY 1, 2
        )
        SELECT z, col >> ({max_zoom:d} - z) AS col, row >> ({max_zoom:d} - z) AS row, sum(n)::bigint AS n
        FROM cells, generate_series({tms.minzoom:d}, {max_zoom:d}) AS z
        WHERE col >= 0 AND row >= 0
        GROUP BY 1, 2, 3
        HAVING sum(n) >= :min
        ORDER BY 4 DESC, 1, 2, 3
    """
    params = {
        "left": minx,
        "width": maxx - minx,
        "top": maxy,
        "height": maxy - miny,
        "min": min_features,
    }
    out = []
    for z, col, row, n in conn.execute(text(sql), params).all():
        matrix = tms.matrix(z)
        if col < matrix.matrixWidth and row < matrix.matrixHeight:
            out.append((int(z), int(col), int(row), int(n)))
    return out


def build(
    conn: Connection,
    layer: LayerInfo,
    *,
    hidden: frozenset[str] = frozenset(),
    tms_ids: tuple[str, ...] = ("WebMercatorQuad",),
    max_zoom: int = DEFAULT_MAX_ZOOM,
    min_features: int = DEFAULT_MIN_FEATURES,
    feature_limit: int = DEFAULT_FEATURE_LIMIT,
    budget: TileBudget = DEFAULT_BUDGET,
    progress: Progress | None = None,
) -> TilePyramid | None:
    """Render the current version's dense tiles as readers missing ``hidden`` see them and register
    them on ``gs.layer``, all in the caller's transaction. None when no tile is dense, or when the
    layer moved on to another version meanwhile (the caller should then roll back)."""
    started = time.perf_counter()
    version = layer.current_version
    if version is None or not layer.table_name:
        return None
    wanted = [
        (tms_id, *t) for tms_id in tms_ids for t in dense_tiles(conn, layer, tms_id, max_zoom, min_features)
    ]
    if not wanted:
        return None
    name = pyramid_table(layer)
    qualified = storage.qualified(name)
    conn.execute(text(f"DROP TABLE IF EXISTS {qualified}"))
    conn.execute(
        text(
            f"CREATE TABLE {qualified} (tms text NOT NULL, z integer NOT NULL, x integer NOT NULL, "
            "y integer NOT NULL, mvt bytea NOT NULL)"
        )
    )
    # cut from the data, never from the pyramid being replaced
    view = dataclasses.replace(redact(layer, hidden), tile_pyramid=None)
    target = table_clause(name)
    total_bytes = 0
    full_detail = {tms_id: get_tms(tms_id).minzoom for tms_id in tms_ids}
    for done, (tms_id, z, col, row, _) in enumerate(wanted, 1):
        data = fetch_tile(conn, view, TileRequest(tms_id, z, col, row), hidden, None, feature_limit, budget)
        conn.execute(target.insert().values(tms=tms_id, z=z, x=col, y=row, mvt=data))
        if is_thinned(data):
            full_detail[tms_id] = max(full_detail[tms_id], z + 1)
        total_bytes += len(data)
        if progress is not None:
            progress(done, len(wanted))
    marker = {"tms": BUDGET_ROW, "z": 0, "x": budget.gzip_bytes, "y": budget.raw_bytes, "mvt": b""}
    conn.execute(target.insert().values(**marker))
    conn.execute(text(f'ALTER TABLE {qualified} ADD CONSTRAINT "{name}_pkey" PRIMARY KEY (tms, z, x, y)'))
    conn.execute(text(f"ANALYZE {qualified}"))
    pyramid = TilePyramid(
        table=name,
        version=version,
        tms_ids=tuple(tms_ids),
        attributes=tuple(a.name for a in view.attributes),
        feature_limit=feature_limit,
        min_features=min_features,
        tiles=len(wanted),
        bytes=total_bytes,
        seconds=round(time.perf_counter() - started, 2),
    )
    registered = conn.execute(
        text(
            "UPDATE gs.layer SET tile_pyramid = CAST(:doc AS jsonb) "
            "WHERE id = :id AND current_version = :version RETURNING id"
        ),
        {
            "doc": orjson.dumps(document(pyramid, budget, full_detail)).decode(),
            "id": layer.id,
            "version": version,
        },
    ).first()
    return pyramid if registered is not None else None


def document(pyramid: TilePyramid, budget: TileBudget, full_detail: dict[str, int]) -> dict[str, object]:
    """The pyramid's registry document: what ``TilePyramid`` reads, plus the budget its tiles were
    cut under and each set's full-detail zoom (``pyramid.stored_full_detail_zoom``)."""
    return {
        **pyramid.as_json(),
        "budget": [budget.gzip_bytes, budget.raw_bytes],
        "full_detail_zoom": full_detail,
    }


def clear(conn: Connection, layer: LayerInfo) -> None:
    """Forget the current version's pyramid (requests cut every tile again) and drop its table."""
    conn.execute(text("UPDATE gs.layer SET tile_pyramid = NULL WHERE id = :id"), {"id": layer.id})
    if layer.table_name:
        conn.execute(text(f"DROP TABLE IF EXISTS {storage.qualified(pyramid_table(layer))}"))
