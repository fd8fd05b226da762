"""Tile archives for offline use: MBTiles 1.3 (SQLite) and PMTiles v3 (one file, no server needed).

Vector tiles are stored gzip-compressed, as both specifications expect for MVT; identical tiles
(empty sea, a uniform district) are stored once.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer


@dataclass
class ArchiveInfo:
    name: str
    bounds: tuple[float, float, float, float]  # west, south, east, north (degrees)
    minzoom: int
    maxzoom: int
    vector_layers: list[dict[str, Any]] = field(default_factory=list)
    attribution: str = ""
    description: str = ""


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def write_mbtiles(path: Path, tiles: Iterable[tuple[int, int, int, bytes]], info: ArchiveInfo) -> int:
    """``tiles``: (z, x, y, mvt) in XYZ numbering; MBTiles rows are TMS (y flipped). Returns the count."""
    path.unlink(missing_ok=True)
    db = sqlite3.connect(path)
    try:
        db.executescript(
            """
            CREATE TABLE metadata (name text, value text);
            CREATE TABLE map (zoom_level integer, tile_column integer, tile_row integer, tile_id text);
            CREATE TABLE images (tile_id text PRIMARY KEY, tile_data blob);
            CREATE UNIQUE INDEX map_index ON map (zoom_level, tile_column, tile_row);
            CREATE VIEW tiles AS SELECT map.zoom_level, map.tile_column, map.tile_row, images.tile_data
                FROM map JOIN images ON images.tile_id = map.tile_id;
            """
        )
        west, south, east, north = info.bounds
        meta = {
            "name": info.name,
            "format": "pbf",
            "type": "overlay",
            "version": "1.3",
            "description": info.description,
            "attribution": info.attribution,
            "bounds": f"{west},{south},{east},{north}",
            "center": f"{(west + east) / 2},{(south + north) / 2},{info.minzoom}",
            "minzoom": str(info.minzoom),
            "maxzoom": str(info.maxzoom),
            "json": json.dumps({"vector_layers": info.vector_layers}, ensure_ascii=False),
        }
        db.executemany("INSERT INTO metadata VALUES (?, ?)", list(meta.items()))
        count = 0
        seen: set[str] = set()
        for z, x, y, data in tiles:
            blob = _gzip(data)
            tile_id = hashlib.md5(blob).hexdigest()
            if tile_id not in seen:
                db.execute("INSERT OR IGNORE INTO images VALUES (?, ?)", (tile_id, blob))
                seen.add(tile_id)
            db.execute("INSERT INTO map VALUES (?, ?, ?, ?)", (z, x, (1 << z) - 1 - y, tile_id))
            count += 1
        db.commit()
        return count
    finally:
        db.close()


def write_pmtiles(path: Path, tiles: Iterable[tuple[int, int, int, bytes]], info: ArchiveInfo) -> int:
    """``tiles``: (z, x, y, mvt) in XYZ numbering (Web Mercator). Returns the count."""
    entries = sorted((zxy_to_tileid(z, x, y), _gzip(data)) for z, x, y, data in tiles)
    west, south, east, north = info.bounds
    with path.open("wb") as f:
        writer = Writer(f)
        for tile_id, blob in entries:
            writer.write_tile(tile_id, blob)
        writer.finalize(
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_zoom": info.minzoom,
                "max_zoom": info.maxzoom,
                "min_lon_e7": int(west * 1e7),
                "min_lat_e7": int(south * 1e7),
                "max_lon_e7": int(east * 1e7),
                "max_lat_e7": int(north * 1e7),
                "center_zoom": info.minzoom,
                "center_lon_e7": int((west + east) / 2 * 1e7),
                "center_lat_e7": int((south + north) / 2 * 1e7),
            },
            {
                "name": info.name,
                "description": info.description,
                "attribution": info.attribution,
                "vector_layers": info.vector_layers,
            },
        )
    return len(entries)
