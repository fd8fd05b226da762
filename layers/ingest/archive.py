"""Zip archives handled defensively: a corrupt, truncated or hostile upload is a clear 4xx, never a crash."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from layers.errors import InvalidInput

READABLE_MEMBERS = (".shp", ".gpkg", ".geojson", ".json")
MAX_UNCOMPRESSED = 16 * 1024**3


@dataclass(frozen=True)
class ZipMember:
    archive: Path
    name: str  # path inside the archive

    @property
    def vsi_path(self) -> str:
        return f"/vsizip/{self.archive.resolve()}/{self.name}"

    def sibling(self, suffix: str) -> str | None:
        """The archive name of the same-stem file with ``suffix`` (case-insensitive), if present."""
        stem = str(PurePosixPath(self.name).with_suffix("")).lower()
        with zipfile.ZipFile(self.archive) as zf:
            for info in zf.infolist():
                if info.filename.lower() == stem + suffix:
                    return info.filename
        return None

    def read(self, name: str) -> bytes:
        with zipfile.ZipFile(self.archive) as zf:
            return zf.read(name)


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return p.is_absolute() or ".." in p.parts or (len(name) > 1 and name[1] == ":")


def open_archive(path: Path) -> ZipMember:
    """Check the archive whole (CRCs, names, size) and return the one dataset in it."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            bad_name = next((i.filename for i in infos if _unsafe(i.filename)), None)
            if bad_name is not None:
                raise InvalidInput(f"the zip archive holds an unsafe path {bad_name!r}", field="file")
            if sum(i.file_size for i in infos) > MAX_UNCOMPRESSED:
                raise InvalidInput("the zip archive expands to more than 16 GiB", field="file")
            corrupt = zf.testzip()
            if corrupt is not None:
                raise InvalidInput(f"the zip archive is corrupt at {corrupt!r}", field="file")
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise InvalidInput(f"not a readable zip archive (truncated or corrupt): {exc}", field="file") from exc
    names = [
        i.filename
        for i in infos
        if not i.is_dir()
        and i.filename.lower().endswith(READABLE_MEMBERS)
        and not PurePosixPath(i.filename).name.startswith(("._", "."))
        and "__MACOSX" not in i.filename
    ]
    shapefiles = [n for n in names if n.lower().endswith(".shp")]
    candidates = shapefiles or names
    if not candidates:
        raise InvalidInput("the zip archive holds no .shp, .gpkg or .geojson file", field="file")
    if len(candidates) > 1:
        listed = ", ".join(sorted(candidates)[:5])
        raise InvalidInput(
            f"the zip archive holds several datasets ({listed}); publish one per layer", field="file"
        )
    return ZipMember(path, candidates[0])
