"""The base map's content, read from a TOML file (``geoshare/config/basemap.toml`` by default).

Content is configuration, not code: the IT office adds a layer, changes its zooms or the attributes
it carries by editing the file. Mistakes are reported with the entry and the key at fault.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from layers.errors import InvalidInput

ROLES = ("area", "boundary", "water", "green", "road", "building", "poi")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
MAX_ZOOM = 22
_LAYER_KEYS = {
    "name",
    "source",
    "minzoom",
    "maxzoom",
    "properties",
    "role",
    "label",
    "label_minzoom",
    "class_field",
    "class_minzoom",
    "where",
}


@dataclass(frozen=True)
class BasemapLayer:
    name: str
    source: str
    role: str
    minzoom: int = 0
    maxzoom: int = MAX_ZOOM
    properties: tuple[str, ...] = ()
    label: str | None = None
    label_minzoom: int | None = None
    class_field: str | None = None
    class_minzoom: dict[str, int] = field(default_factory=dict)
    where: str | None = None

    def in_zoom(self, z: int) -> bool:
        return self.minzoom <= z <= self.maxzoom

    def classes_at(self, z: int) -> list[str] | None:
        """Class values shown at ``z`` when some classes start later than the layer (None: all)."""
        if not self.class_field or not self.class_minzoom or all(v <= z for v in self.class_minzoom.values()):
            return None
        return [c for c, start in self.class_minzoom.items() if start <= z]

    @property
    def tile_properties(self) -> tuple[str, ...]:
        """Attributes the tiles carry: the configured ones plus what the style needs."""
        extra = [n for n in (self.label, self.class_field) if n and n not in self.properties]
        return (*self.properties, *extra)


@dataclass(frozen=True)
class Basemap:
    name: str
    title: str
    attribution: str
    layers: tuple[BasemapLayer, ...]

    def layers_at(self, z: int) -> list[BasemapLayer]:
        return [layer for layer in self.layers if layer.in_zoom(z)]

    @property
    def minzoom(self) -> int:
        return min((layer.minzoom for layer in self.layers), default=0)

    @property
    def maxzoom(self) -> int:
        return max((layer.maxzoom for layer in self.layers), default=MAX_ZOOM)


def _zoom(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_ZOOM:
        raise InvalidInput(f"{where} must be a whole zoom between 0 and {MAX_ZOOM}", field=where)
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{where} must be non-empty text", field=where)
    return value


def _layer(raw: Any, i: int) -> BasemapLayer:
    at = f"layers[{i}]"
    if not isinstance(raw, dict):
        raise InvalidInput(f"{at} must be a table", field=at)
    unknown = sorted(set(raw) - _LAYER_KEYS)
    if unknown:
        raise InvalidInput(f"{at}: unknown key(s) {', '.join(unknown)}", field=f"{at}.{unknown[0]}")
    name = _text(raw.get("name"), f"{at}.name")
    if not _NAME.match(name):
        raise InvalidInput(f"{at}.name {name!r}: use a-z, 0-9 and _", field=f"{at}.name")
    role = raw.get("role")
    if role not in ROLES:
        raise InvalidInput(f"{at}.role must be one of {', '.join(ROLES)}", field=f"{at}.role")
    minzoom = _zoom(raw.get("minzoom", 0), f"{at}.minzoom")
    maxzoom = _zoom(raw.get("maxzoom", MAX_ZOOM), f"{at}.maxzoom")
    if maxzoom < minzoom:
        raise InvalidInput(f"{at}: maxzoom is below minzoom", field=f"{at}.maxzoom")
    properties = raw.get("properties", [])
    if not isinstance(properties, list) or not all(isinstance(p, str) and p for p in properties):
        raise InvalidInput(f"{at}.properties must be a list of attribute names", field=f"{at}.properties")
    classes = raw.get("class_minzoom", {})
    if not isinstance(classes, dict):
        raise InvalidInput(f"{at}.class_minzoom must be a table of class = zoom", field=f"{at}.class_minzoom")
    if classes and not raw.get("class_field"):
        raise InvalidInput(f"{at}: class_minzoom needs class_field", field=f"{at}.class_field")
    label_minzoom = raw.get("label_minzoom")
    return BasemapLayer(
        name=name,
        source=_text(raw.get("source"), f"{at}.source"),
        role=role,
        minzoom=minzoom,
        maxzoom=maxzoom,
        properties=tuple(properties),
        label=_text(raw["label"], f"{at}.label") if "label" in raw else None,
        label_minzoom=None if label_minzoom is None else _zoom(label_minzoom, f"{at}.label_minzoom"),
        class_field=_text(raw["class_field"], f"{at}.class_field") if "class_field" in raw else None,
        class_minzoom={str(k): _zoom(v, f"{at}.class_minzoom.{k}") for k, v in classes.items()},
        where=_text(raw["where"], f"{at}.where") if "where" in raw else None,
    )


def parse_config(text: str) -> Basemap:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput(f"the base map configuration is not valid TOML: {exc}", field="basemap") from exc
    entries = raw.get("layers")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput("the base map configuration has no [[layers]]", field="layers")
    layers = tuple(_layer(entry, i) for i, entry in enumerate(entries))
    names = [layer.name for layer in layers]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidInput(f"layer name(s) used twice: {', '.join(twice)}", field="layers")
    return Basemap(
        name=str(raw.get("name", "basemap")),
        title=str(raw.get("title", "Base map")),
        attribution=str(raw.get("attribution", "")),
        layers=layers,
    )


def load_config(path: Path) -> Basemap:
    try:
        return parse_config(path.read_text("utf-8"))
    except InvalidInput as exc:
        exc.detail = f"{path.name}: {exc.detail}"
        raise
