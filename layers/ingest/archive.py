"""Zip archives handled defensively: a corrupt, truncated or hostile upload is a clear 4xx, never a crash.

GDAL never reads inside the archive (``/vsizip/`` would inflate a bomb without bound, and cannot
read bzip2 or LZMA members at all): the dataset's members are streamed out to a folder through
decompressors asked for at most ``OUT`` bytes at a time, and what comes out is counted against
``ReadLimits`` as it comes, for every codec. The zip headers are trusted only for where a member
starts; its size and CRC are checked against what it really holds once it is out.
"""

from __future__ import annotations

import bz2
import lzma
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from layers.errors import InvalidInput
from layers.ingest.limits import ReadLimits, size_text, too_large

READABLE_MEMBERS = (".shp", ".gpkg", ".geojson", ".json")
SHAPEFILE_PARTS = (".shp", ".shx", ".dbf", ".prj", ".cpg")
IN, OUT = 64 * 1024, 1024 * 1024  # compressed bytes read, expanded bytes asked for, at a time
MAX_LZMA_DICTIONARY = 64 * 1024**2  # liblzma allocates the dictionary the member asks for up front


class _Corrupt(Exception):
    """A member's compressed data ends early, is not what its codec expects or not what its header says."""

    def __init__(self, reason: str = "its compressed data is damaged or cut short") -> None:
        super().__init__(reason)
        self.reason = reason


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name.replace("\\", "/"))
    return p.is_absolute() or ".." in p.parts or (len(name) > 1 and name[1] == ":")


def _dataset(infos: list[zipfile.ZipInfo]) -> zipfile.ZipInfo:
    """The one dataset of the archive (a shapefile wins over other readable members)."""
    readable = [
        i
        for i in infos
        if not i.is_dir()
        and i.filename.lower().endswith(READABLE_MEMBERS)
        and not PurePosixPath(i.filename).name.startswith(("._", "."))
        and "__MACOSX" not in i.filename
    ]
    candidates = [i for i in readable if i.filename.lower().endswith(".shp")] or readable
    if not candidates:
        raise InvalidInput("the zip archive holds no .shp, .gpkg or .geojson file", field="file")
    if len(candidates) > 1:
        listed = ", ".join(sorted(i.filename for i in candidates)[:5])
        raise InvalidInput(
            f"the zip archive holds several datasets ({listed}); publish one per layer", field="file"
        )
    return candidates[0]


def _parts(dataset: zipfile.ZipInfo, infos: list[zipfile.ZipInfo]) -> dict[str, zipfile.ZipInfo]:
    """Suffix → member: the dataset alone, or a shapefile with its sidecars (case-insensitive)."""
    name = dataset.filename
    if not name.lower().endswith(".shp"):
        return {PurePosixPath(name).suffix.lower(): dataset}
    stem = name[:-4].lower()
    parts: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        lowered = info.filename.lower()
        for suffix in SHAPEFILE_PARTS:
            if lowered == stem + suffix:
                parts.setdefault(suffix, info)
    return parts


def _raw(f: BinaryIO, info: zipfile.ZipInfo, archive_size: int) -> Iterator[bytes]:
    """The member's compressed bytes, read from its local header on, never past the archive's end."""
    f.seek(info.header_offset)
    head = f.read(30)
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise _Corrupt
    start = (
        info.header_offset
        + 30
        + int.from_bytes(head[26:28], "little")
        + int.from_bytes(head[28:30], "little")
    )
    left = max(0, min(info.compress_size, archive_size - start))
    f.seek(start)
    while left > 0 and (chunk := f.read(min(IN, left))):
        left -= len(chunk)
        yield chunk


def _deflated(raw: Iterator[bytes]) -> Iterator[bytes]:
    d = zlib.decompressobj(-15)
    for data in raw:
        while data and not d.eof:
            yield d.decompress(data, OUT)
            data = d.unconsumed_tail
        if d.eof:
            return
    yield d.flush()  # what is left of a match that filled the last output block: a few hundred bytes
    if not d.eof:
        raise _Corrupt


def _bounded(raw: Iterator[bytes], d: bz2.BZ2Decompressor | lzma.LZMADecompressor) -> Iterator[bytes]:
    """bzip2/LZMA: zipfile asks these for everything a chunk holds (one 4 KB chunk can be 5 GiB of
    output); asking for ``OUT`` at a time and draining keeps each step small."""
    for data in raw:
        yield d.decompress(data, OUT)
        while not d.eof and not d.needs_input:
            yield d.decompress(b"", OUT)
        if d.eof:
            return
    raise _Corrupt


