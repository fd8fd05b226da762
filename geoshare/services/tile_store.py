"""A shared tile store on disk, for base map tiles every reader gets alike (anonymous, public parts).

Workers look here after their in-process cache and write what they render; ``geoshare tiles seed``
fills it ahead of time. A file's name is the tile's ETag, which pins every part's layer version, so
a publish makes new names and stale files are simply never read again (``prune`` removes them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class TileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, tms: str, z: int, x: int, y: int, etag: str) -> Path:
        return self.root / "basemap" / tms / str(z) / str(x) / str(y) / f"{etag.strip(chr(34))}.mvt"

    def get(self, tms: str, z: int, x: int, y: int, etag: str) -> bytes | None:
        try:
            return self._path(tms, z, x, y, etag).read_bytes()
        except OSError:
            return None

    def put(self, tms: str, z: int, x: int, y: int, etag: str, data: bytes) -> None:
        """Atomic: readers see the whole tile or none (write a temporary file, then rename)."""
        path = self._path(tms, z, x, y, etag)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError:
            pass  # a full or read-only disk costs a render, never a failed request

    def prune(self, keep: set[str] | None = None) -> int:
        """Remove stored tiles whose ETag is not in ``keep`` for their position (None: all)."""
        removed = 0
        for file in self.root.glob("basemap/*/*/*/*/*.mvt"):
            if keep is None or file.stem not in keep:
                file.unlink(missing_ok=True)
                removed += 1
        return removed


def tile_store(settings: object) -> TileStore | None:
    root = getattr(settings, "tile_store_dir", None)
    return TileStore(Path(root)) if root else None
