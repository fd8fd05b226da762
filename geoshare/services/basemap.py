"""The configured base map and the parts of it a reader may see (shared by HTTP, seeding, packages)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection

from geoshare.access import policy
from geoshare.access.identity import Principal
from geoshare.services.layer_cache import LayerCache
from geoshare.settings import Settings
from layers.basemap.config import Basemap, load_config
from layers.basemap.tiles import Part
from layers.errors import NotFound
from layers.registry import get_layer, layer_not_found, redact

DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "basemap.toml"


@lru_cache(maxsize=4)
def _load(path: str) -> Basemap:
    return load_config(Path(path))


def basemap_config(settings: Settings) -> Basemap:
    return _load(settings.basemap_config or str(DEFAULT_CONFIG))


def readable_parts(
    conn: Connection,
    config: Basemap,
    who: Principal,
    cache: LayerCache | None = None,
    zoom: int | None = None,
) -> list[Part]:
    """The configured layers ``who`` may read (at content zoom ``zoom``), each with its scope; a part
    that is not published or not for this reader is left out and the base map goes on without it."""
    parts = []
    for entry in config.layers if zoom is None else config.layers_at(zoom):
        try:
            if cache is None:
                layer = get_layer(conn, entry.source, policy.visibility(who))
            else:
                layer = cache.get(conn, entry.source)
                if not policy.visibility(who).allows(layer):
                    raise layer_not_found(entry.source)
        except NotFound:
            continue
        hidden = policy.hidden_fields(who, layer)
        parts.append(Part(entry, redact(layer, hidden), hidden, policy.area(who, layer)))
    return parts
