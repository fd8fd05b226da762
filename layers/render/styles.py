"""Mapnik styles: the base map in the light/dark palettes of its MapLibre styles, and a plain
per-geometry style for any single layer.

Styles are Mapnik XML, written once per (content, palette, zoom) and cached: widths and which labels
show depend on the zoom, as in the MapLibre style (``layers.basemap.style``), whose colours, label
sizes and width curves are reused so raster and vector maps look alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from xml.sax.saxutils import quoteattr

from layers.basemap.style import PALETTES

LABEL_SIZES = {"boundary": 14, "poi": 12, "road": 12, "area": 12, "building": 11}
FONTSET = "labels"
#: the default style of a single layer (a blue that reads on both light and dark base maps)
LAYER_FILL = "#3b82f6"
LAYER_STROKE = "#1d4ed8"
LAYER_HALO = "#ffffff"
LAYER_STYLE = "layer"


@dataclass(frozen=True)
class PartSpec:
    """What the style of one base map part depends on at one zoom."""

    name: str
    role: str
    minzoom: int
    labelled: bool  # has a label attribute the reader may see, shown at this zoom


@dataclass(frozen=True)
class PartStyles:
    draw: tuple[str, ...]  # styles of the part's geometries, in drawing order
    label: str | None  # style of its labels (drawn after every part's geometries)
    label_on_line: bool  # labels follow the line (roads) rather than sit at a point


def _exp(z: float, z0: float, v0: float, z1: float, v1: float, base: float) -> float:
    """MapLibre's ``["interpolate", ["exponential", base], ["zoom"], z0, v0, z1, v1]``."""
    if z <= z0:
        return v0
    if z >= z1:
        return v1
    t = (base ** (z - z0) - 1) / (base ** (z1 - z0) - 1) if base != 1 else (z - z0) / (z1 - z0)
    return v0 + t * (v1 - v0)


def road_width(minzoom: int, major: bool, z: int) -> float:
    low, high = (1.5, 12.0) if major else (0.5, 6.0)
    return round(_exp(z, minzoom, low, 18, high, 1.6), 2)


def boundary_width(minzoom: int, z: int) -> float:
    return round(_exp(z, minzoom, 0.8, 16, 2.5, 1.0), 2)


def _attrs(**values: object) -> str:
    return " ".join(f"{k.replace('_', '-')}={quoteattr(str(v))}" for k, v in values.items())


def _style(name: str, *rules: str) -> str:
    return f"<Style name={quoteattr(name)}>{''.join(rules)}</Style>"


def _rule(*symbolizers: str, filter: str | None = None) -> str:
    head = f"<Filter>{filter}</Filter>" if filter else ""
    return f"<Rule>{head}{''.join(symbolizers)}</Rule>"


def _line(color: str, width: float, **extra: object) -> str:
    return f"<LineSymbolizer {_attrs(stroke=color, stroke_width=width, **extra)}/>"


def _polygon(color: str, **extra: object) -> str:
    return f"<PolygonSymbolizer {_attrs(fill=color, **extra)}/>"


def _marker(color: str, halo: str, size: float) -> str:
    values = {
        "marker_type": "ellipse",
        "width": size,
        "height": size,
        "fill": color,
        "stroke": halo,
        "stroke_width": 1,
        "allow_overlap": "true",
        "ignore_placement": "true",
    }
    return f"<MarkersSymbolizer {_attrs(**values)}/>"


_ROUND = {"stroke_linecap": "round", "stroke_linejoin": "round"}
_MAJOR = "[rank] = 'major'"


