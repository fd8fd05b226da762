"""Offline packages and pre-seeding: base map plus chosen layers over an area and zoom range.

Tiles are composed exactly as ``/basemap/tiles`` composes them (the same parts, access rules and
statement), with each extra layer added as one more MVT layer named after its id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import morecantile
from sqlalchemy import Engine

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.services.basemap import basemap_config, readable_parts
from geoshare.services.tile_store import tile_store
from geoshare.settings import Settings
from layers.basemap.config import MAX_ZOOM, BasemapLayer
from layers.basemap.tiles import Part, fetch_basemap_tile, tile_key
from layers.errors import InvalidInput
from layers.registry import get_layer, redact
from layers.tiles.archive import ArchiveInfo, write_mbtiles, write_pmtiles

TMS = "WebMercatorQuad"
MAX_TILES = 2_000_000
_ROLE = {"point": "poi", "multipoint": "poi", "linestring": "road", "multilinestring": "road"}
Progress = Callable[[int, int], None]


def parse_bbox(raw: str) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in raw.split(","))
    except ValueError:
        raise InvalidInput("bbox is west,south,east,north in degrees", field="bbox") from None
    if not (-180 <= west < east <= 180 and -85.06 <= south < north <= 85.06):
        raise InvalidInput("bbox must be west<east and south<north within Web Mercator's range", field="bbox")
    return west, south, east, north


def parse_zooms(raw: str) -> tuple[int, int]:
    low, _, high = raw.partition("-")
    try:
        zmin, zmax = int(low), int(high or low)
    except ValueError:
        raise InvalidInput("zooms is a range like 10-16", field="zooms") from None
    if not 0 <= zmin <= zmax <= MAX_ZOOM:
        raise InvalidInput(f"zooms must lie within 0-{MAX_ZOOM}, low to high", field="zooms")
    return zmin, zmax


def tiles_in(bbox: tuple[float, float, float, float], zooms: tuple[int, int]) -> list[tuple[int, int, int]]:
    tms = morecantile.tms.get(TMS)
    tiles = [(t.z, t.x, t.y) for t in tms.tiles(*bbox, zooms=list(range(zooms[0], zooms[1] + 1)))]
    if len(tiles) > MAX_TILES:
        raise InvalidInput(
            f"{len(tiles):,} tiles: narrow the bbox or the zooms (at most {MAX_TILES:,})", field="zooms"
        )
    return tiles


def layer_parts(engine: Engine, who: Principal, layer_ids: list[str]) -> list[Part]:
    """Extra layers as parts drawn at every zoom, with every attribute the reader may see."""
    parts = []
    with engine.connect() as conn:
        for layer_id in layer_ids:
            layer = get_layer(conn, layer_id, policy.visibility(who))  # NotFound names it
            hidden = policy.hidden_fields(who, layer)
            seen = redact(layer, hidden)
            config = BasemapLayer(
                name=layer.id,
                source=layer.id,
                role=_ROLE.get((layer.geometry_type or "").lower(), "area"),
                properties=tuple(a.name for a in seen.attributes),
            )
            parts.append(Part(config, seen, hidden, policy.area(who, layer)))
    return parts


def render(
    engine: Engine,
    parts: list[Part],
    tiles: list[tuple[int, int, int]],
    feature_limit: int,
    progress: Progress | None = None,
) -> Iterator[tuple[int, int, int, bytes]]:
    """Each tile's bytes (empty tiles skipped), one statement per tile."""
    with engine.connect() as conn:
        for i, (z, x, y) in enumerate(tiles, start=1):
            shown = [p for p in parts if p.config.in_zoom(z)]
            data = fetch_basemap_tile(conn, shown, TMS, z, x, y, feature_limit)
            if progress:
                progress(i, len(tiles))
            if data:
                yield z, x, y, data


def build_package(
    engine: Engine,
    settings: Settings,
    who: Principal,
    bbox: tuple[float, float, float, float],
    zooms: tuple[int, int],
    layer_ids: list[str],
    out: Path,
    progress: Progress | None = None,
) -> int:
    """Write ``out`` (.pmtiles or .mbtiles) atomically; returns the number of tiles written."""
    suffix = out.suffix.lower()
    if suffix not in (".pmtiles", ".mbtiles"):
        raise InvalidInput("the output must end in .pmtiles or .mbtiles", field="output")
    config = basemap_config(settings)
    with engine.connect() as conn:
        parts = readable_parts(conn, config, who)
    parts += layer_parts(engine, who, layer_ids)
    tiles = tiles_in(bbox, zooms)
    info = ArchiveInfo(
        name=config.title,
        bounds=bbox,
        minzoom=zooms[0],
        maxzoom=zooms[1],
        attribution="; ".join(
            dict.fromkeys(filter(None, [config.attribution, *(p.layer.licence for p in parts)]))
        ),
        description="GeoShare offline package: " + ", ".join(p.config.name for p in parts),
        vector_layers=[
            {
                "id": p.config.name,
                "description": p.layer.title,
                "minzoom": max(p.config.minzoom, zooms[0]),
                "maxzoom": min(p.config.maxzoom, zooms[1]),
                "fields": {n: "String" for n in p.config.tile_properties if p.layer.attribute(n)},
            }
            for p in parts
        ],
    )
    partial = out.with_name(out.name + ".partial")
    write = write_pmtiles if suffix == ".pmtiles" else write_mbtiles
    try:
        count = write(partial, render(engine, parts, tiles, settings.tile_feature_limit, progress), info)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return count


def seed(
    engine: Engine,
    settings: Settings,
    bbox: tuple[float, float, float, float],
    zooms: tuple[int, int],
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Render the base map's public tiles into the shared tile store; returns (rendered, already there).

    The tiles are the anonymous reader's, the only ones the store serves: the same parts and keys
    as ``/basemap/tiles/WebMercatorQuad`` computes for a request without a key."""
    store = tile_store(settings)
    if store is None:
        raise InvalidInput(
            "no tile store: set GEOSHARE_TILE_STORE to a directory", field="GEOSHARE_TILE_STORE"
        )
    tiles = tiles_in(bbox, zooms)
    with engine.connect() as conn:
        parts = readable_parts(conn, basemap_config(settings), Principal.anonymous())
        rendered = present = 0
        for i, (z, x, y) in enumerate(tiles, start=1):
            shown = [p for p in parts if p.config.in_zoom(z)]
            etag = tile_key(shown, TMS, z, x, y).etag()
            if store.get(TMS, z, x, y, etag) is not None:
                present += 1
            else:
                store.put(
                    TMS,
                    z,
                    x,
                    y,
                    etag,
                    fetch_basemap_tile(conn, shown, TMS, z, x, y, settings.tile_feature_limit),
                )
                rendered += 1
            if progress:
                progress(i, len(tiles))
    return rendered, present
