"""The portal's files: Jinja2 templates, static assets (vendored MapLibre included), glyph PBFs and
the SDK source. Nothing here needs npm at run time: ``scripts/vendor-web.sh`` copies the pinned
browser libraries in and the copies are committed."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

WEB_DIR = Path(__file__).resolve().parent
STATIC_DIR = WEB_DIR / "static"
TEMPLATES_DIR = WEB_DIR / "templates"
GLYPHS_DIR = WEB_DIR / "glyphs"
SDK_SOURCE = WEB_DIR / "sdk" / "geoshare-sdk.js"
MAPLIBRE_JS = STATIC_DIR / "vendor" / "maplibre-gl.js"


@lru_cache(maxsize=1)
def asset_version() -> str:
    """A digest of every shipped asset: the ``?v=`` that makes long-cached URLs change on upgrade."""
    h = hashlib.sha256()
    for path in sorted([*STATIC_DIR.rglob("*"), SDK_SOURCE]):
        if path.is_file():
            h.update(path.relative_to(WEB_DIR).as_posix().encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:12]
