"""MapLibre styles (light and dark) for the base map, derived from its configuration.

Labels are Chinese: CJK glyphs are drawn by the browser's own fonts (MapLibre's
``localIdeographFontFamily``), so only the Latin/digit glyph ranges come from ``glyphs``.
"""

from __future__ import annotations

from typing import Any

from layers.basemap.config import Basemap, BasemapLayer

SOURCE = "basemap"
FONT = ["Noto Sans Regular"]

PALETTES: dict[str, dict[str, str]] = {
    "light": {
        "background": "#f4f3ef",
        "area": "#ebe8e0",
        "area_line": "#d6d1c4",
        "boundary": "#9e7fa8",
        "boundary_minor": "#c2b0c9",
        "water": "#a9d3f2",
        "green": "#cfe6c2",
        "building": "#dedbd3",
        "building_line": "#c9c4b8",
        "road_major": "#f6c86b",
        "road_minor": "#ffffff",
        "road_casing": "#c7bfae",
        "poi": "#d0503f",
        "text": "#333333",
        "halo": "#ffffff",
    },
    "dark": {
        "background": "#1d2330",
        "area": "#232a38",
        "area_line": "#2f3748",
        "boundary": "#8a74a8",
        "boundary_minor": "#4f4866",
        "water": "#17324d",
        "green": "#1f3328",
        "building": "#2c3444",
        "building_line": "#394356",
        "road_major": "#b0864a",
        "road_minor": "#4a5468",
        "road_casing": "#161b24",
        "poi": "#ff7a66",
        "text": "#e6e6e6",
        "halo": "#111111",
    },
}


def _label(layer: BasemapLayer, colors: dict[str, str], size: float) -> dict[str, Any]:
    line = layer.role == "road"
    return {
        "id": f"{layer.name}-label",
        "type": "symbol",
        "source": SOURCE,
        "source-layer": layer.name,
        "minzoom": layer.label_minzoom if layer.label_minzoom is not None else layer.minzoom,
        "maxzoom": layer.maxzoom + 1,
        "layout": {
            "text-field": ["get", layer.label],
            "text-font": FONT,
            "text-size": size,
            "symbol-placement": "line" if line else "point",
            "text-max-width": 8,
            **({"text-anchor": "top", "text-offset": [0, 0.6]} if layer.role == "poi" else {}),
        },
        "paint": {"text-color": colors["text"], "text-halo-color": colors["halo"], "text-halo-width": 1.2},
    }


def _road_width(layer: BasemapLayer, major: bool, casing: float = 0.0) -> list[Any]:
    low, high = (1.5, 12) if major else (0.5, 6)
    return ["interpolate", ["exponential", 1.6], ["zoom"], layer.minzoom, low + casing, 18, high + 2 * casing]


def _draw(layer: BasemapLayer, colors: dict[str, str]) -> list[dict[str, Any]]:
    base = {
        "source": SOURCE,
        "source-layer": layer.name,
        "minzoom": layer.minzoom,
        "maxzoom": layer.maxzoom + 1,
    }
    role = layer.role
    if role in ("area", "water", "green"):
        fill = {"area": "area", "water": "water", "green": "green"}[role]
        out = [{"id": layer.name, "type": "fill", **base, "paint": {"fill-color": colors[fill]}}]
        if role == "area":
            out.append(
                {
                    "id": f"{layer.name}-line",
                    "type": "line",
                    **base,
                    "paint": {"line-color": colors["area_line"]},
                }
            )
        return out
    if role == "boundary":
        return [
            {
                "id": layer.name,
                "type": "line",
                **base,
                "paint": {
                    "line-color": colors["boundary"] if layer.minzoom < 10 else colors["boundary_minor"],
                    "line-width": ["interpolate", ["linear"], ["zoom"], layer.minzoom, 0.8, 16, 2.5],
                    "line-dasharray": [3, 2],
                },
            }
        ]
    if role == "building":
        return [
            {
                "id": layer.name,
                "type": "fill",
                **base,
                "paint": {"fill-color": colors["building"], "fill-outline-color": colors["building_line"]},
            }
        ]
    if role == "road":
        classes = list(layer.class_minzoom)
        majors = classes[:2]
        is_major: list[Any] = (
            ["in", ["get", layer.class_field], ["literal", majors]] if majors else ["boolean", False]
        )
        minor_filter: list[Any] = ["!", is_major]
        return [
            {
                "id": f"{layer.name}-casing",
                "type": "line",
                **base,
                "filter": is_major,
                "layout": {"line-cap": "round", "line-join": "round"},
                "paint": {
                    "line-color": colors["road_casing"],
                    "line-width": _road_width(layer, True),
                    "line-gap-width": 0,
                },
            },
            {
                "id": f"{layer.name}-minor",
                "type": "line",
                **base,
                "filter": minor_filter,
                "layout": {"line-cap": "round", "line-join": "round"},
                "paint": {"line-color": colors["road_minor"], "line-width": _road_width(layer, False)},
            },
            {
                "id": f"{layer.name}-major",
                "type": "line",
                **base,
                "filter": is_major,
                "layout": {"line-cap": "round", "line-join": "round"},
                "paint": {"line-color": colors["road_major"], "line-width": _road_width(layer, True)},
            },
        ]
    return [  # poi
        {
            "id": layer.name,
            "type": "circle",
            **base,
            "paint": {
                "circle-color": colors["poi"],
                "circle-radius": 4,
                "circle-stroke-color": colors["halo"],
                "circle-stroke-width": 1,
            },
        }
    ]


def build_style(
    basemap: Basemap, tilejson_url: str, glyphs_url: str, variant: str = "light"
) -> dict[str, Any]:
    """A MapLibre GL style (spec v8) drawing every configured layer, labels on top."""
    colors = PALETTES[variant]
    layers: list[dict[str, Any]] = [
        {"id": "background", "type": "background", "paint": {"background-color": colors["background"]}}
    ]
    for layer in basemap.layers:
        layers.extend(_draw(layer, colors))
    sizes = {"boundary": 14, "poi": 12, "road": 12, "area": 12, "building": 11}
    for layer in basemap.layers:
        if layer.label:
            layers.append(_label(layer, colors, sizes.get(layer.role, 12)))
    return {
        "version": 8,
        "name": f"{basemap.title} ({variant})",
        "metadata": {"geoshare:variant": variant},
        "sources": {SOURCE: {"type": "vector", "url": tilejson_url, "attribution": basemap.attribution}},
        "glyphs": glyphs_url,
        "layers": layers,
    }
