"""An in-process LRU of tile bodies under a byte budget.

Keys carry the layer's uid and version and everything that shapes a tile (matrix set, indices,
properties, filter, the reader's hidden fields and area), so a new version is simply a new key: old
entries are never served again and age out. A hit costs a dict lookup under a lock, no database.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

from layers.model import LayerInfo
from layers.tiles.mvt import TileRequest

DEFAULT_BUDGET = 256 * 1024**2
_ENTRY_OVERHEAD = 200  # bytes of key and bookkeeping counted per entry, so empty tiles are not free


@dataclass(frozen=True)
class TileKey:
    layer_uid: int
    version: int
    tms_id: str
    z: int
    x: int
    y: int
    properties: tuple[str, ...] | None
    filter: str | None
    filter_lang: str | None
    filter_crs: str
    interval: str | None
    hidden: tuple[str, ...]
    area: str | None  # sha256 of the area's WKB

    @classmethod
    def of(
        cls, layer: LayerInfo, tile: TileRequest, hidden: frozenset[str], area_wkb: bytes | None
    ) -> TileKey:
        interval = tile.interval
        return cls(
            layer.uid,
            layer.current_version or 0,
            tile.tms_id,
            tile.z,
            tile.x,
            tile.y,
            tuple(dict.fromkeys(tile.properties)) if tile.properties is not None else None,
            tile.filter,
            (tile.filter_lang or "cql2-text").lower() if tile.filter else None,
            tile.filter_crs.uri if tile.filter else "",
            repr((interval.start, interval.end, interval.end_exclusive)) if interval else None,
            tuple(sorted(hidden)),
            hashlib.sha256(area_wkb).hexdigest() if area_wkb is not None else None,
        )

    def etag(self) -> str:
        """A strong validator: equal keys mean byte-equal tiles (the version pins the data)."""
        return '"' + hashlib.sha256(repr(self).encode()).hexdigest()[:32] + '"'


class TileCache:
    def __init__(self, budget_bytes: int = DEFAULT_BUDGET) -> None:
        self.budget = budget_bytes
        self.size = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> bytes | None:
        """``key``: a ``TileKey``, or any hashable that pins the bytes (a base map tile's keys)."""
        with self._lock:
            data = self._entries.get(key)
            if data is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return data

    def put(self, key: Hashable, data: bytes) -> None:
        cost = len(data) + _ENTRY_OVERHEAD
        if cost > self.budget // 8:  # one huge tile must not flush the cache
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.size -= len(old) + _ENTRY_OVERHEAD
            self._entries[key] = data
            self.size += cost
            while self.size > self.budget:
                _, evicted = self._entries.popitem(last=False)
                self.size -= len(evicted) + _ENTRY_OVERHEAD

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.size = 0