def _lzma(raw: Iterator[bytes]) -> Iterator[bytes]:
    """Zip's LZMA members start with a version, the properties' length (5) and the properties."""
    head = b""
    for chunk in raw:
        head += chunk
        if len(head) >= 9:
            break
    if len(head) < 9 or int.from_bytes(head[2:4], "little") != 5:
        raise _Corrupt
    try:
        options = lzma._decode_filter_properties(lzma.FILTER_LZMA1, head[4:9])  # noqa: SLF001 - as zipfile does
    except lzma.LZMAError as exc:
        raise _Corrupt from exc
    if options.get("dict_size", 0) > MAX_LZMA_DICTIONARY:
        raise InvalidInput("the zip archive uses an LZMA dictionary larger than 64 MiB", field="file")

    def body() -> Iterator[bytes]:
        yield head[9:]
        yield from raw

    yield from _bounded(body(), lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[options]))


def _expanded(raw: Iterator[bytes], info: zipfile.ZipInfo) -> Iterator[bytes]:
    method = info.compress_type
    if method == zipfile.ZIP_STORED:
        return raw
    if method == zipfile.ZIP_DEFLATED:
        return _deflated(raw)
    if method == zipfile.ZIP_BZIP2:
        return _bounded(raw, bz2.BZ2Decompressor())
    if method == zipfile.ZIP_LZMA:
        return _lzma(raw)
    raise InvalidInput(
        f"{info.filename!r} in the zip archive uses compression method {method}; "
        "re-create the archive with deflate (the usual zip)",
        field="file",
    )


def _extract(
    f: BinaryIO, info: zipfile.ZipInfo, target: Path, *, size_of: int, budget: list[int], label: str,
    limits: ReadLimits,
) -> None:  # fmt: skip
    """Stream one member to ``target``, counting its real size against the limits as it comes
    (``budget[0]``: what the archive's members have expanded to so far; ``size_of``: the archive's)."""
    if info.flag_bits & 0x1:
        raise InvalidInput(f"{info.filename!r} in the zip archive is encrypted", field="file")
    consumed = size = crc = 0

    def counted() -> Iterator[bytes]:
        nonlocal consumed
        for chunk in _raw(f, info, size_of):
            consumed += len(chunk)
            yield chunk

    with target.open("wb") as out:
        for block in _expanded(counted(), info):
            size += len(block)
            budget[0] += len(block)
            if budget[0] > limits.max_bytes:
                raise too_large(label, "the zip archive's content", limits)
            if size > max(limits.ratio_floor, limits.max_ratio * consumed):
                raise InvalidInput(
                    f"{label}: {info.filename!r} expands more than {limits.max_ratio:g} times "
                    f"(past {size_text(size)} from {size_text(consumed)}); this looks like a zip bomb",
                    field="file",
                )
            if size > info.file_size:
                break  # more than its header declares: corrupt or forged, said below
            crc = zlib.crc32(block, crc)
            out.write(block)
    if size != info.file_size:
        more = "more" if size > info.file_size else "other"
        raise _Corrupt(f"it holds {more} than the {info.file_size:,} bytes its header declares")
    if crc != info.CRC:
        raise _Corrupt("its CRC does not match")


def extract_dataset(path: Path, folder: Path, label: str, limits: ReadLimits) -> tuple[Path, str]:
    """Check the archive, stream its one dataset (a shapefile with its sidecars) into ``folder``
    within ``limits``; the extracted dataset's path and its name inside the archive."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise InvalidInput(
            f"{label} is not a readable zip archive (truncated or corrupt): {reason}", field="file"
        ) from exc
    bad_name = next((i.filename for i in infos if _unsafe(i.filename)), None)
    if bad_name is not None:
        raise InvalidInput(f"the zip archive holds an unsafe path {bad_name!r}", field="file")
    dataset = _dataset(infos)
    parts = _parts(dataset, infos)
    if sum(i.file_size for i in parts.values()) > limits.max_bytes:  # honest headers fail early
        raise too_large(label, "the zip archive's content", limits)
    budget = [0]
    archive_size = path.stat().st_size
    with path.open("rb") as f:
        for suffix, info in parts.items():
            try:
                target = folder / f"dataset{suffix}"
                _extract(f, info, target, size_of=archive_size, budget=budget, label=label, limits=limits)
            except (_Corrupt, zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, _Corrupt) else "its compressed data is damaged"
                raise InvalidInput(
                    f"the zip archive is corrupt at {info.filename!r}: {reason}", field="file"
                ) from exc
    return folder / f"dataset{PurePosixPath(dataset.filename).suffix.lower()}", dataset.filename
