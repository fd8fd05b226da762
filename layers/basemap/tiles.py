"""A base map tile: every configured layer visible at the zoom, in one ``ST_AsMVT || ...`` statement."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, select

from layers.basemap.config import BasemapLayer
from layers.model import LayerInfo
from layers.tiles.cache import TileKey
from layers.tiles.mvt import TileRequest, concatenated, mvt_expression


@dataclass(frozen=True)
class Part:
    """One configured layer as the reader may tile it."""

    config: BasemapLayer
    layer: LayerInfo  # redacted of the reader's hidden fields
    hidden: frozenset[str]
    area: bytes | None


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def part_filter(config: BasemapLayer, z: int) -> str | None:
    """The CQL2 text the part is cut with at ``z``: the configured ``where`` and the classes shown."""
    clauses = [f"({config.where})"] if config.where else []
    classes = config.classes_at(z)
    if classes is not None:
        listed = ", ".join(_quote(c) for c in classes) if classes else "''"
        clauses.append(f'"{config.class_field}" IN ({listed})')
    return " AND ".join(clauses) or None


def part_request(part: Part, tms_id: str, z: int, x: int, y: int) -> TileRequest:
    names = [n for n in part.config.tile_properties if part.layer.attribute(n) is not None]
    return TileRequest(tms_id, z, x, y, properties=tuple(names), filter=part_filter(part.config, z))


@dataclass(frozen=True)
class BasemapKey:
    """Pins a base map tile's bytes: each part's layer version and reader scope."""

    parts: tuple[tuple[str, TileKey], ...]

    def etag(self) -> str:
        return '"b' + hashlib.sha256(repr(self).encode()).hexdigest()[:31] + '"'


def tile_key(parts: list[Part], tms_id: str, z: int, x: int, y: int) -> BasemapKey:
    return BasemapKey(
        tuple(
            (p.config.name, TileKey.of(p.layer, part_request(p, tms_id, z, x, y), p.hidden, p.area))
            for p in parts
        )
    )


def fetch_basemap_tile(
    conn: Connection, parts: list[Part], tms_id: str, z: int, x: int, y: int, feature_limit: int
) -> bytes:
    """All parts' MVT layers in one round trip (MVT layers concatenate byte-wise)."""
    if not parts:
        return b""
    exprs = [
        mvt_expression(
            p.layer, part_request(p, tms_id, z, x, y), p.hidden, p.area, feature_limit, p.config.name
        )
        for p in parts
    ]
    return bytes(conn.execute(select(concatenated(exprs))).scalar() or b"")
