"""A tile's size budget per layer, and the few passes that meet it exactly.

The tile statement (``layers.tiles.thinning``) keeps features in a fixed order of importance until
their *estimated* bytes reach a cap, in one round trip. Estimates cannot know how well the tile
compresses, so the bytes are verified here: a tile over budget is cut again with the cap scaled by
how far it overshot (``Fitter``). Every step depends only on the data and the budget (gzip at a
fixed level is deterministic), so a tile cut on request and one in the dense-tile pyramid are the
same bytes; the common tile (whole, under budget) costs no second pass and no compression.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

#: the gzip level the API compresses tiles with (``geoshare.api.http_policy.GZIP_LEVEL``): the
#: budget is measured on what a browser is sent
GZIP_LEVEL = 4
#: the attribute every feature of a thinned tile carries: how many features the tile left out
DROPPED_ATTRIBUTE = "gs_dropped"
_DROPPED_KEY = b"\x1a" + bytes([len(DROPPED_ATTRIBUTE)]) + DROPPED_ATTRIBUTE.encode()  # MVT layer key
#: a pass over budget is cut again aiming this far under it (estimates scale almost linearly)
_AIM = 0.96
_MAX_PASSES = 5
_FULL = 0.85  # a thinned pass this full is full enough


@dataclass(frozen=True)
class TileBudget:
    """Bytes one layer may take in one tile: gzip-compressed (as sent) and raw (as decoded)."""

    gzip_bytes: int = 500_000
    raw_bytes: int = 2_000_000

    def first_cap(self) -> int:
        """The estimated raw bytes the first pass keeps: MVT of attribute-rich features compresses
        about 3.5-4x, so the gzip budget usually binds first."""
        return int(min(self.raw_bytes, self.gzip_bytes * 4))

    def fill(self, data: bytes) -> float:
        """How full ``data`` is (1.0: exactly the budget); gzip only when it can matter."""
        raw = len(data) / self.raw_bytes
        if len(data) <= self.gzip_bytes * 0.99:  # gzip cannot grow it past the budget
            return raw
        quick = len(zlib.compress(data, 1)) / self.gzip_bytes
        if quick <= 0.9:  # level 1 is never much smaller than the level sent
            return max(raw, quick)
        return max(raw, gzip_size(data) / self.gzip_bytes)


DEFAULT_BUDGET = TileBudget()


def gzip_size(data: bytes) -> int:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return len(compressor.compress(data) + compressor.flush())


def is_thinned(data: bytes) -> bool:
    """Whether some MVT layer of ``data`` left features out (its features carry ``gs_dropped``)."""
    return _DROPPED_KEY in data


class Fitter:
    """The caps of successive passes for one tile: cut with ``cap``, then call ``next_cap(data)``
    until None, then send ``result``. A pass over budget is cut again smaller; a thinned pass well
    under budget (the estimate counts every value as unique, and shapes that vanish at the tile's
    resolution) is cut again larger, never beyond a cap that did not fit. The result is the
    fullest pass that fits (the last one, if none does)."""

    def __init__(self, budget: TileBudget) -> None:
        self.budget = budget
        self.cap = budget.first_cap()
        self.passes = 0
        self.result = b""
        self._fitted = 0  # the largest cap whose pass fitted
        self._over: int | None = None  # the smallest cap whose pass did not
        self._seen: set[int] = set()

    def next_cap(self, data: bytes) -> int | None:
        self.passes += 1
        self.result = data if not self._fitted else self.result
        fill = self.budget.fill(data)
        repeated = hash(data) in self._seen  # e.g. a stored tile: the cap changes nothing
        self._seen.add(hash(data))
        if fill <= 1.0:
            if self.cap > self._fitted:
                self._fitted, self.result = self.cap, data
            if not is_thinned(data) or fill >= _FULL or repeated:
                return None
        else:
            self._over = self.cap if self._over is None else min(self._over, self.cap)
        if self.passes >= _MAX_PASSES + 1 or (self.passes >= _MAX_PASSES and self._fitted):
            return None
        aim = _AIM**3 if self.passes >= _MAX_PASSES else _AIM  # a last pass sure to fit
        wanted = max(1, int(self.cap * aim / fill))
        if self._over is not None and self._fitted and not self._fitted < wanted < self._over:
            wanted = (self._fitted + self._over) // 2  # the estimate is off here: halve the gap
        if wanted <= self._fitted or wanted == self.cap:
            return None
        self.cap = wanted
        return self.cap