def _part_styles(spec: PartSpec, colors: dict[str, str], z: int) -> tuple[list[str], PartStyles]:
    name, role = spec.name, spec.role
    xml: list[str] = []
    if role in ("area", "water", "green"):
        extra = [_line(colors["area_line"], 0.6)] if role == "area" else []
        xml.append(_style(name, _rule(_polygon(colors[role]), *extra)))
        draw: tuple[str, ...] = (name,)
    elif role == "boundary":
        width = boundary_width(spec.minzoom, z)
        color = colors["boundary"] if spec.minzoom < 10 else colors["boundary_minor"]
        dashes = f"{round(3 * width, 1)},{round(2 * width, 1)}"
        xml.append(_style(name, _rule(_line(color, width, stroke_dasharray=dashes))))
        draw = (name,)
    elif role == "building":
        xml.append(_style(name, _rule(_polygon(colors["building"]), _line(colors["building_line"], 0.5))))
        draw = (name,)
    elif role == "road":
        major, minor = road_width(spec.minzoom, True, z), road_width(spec.minzoom, False, z)
        xml.append(
            _style(f"{name}-casing", _rule(_line(colors["road_casing"], major + 2, **_ROUND), filter=_MAJOR))
        )
        xml.append(
            _style(
                f"{name}-minor", _rule(_line(colors["road_minor"], minor, **_ROUND), filter=f"not ({_MAJOR})")
            )
        )
        xml.append(
            _style(f"{name}-major", _rule(_line(colors["road_major"], major, **_ROUND), filter=_MAJOR))
        )
        draw = (f"{name}-casing", f"{name}-minor", f"{name}-major")
    else:  # poi
        xml.append(_style(name, _rule(_marker(colors["poi"], colors["halo"], 8))))
        draw = (name,)
    label = None
    if spec.labelled:
        label = f"{name}-label"
        size = LABEL_SIZES.get(role, 12)
        text = {
            "fontset_name": FONTSET,
            "size": size,
            "fill": colors["text"],
            "halo_fill": colors["halo"],
            "halo_radius": 1.2,
            "placement": "line" if role == "road" else "point",
            "wrap_width": 8 * size,
            **({"dy": 10} if role == "poi" else {}),
            # a line label is placed from the tile's own clip of the line, so it would not continue in the
            # neighbouring tile: keep it inside the tile
            **({"spacing": 200, "max_char_angle_delta": 30, "avoid_edges": "true"} if role == "road" else {}),
        }
        xml.append(_style(label, _rule(f"<TextSymbolizer {_attrs(**text)}>[label]</TextSymbolizer>")))
    return xml, PartStyles(draw, label, role == "road")


def _fontset(faces: tuple[str, ...]) -> str:
    fonts = "".join(f"<Font face-name={quoteattr(face)}/>" for face in faces)
    return f"<FontSet name={quoteattr(FONTSET)}>{fonts}</FontSet>"


@lru_cache(maxsize=512)
def basemap_styles(
    specs: tuple[PartSpec, ...], variant: str, z: int, faces: tuple[str, ...]
) -> tuple[str, dict[str, PartStyles]]:
    """The base map's Mapnik XML at content zoom ``z`` and each part's style names."""
    colors = PALETTES[variant]
    body: list[str] = [_fontset(faces)] if faces else []
    names: dict[str, PartStyles] = {}
    for spec in specs:
        xml, styles = _part_styles(spec, colors, z)
        body.extend(xml)
        names[spec.name] = styles
    background = quoteattr(colors["background"])
    return f"<Map background-color={background}>{''.join(body)}</Map>", names


@lru_cache(maxsize=1)
def layer_style() -> str:
    """One layer on a transparent background: polygons filled and outlined, lines, points as dots."""
    rules = [
        _rule(
            _polygon(LAYER_FILL, fill_opacity=0.35),
            _line(LAYER_STROKE, 1.2),
            filter="[mapnik::geometry_type] = polygon",
        ),
        _rule(_line(LAYER_STROKE, 2, **_ROUND), filter="[mapnik::geometry_type] = linestring"),
        _rule(_marker(LAYER_STROKE, LAYER_HALO, 8), filter="[mapnik::geometry_type] = point"),
        _rule(  # geometry collections: every member drawn by its own kind
            _polygon(LAYER_FILL, fill_opacity=0.35),
            _line(LAYER_STROKE, 1.2),
            _marker(LAYER_STROKE, LAYER_HALO, 8),
            filter="[mapnik::geometry_type] = collection",
        ),
    ]
    return f"<Map>{_style(LAYER_STYLE, *rules)}</Map>"
