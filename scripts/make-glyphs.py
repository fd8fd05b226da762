#!/usr/bin/env python3
"""Generate MapLibre glyph PBFs (SDF, 24 px, 3 px buffer) from the Noto Sans files npm installed.

MapLibre draws Chinese labels with the browser's own fonts (``localIdeographFontFamily``), but it
still asks the style's ``glyphs`` URL for every other character: digits and Latin letters in names
like "3号楼" or "CBD". The service has no internet, so the ranges are generated once here and
committed under ``geoshare/web/glyphs/``; the service only reads the files.

The glyphs are what node-fontnik makes: the outline at 24 px unhinted, the bounding box rounded to
whole pixels, a 3 px border, and for every pixel centre the distance to the outline, 8 px radius,
the edge at 192 (cutoff 0.25), inside brighter. Run it after ``scripts/vendor-web.sh``:

    .venv/bin/pip install freetype-py   # build-time only, not a runtime dependency
    .venv/bin/python scripts/make-glyphs.py
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import freetype
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "geoshare" / "web"
FONT_DIR = WEB / "node_modules" / "@fontsource" / "noto-sans" / "files"
SUBSETS = ("latin", "latin-ext", "greek", "greek-ext", "cyrillic", "cyrillic-ext", "vietnamese")
FONTSTACK = "Noto Sans Regular"
OUT_DIR = WEB / "glyphs" / "noto-sans-regular"
SIZE, BUFFER, RADIUS, CUTOFF, OFFSET = 24, 3, 8, 0.25, 0.5
CURVE_STEPS = 8


# -- protobuf (glyphs.proto), written by hand: three small messages --------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field_bytes(number: int, value: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def encode_glyph(cp: int, bitmap: bytes, width: int, height: int, left: int, top: int, advance: int) -> bytes:
    body = _field_varint(1, cp)
    if bitmap:
        body += _field_bytes(2, bitmap)
    body += _field_varint(3, width) + _field_varint(4, height)
    body += _field_varint(5, _zigzag(left)) + _field_varint(6, _zigzag(top)) + _field_varint(7, advance)
    return body


def encode_range(name: str, start: int, glyphs: list[bytes]) -> bytes:
    stack = _field_bytes(1, name.encode()) + _field_bytes(2, f"{start}-{start + 255}".encode())
    stack += b"".join(_field_bytes(3, g) for g in glyphs)
    return _field_bytes(1, stack)


# -- outlines and distances -------------------------------------------------------------------------


def _outline_rings(face: freetype.Face) -> list[np.ndarray]:
    """The glyph outline as closed polylines in pixels (curves flattened)."""
    rings: list[list[tuple[float, float]]] = []

    def move_to(p, _):  # noqa: ANN001 - freetype-py callback signature
        rings.append([(p.x / 64, p.y / 64)])

    def line_to(p, _):  # noqa: ANN001
        rings[-1].append((p.x / 64, p.y / 64))

    def conic_to(c, p, _):  # noqa: ANN001
        x0, y0 = rings[-1][-1]
        for t in np.linspace(0, 1, CURVE_STEPS + 1)[1:]:
            u = 1 - t
            rings[-1].append(
                (
                    u * u * x0 + 2 * u * t * c.x / 64 + t * t * p.x / 64,
                    u * u * y0 + 2 * u * t * c.y / 64 + t * t * p.y / 64,
                )
            )

    def cubic_to(c1, c2, p, _):  # noqa: ANN001
        x0, y0 = rings[-1][-1]
        for t in np.linspace(0, 1, CURVE_STEPS + 1)[1:]:
            u = 1 - t
            rings[-1].append(
                (
                    u**3 * x0 + 3 * u * u * t * c1.x / 64 + 3 * u * t * t * c2.x / 64 + t**3 * p.x / 64,
                    u**3 * y0 + 3 * u * u * t * c1.y / 64 + 3 * u * t * t * c2.y / 64 + t**3 * p.y / 64,
                )
            )

    face.glyph.outline.decompose(None, move_to=move_to, line_to=line_to, conic_to=conic_to, cubic_to=cubic_to)
    out = []
    for ring in rings:
        if ring[0] != ring[-1]:
            ring.append(ring[0])
        if len(ring) > 2:
            out.append(np.asarray(ring, dtype=np.float64))
    return out


def _sdf(rings: list[np.ndarray], width: int, height: int, xmin: float, ymin: float) -> bytes:
    """Signed distances of the pixel centres of the bordered box, as fontnik encodes them."""
    bw, bh = width + 2 * BUFFER, height + 2 * BUFFER
    xs = np.arange(bw) + OFFSET
    ys = np.arange(bh) + OFFSET
    px, py = np.meshgrid(xs, ys)  # row 0 = bottom
    p = np.stack([px.ravel(), py.ravel()], axis=1)
    segs = np.concatenate([np.stack([r[:-1], r[1:]], axis=1) for r in rings]) - [xmin - BUFFER, ymin - BUFFER]
    a, b = segs[:, 0], segs[:, 1]
    ab = b - a
    length2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    ap = p[:, None, :] - a[None, :, :]
    t = np.clip((ap * ab[None]).sum(axis=2) / length2[None], 0.0, 1.0)
    closest = a[None] + t[..., None] * ab[None]
    dist = np.sqrt(((p[:, None, :] - closest) ** 2).sum(axis=2).min(axis=1))
    dist = np.minimum(dist, RADIUS)
    # even-odd crossing test: a ray to the right of each pixel centre
    y1, y2 = a[:, 1][None], b[:, 1][None]
    x1, x2 = a[:, 0][None], b[:, 0][None]
    pyc, pxc = p[:, 1][:, None], p[:, 0][:, None]
    straddles = (y1 > pyc) != (y2 > pyc)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = (x2 - x1) * (pyc - y1) / (y2 - y1) + x1
    inside = ((straddles & (pxc < x_cross)).sum(axis=1) % 2) == 1
    d = dist * (256 / RADIUS)
    d = np.where(inside, -d, d) + CUTOFF * 256
    n = np.clip(d, 0, 255).astype(np.int32)  # C truncation towards zero, as fontnik
    values = (255 - n).astype(np.uint8).reshape(bh, bw)[::-1]  # row 0 = top
    return values.tobytes()


def render(face: freetype.Face, cp: int) -> bytes | None:
    index = face.get_char_index(cp)
    if not index:
        return None
    face.load_glyph(index, freetype.FT_LOAD_NO_HINTING)
    advance = face.glyph.metrics.horiAdvance // 64
    rings = _outline_rings(face)
    if not rings:
        return encode_glyph(cp, b"", 0, 0, 0, 0, advance)  # a space: advance only
    pts = np.concatenate(rings)
    xmin, ymin = np.round(pts.min(axis=0))
    xmax, ymax = np.round(pts.max(axis=0))
    width, height = int(xmax - xmin), int(ymax - ymin)
    if width == 0 or height == 0:
        return encode_glyph(cp, b"", 0, 0, 0, 0, advance)
    bitmap = _sdf(rings, width, height, xmin, ymin)
    return encode_glyph(cp, bitmap, width, height, int(xmin), int(ymax), advance)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fonts", type=Path, default=FONT_DIR, help="folder of noto-sans-*-400-normal.woff")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args()
    faces = []
    for subset in SUBSETS:
        path = args.fonts / f"noto-sans-{subset}-400-normal.woff"
        face = freetype.Face(str(path))
        face.set_char_size(SIZE * 64)
        faces.append(face)
    covered: dict[int, freetype.Face] = {}
    for face in faces:  # the subsets are slices of one font; the first that has a character draws it
        for cp, _ in face.get_chars():
            covered.setdefault(cp, face)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    licence = args.fonts.parent / "LICENSE"
    shutil.copyfile(licence, args.out / "OFL.txt")
    total = 0
    for start in range(0, 65536, 256):
        glyphs = [g for cp in range(start, start + 256) if cp in covered and (g := render(covered[cp], cp))]
        if not glyphs:
            continue
        data = encode_range(FONTSTACK, start, glyphs)
        (args.out / f"{start}-{start + 255}.pbf").write_bytes(data)
        total += len(data)
        print(f"{start}-{start + 255}: {len(glyphs)} glyphs, {len(data)} bytes")
    print(f"{total} bytes in {args.out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
