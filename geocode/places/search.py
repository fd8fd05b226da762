"""A name index for as-you-type search: prefixes by binary search, infixes by bigram postings.

Why not pg_trgm: suggest runs on every keystroke of every map's search box, and a database round
trip alone costs more than the whole lookup here. Keys are folded (NFKC, case, spaces and
punctuation dropped); a prefix is a slice of the sorted keys, an infix the intersection of the
query's rarest bigram postings (numpy arrays, no Python object per posting), checked by ``in``.
Scans are capped, so a one-character query over millions of names stays bounded.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

PREFIX_SCAN = 5000  # keys looked at for a prefix, in key order
INFIX_SCAN = 5000  # infix candidates verified
EXACT, PREFIX, INFIX = 1.0, 0.8, 0.55  # match quality before the length bonus
_DROP = re.compile(r"[\s·・.,，。、'\"“”‘’()（）\[\]【】<>《》\-—_/]+")
_TOP = "\U0010ffff"


def fold(text: str) -> str:
    """The form names are compared in: 北京 站 (B) → 北京站b; ``Kamppi`` → ``kamppi``."""
    return _DROP.sub("", unicodedata.normalize("NFKC", text).casefold())


def _grams(key: str) -> set[str]:
    return {key[i : i + 2] for i in range(len(key) - 1)}


@dataclass
class NameIndex:
    keys: list[str]  # folded keys, sorted
    entry: np.ndarray  # entry of each key (int32)
    postings: dict[str, np.ndarray]  # bigram → positions in ``keys`` (sorted)
    exact: dict[str, list[int]]  # folded key → entries

    @classmethod
    def build(cls, names: Iterable[Iterable[str]]) -> NameIndex:
        """``names[i]`` are entry i's names (a name and its aliases)."""
        pairs = sorted({(k, i) for i, ns in enumerate(names) for n in ns if (k := fold(n))})
        keys = [k for k, _ in pairs]
        entry = np.fromiter((i for _, i in pairs), dtype=np.int32, count=len(pairs))
        grams: dict[str, list[int]] = defaultdict(list)
        exact: dict[str, list[int]] = defaultdict(list)
        for pos, (k, i) in enumerate(pairs):
            exact[k].append(i)
            for g in _grams(k):
                grams[g].append(pos)
        postings = {g: np.asarray(v, dtype=np.int32) for g, v in grams.items()}
        return cls(keys, entry, postings, dict(exact))

    def __len__(self) -> int:
        return len(self.keys)

    def match(self, query: str) -> tuple[np.ndarray, np.ndarray]:
        """(entries, match quality in 0..1), each entry once with its best key, unordered."""
        q = fold(query)
        if not q:
            return np.empty(0, np.int32), np.empty(0)
        lo = bisect.bisect_left(self.keys, q)
        hi = min(bisect.bisect_left(self.keys, q + _TOP), lo + PREFIX_SCAN)
        positions = list(range(lo, hi))
        quality = [
            EXACT if self.keys[p] == q else PREFIX + 0.15 * len(q) / len(self.keys[p]) for p in positions
        ]
        if len(q) >= 2:
            for p in self._infix(q):
                key = self.keys[p]
                if not key.startswith(q):
                    positions.append(p)
                    quality.append(INFIX + 0.2 * len(q) / len(key))
        if not positions:
            return np.empty(0, np.int32), np.empty(0)
        entries, qual = self.entry[np.asarray(positions)], np.asarray(quality)
        order = np.lexsort((-qual, entries))  # by entry, best quality first
        entries, qual = entries[order], qual[order]
        first = np.ones(entries.size, dtype=bool)
        first[1:] = entries[1:] != entries[:-1]
        return entries[first], qual[first]

    def _infix(self, q: str) -> list[int]:
        lists = [self.postings.get(g) for g in _grams(q)]
        if any(p is None for p in lists):
            return []
        lists.sort(key=len)  # type: ignore[arg-type]
        found = lists[0]
        for other in lists[1:4]:
            found = np.intersect1d(found, other, assume_unique=True)  # type: ignore[arg-type]
            if found.size == 0:
                return []
        return [int(p) for p in found[:INFIX_SCAN] if q in self.keys[int(p)]]


def distances_m(lon: np.ndarray, lat: np.ndarray, near: tuple[float, float]) -> np.ndarray:
    """Metres from ``near`` (equirectangular: exact enough within a city; NaN stays NaN)."""
    k = 111_195.0
    dx = (lon - near[0]) * np.cos(np.radians(near[1])) * k
    return np.hypot(dx, (lat - near[1]) * k)


def rank(quality: np.ndarray, weight: np.ndarray, distance: np.ndarray | None) -> np.ndarray:
    """Match first, fame second, nearness (halved at 5 km) as a third of the score."""
    score = quality * (0.85 + 0.15 * weight)
    if distance is not None:
        near = np.where(np.isnan(distance), 0.0, 1.0 / (1.0 + distance / 5000.0))
        score = score * (0.65 + 0.35 * near)
    return score
