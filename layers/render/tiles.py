"""Raster tiles of one layer or of the base map: features from ``features``, drawn by ``engine``."""

from __future__ import annotations

from sqlalchemy import Connection

from layers.basemap.config import BasemapLayer
from layers.basemap.tiles import Part, part_filter
from layers.render import engine
from layers.render.features import Row, Source, TileBox, fetch_features
from layers.render.fonts import label_faces
from layers.render.styles import LAYER_STYLE, PartSpec, basemap_styles, layer_style

FORMATS = engine.MEDIA_TYPES
#: bump when the drawing changes, so raster ETags change with it
STYLE_VERSION = "1"


def content_zoom(tms_id: str, z: int) -> int:
    """The Web Mercator level whose content a tile shows: WorldCRS84Quad level z is about level
    z + 1; Tianditu's c grid (CGCS2000Quad) numbers its levels to match Web Mercator's scales."""
    return z + 1 if tms_id == "WorldCRS84Quad" else z


def render_layer_tile(conn: Connection, source: Source, box: TileBox, fmt: str, feature_limit: int) -> bytes:
    """One layer in the default style on a transparent background (no labels)."""
    rows = fetch_features(conn, [source], box, feature_limit, [False])[0]
    draw = engine.DrawLayer("layer", [LAYER_STYLE], [(r.wkb, None, None) for r in rows])
    return engine.render(layer_style(), [draw], box.srs, box.bounds(), fmt)


def drawable(part: Part) -> bool:
    """A part whose class field the reader may not see is left out: its zoom classes filter on it."""
    field = part.config.class_field
    return not field or part.layer.attribute(field) is not None


def _labelled(part: Part, z: int) -> bool:
    config = part.config
    start = config.label_minzoom if config.label_minzoom is not None else config.minzoom
    return bool(config.label) and part.layer.attribute(config.label or "") is not None and z >= start


def _rank(config: BasemapLayer, value: str | None) -> str | None:
    if config.role != "road":
        return None
    return "major" if value is not None and value in list(config.class_minzoom)[:2] else "minor"


def _label_features(rows: list[Row], on_line: bool) -> list[tuple[bytes, str | None, str | None]]:
    return [((r.wkb if on_line else r.anchor or r.wkb), r.label, None) for r in rows if r.label]


def basemap_parts_at(parts: list[Part], tms_id: str, z: int) -> list[Part]:
    """The parts drawn in a tile of level ``z``."""
    level = content_zoom(tms_id, z)
    return [p for p in parts if p.config.in_zoom(level) and drawable(p)]


def render_basemap_tile(
    conn: Connection, parts: list[Part], box: TileBox, variant: str, fmt: str, feature_limit: int
) -> bytes:
    """The base map in palette ``variant``: every part visible at the zoom, labels on top."""
    z = content_zoom(box.tms_id, box.z)
    parts = basemap_parts_at(parts, box.tms_id, box.z)
    labelled = [_labelled(p, z) for p in parts]
    specs = tuple(
        PartSpec(p.config.name, p.config.role, p.config.minzoom, on)
        for p, on in zip(parts, labelled, strict=True)
    )
    xml, styles = basemap_styles(specs, variant, z, label_faces())
    sources = [
        Source(
            p.layer,
            p.hidden,
            p.area,
            filter=part_filter(p.config, z),
            label=p.config.label,
            rank=p.config.class_field if p.config.role == "road" else None,
        )
        for p in parts
    ]
    found = fetch_features(conn, sources, box, feature_limit, labelled)
    draws: list[engine.DrawLayer] = []
    labels: list[engine.DrawLayer] = []
    for part, rows in zip(parts, found, strict=True):
        style = styles[part.config.name]
        features = [(r.wkb, None, _rank(part.config, r.rank)) for r in rows]
        draws.append(engine.DrawLayer(part.config.name, list(style.draw), features))
        if style.label:
            label_rows = _label_features(rows, style.label_on_line)
            labels.append(engine.DrawLayer(f"{part.config.name}-labels", [style.label], label_rows))
    return engine.render(xml, draws + labels, box.srs, box.bounds(), fmt)


def style_fingerprint(parts: list[Part], variant: str) -> str:
    """What the drawing depends on besides the data: the parts' configuration, palette and fonts."""
    configs = tuple(repr(p.config) for p in parts)
    return repr((STYLE_VERSION, variant, configs, label_faces()))
