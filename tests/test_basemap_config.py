"""The base map's configuration file and the styles derived from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from layers.basemap.config import load_config, parse_config
from layers.basemap.style import PALETTES, build_style
from layers.errors import InvalidInput

SHIPPED = Path(__file__).resolve().parents[1] / "geoshare" / "config" / "basemap.toml"


def test_the_shipped_configuration_reads() -> None:
    basemap = load_config(SHIPPED)
    names = [layer.name for layer in basemap.layers]
    assert {"districts", "roads", "buildings"} <= set(names)
    roads = next(layer for layer in basemap.layers if layer.name == "roads")
    # zoom-dependent content: alleys only from z14, trunk roads from z9
    assert roads.classes_at(9) == ["主干路"] and roads.classes_at(14) is None
    assert "道路等级" in roads.tile_properties and "名称" in roads.tile_properties
    assert [layer.name for layer in basemap.layers_at(8)] == ["districts"]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("name = 'x'", "layers"),
        ("[[layers]]\nname='Roads'\nsource='roads'\nrole='road'", "layers[0].name"),
        ("[[layers]]\nname='roads'\nsource='roads'\nrole='river'", "layers[0].role"),
        ("[[layers]]\nname='roads'\nsource='roads'\nrole='road'\nminzoom=12\nmaxzoom=3", "layers[0].maxzoom"),
        ("[[layers]]\nname='roads'\nsource='roads'\nrole='road'\nminzom=3", "layers[0].minzom"),
        (
            "[[layers]]\nname='roads'\nsource='roads'\nrole='road'\nclass_minzoom={a=3}",
            "layers[0].class_field",
        ),
        (
            "[[layers]]\nname='a'\nsource='x'\nrole='area'\n[[layers]]\nname='a'\nsource='y'\nrole='area'",
            "layers",
        ),
        ("[[layers]\n", "basemap"),
    ],
)
def test_mistakes_name_the_entry_and_key(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_config(text)
    assert err.value.field == field


@pytest.mark.parametrize("variant", list(PALETTES))
def test_styles_draw_every_layer_and_label(variant: str) -> None:
    basemap = load_config(SHIPPED)
    style = build_style(
        basemap, "http://x/basemap/tiles/WebMercatorQuad", "http://x/fonts/{fontstack}/{range}.pbf", variant
    )
    assert style["version"] == 8 and style["sources"]["basemap"]["url"].endswith("WebMercatorQuad")
    drawn = {layer.get("source-layer") for layer in style["layers"]}
    assert {layer.name for layer in basemap.layers} <= drawn
    labels = [layer for layer in style["layers"] if layer["type"] == "symbol"]
    assert {layer["source-layer"] for layer in labels} == {
        layer.name for layer in basemap.layers if layer.label
    }
    assert style["layers"][0]["paint"]["background-color"] == PALETTES[variant]["background"]
    # labels come after every fill and line, so they are drawn on top
    kinds = [layer["type"] for layer in style["layers"]]
    assert kinds.index("symbol") > max(i for i, k in enumerate(kinds) if k in ("fill", "line", "circle"))
