"""Glyphs for MapLibre labels: ``GET /fonts/{fontstack}/{start}-{end}.pbf``.

Chinese characters are drawn by the browser's own fonts (``localIdeographFontFamily``); the PBFs
here cover the rest (digits, Latin, Greek, Cyrillic …) from Noto Sans (OFL, licence beside the
files), generated at build time by ``scripts/make-glyphs.py``. Any font stack is answered with
the glyphs we have, and a range without glyphs with an empty range, so a style naming another font
or a label with an unusual character never makes MapLibre fail.
"""

from __future__ import annotations

import re
from functools import lru_cache

from fastapi import APIRouter
from starlette.responses import Response

from geoshare.web import GLYPHS_DIR
from layers.errors import BadParameter

router = APIRouter(tags=["portal"])

PBF = "application/x-protobuf"
DEFAULT_STACK = "noto-sans-regular"
GLYPHS_URL = "/fonts/{fontstack}/{range}.pbf"
"""The template for a style's ``glyphs`` (after the service's base URL)."""
_RANGE = re.compile(r"^(\d{1,7})-(\d{1,7})$")
_MAX_CODEPOINT = 0x10FFFF
_CACHE = "public, max-age=604800"


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def empty_range(fontstack: str, start: int, end: int) -> bytes:
    """A valid glyphs message naming the stack and range, with no glyph in it."""
    stack = _field(1, fontstack.encode()) + _field(2, f"{start}-{end}".encode())
    return _field(1, stack)


def _stack_dir(fontstack: str) -> str:
    """The first font of the stack we have files for; the default font otherwise."""
    for name in fontstack.split(","):
        slug = re.sub(r"[^a-z0-9]+", "-", name.strip().lower()).strip("-")
        if slug and (GLYPHS_DIR / slug).is_dir():
            return slug
    return DEFAULT_STACK


@lru_cache(maxsize=512)
def _glyph_file(stack_dir: str, start: int) -> bytes | None:
    path = GLYPHS_DIR / stack_dir / f"{start}-{start + 255}.pbf"
    return path.read_bytes() if path.is_file() else None


def parse_range(value: str) -> tuple[int, int]:
    m = _RANGE.match(value)
    if not m:
        raise BadParameter(f"range must look like 0-255, got {value!r}", field="range")
    start, end = int(m.group(1)), int(m.group(2))
    if start % 256 or end != start + 255 or end > _MAX_CODEPOINT + 255:
        raise BadParameter(
            f"range must be 256 code points starting at a multiple of 256 (e.g. 256-511), got {value!r}",
            field="range",
        )
    return start, end


@router.get("/fonts/{fontstack}/{glyph_range}.pbf", summary="Glyph PBF (SDF) for MapLibre labels")
def glyphs(fontstack: str, glyph_range: str) -> Response:
    start, end = parse_range(glyph_range)
    if len(fontstack) > 200:
        raise BadParameter("fontstack is longer than 200 characters", field="fontstack")
    body = _glyph_file(_stack_dir(fontstack), start) or empty_range(fontstack, start, end)
    return Response(body, media_type=PBF, headers={"Cache-Control": _CACHE})
