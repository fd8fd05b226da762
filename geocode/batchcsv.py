"""Batch geocoding of CSV files: the input columns unchanged, match columns appended.

Streams in chunks, so memory stays flat for files of millions of rows. Each chunk is read by
pandas' C parser, its distinct addresses are matched once each (exports repeat addresses a lot),
and the result columns are built as arrays and written in one ``to_csv`` call: matching is what
costs, not the CSV.

The output is UTF-8 with a BOM (Excel then shows Chinese correctly) whatever the input encoding.
``gs_matched`` is ``true`` only for confident answers (status ``ok``); partial and ambiguous rows
keep their coordinates but say ``false`` with the reason in ``gs_message``, so filtering on
``gs_matched`` shows every row a person should look at. ``true``/``false`` (not 是/否) because
spreadsheets, pandas and SQL imports all read them as booleans. A result file geocoded again
gets fresh ``gs_`` columns instead of a second set.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from multiprocessing.pool import AsyncResult, Pool
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from geocode.gazetteer import default_gazetteer
from geocode.index import AddressIndex
from geocode.match import geocode
from geocode.model import GeocodeResult, Status
from layers.errors import InvalidInput
from layers.ingest.encoding import codec_name, detect

Source = BinaryIO | str | Path
Progress = Callable[[int, int], None]
CrsFn = Callable[[np.ndarray], np.ndarray]

ADDRESS_COLUMNS: tuple[str, ...] = (
    "地址", "详细地址", "注册地址", "住所", "地址信息", "单位地址", "经营地址", "办公地址", "通讯地址",
    "联系地址", "家庭住址", "现住址", "address", "addr", "full_address",
)  # fmt: skip
"""Header names taken as the address column when none is named (compared stripped, lower-cased)."""

RESULT_COLUMNS: tuple[str, ...] = (
    "gs_status", "gs_matched", "gs_level", "gs_level_code", "gs_score", "gs_lon", "gs_lat", "gs_crs",
    "gs_formatted_address", "gs_district", "gs_township", "gs_community", "gs_adcode", "gs_towncode",
    "gs_address_code", "gs_message",
)  # fmt: skip
MATCHED, NOT_MATCHED = "true", "false"
SAMPLE_BYTES = 1 << 20  # encoding, delimiter and header are read from the first MiB
_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_WORKBOOK = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")  # xlsx (zip) and legacy xls (OLE)
_LINE_RE = re.compile(r"line (\d+)")


@dataclass(slots=True)
class CsvLayout:
    """What the first MiB says about a file: how to read it and where the addresses are."""

    header: list[str]
    position: int  # of the address column
    encoding: str  # as detected or given (reported to users)
    codec: str  # used for streaming: a superset of ``encoding`` where one exists
    delimiter: str

    @property
    def column(self) -> str:
        return self.header[self.position]


@dataclass(slots=True)
class BatchCounts:
    rows: int = 0
    matched: int = 0
    partial: int = 0
    ambiguous: int = 0
    not_found: int = 0
    empty: int = 0
    column: str = field(default="", compare=False)
    encoding: str = field(default="", compare=False)

    def as_dict(self) -> dict[str, int]:
        """The numbers only (what jobs store and report)."""
        out = asdict(self)
        del out["column"], out["encoding"]
        return out

    def add(self, statuses: np.ndarray) -> None:
        self.rows += len(statuses)
        self.matched += int(np.count_nonzero(statuses == Status.ok.value))
        for status in (Status.partial, Status.ambiguous, Status.not_found, Status.empty):
            name = status.value
            setattr(self, name, getattr(self, name) + int(np.count_nonzero(statuses == name)))


@contextmanager
def _binary(target: Source, mode: str) -> Iterator[BinaryIO]:
    """A path opened (and closed), or a caller's stream used as it is (left open)."""
    if isinstance(target, str | Path):
        with open(target, mode) as f:
            yield f  # type: ignore[misc]
    else:
        yield target


def _listing(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:30])
    return shown + (f" … ({len(names)} in all)" if len(names) > 30 else "")


def _resolve_column(names: list[str], column: str | None) -> int:
    stripped = [n.strip() for n in names]
    if column is not None and column.strip():
        want = column.strip()
        if want in stripped:
            return stripped.index(want)
        raise InvalidInput(
            f"the CSV has no column {want!r}; its columns are {_listing(stripped)}", field="column"
        )
    lowered = [n.lower() for n in stripped]
    for name in ADDRESS_COLUMNS:
        if name in lowered:
            return lowered.index(name)
    for i, name in enumerate(lowered):
        if "地址" in name or "住址" in name or "address" in name:
            return i
    raise InvalidInput(
        "cannot tell which column holds the addresses; name it with column= "
        f"(the columns are {_listing(stripped)})",
        field="column",
    )


def _decode_sample(raw: bytes, encoding: str | None, full: bool) -> tuple[str, str, str]:
    """(text, encoding, streaming codec) of the first MiB; a byte-order mark beats ``encoding``."""
    if raw.startswith(_UTF16_BOMS):  # Excel's "Unicode text" export
        return raw.decode("utf-16", errors="replace"), "utf-16", "utf-16"
    body = raw[3:] if raw.startswith(_BOM) else raw
    if full:  # do not judge a character cut in half at the end of the sample
        body = body[: body.rfind(b"\n") + 1] or body
    if raw.startswith(_BOM):
        name, codec = "utf-8", "utf-8-sig"
    else:
        name = codec_name(encoding) if encoding else detect(body.split(b"\n"))
        # GB18030 decodes every GBK byte sequence the same way and also the rare characters GBK
        # lacks, which may first appear after the sample.
        codec = "gb18030" if name == "gbk" else name
    try:
        text = body.decode("utf-8" if codec == "utf-8-sig" else codec)
    except UnicodeDecodeError as exc:
        line = body[: exc.start].count(b"\n") + 1
        raise InvalidInput(
            f"line {line} is not valid {name} text; save the file as UTF-8 or pass the right encoding=",
            field="encoding",
            line=line,
        ) from None
    return text, name, codec


def inspect_csv(src: BinaryIO, column: str | None = None, encoding: str | None = None) -> CsvLayout:
    """Check a file can be geocoded before any work: encoding, header, address column.

    Leaves ``src`` at its start. Raises :class:`InvalidInput` naming ``file``, ``encoding`` or ``column``.
    """
    src.seek(0)
    raw = src.read(SAMPLE_BYTES)
    src.seek(0)
    if not raw.strip(b" \t\r\n" + _BOM):
        raise InvalidInput(
            "the file is empty; it needs a header row naming the columns, then addresses", field="file"
        )
    if raw.startswith(_WORKBOOK):
        raise InvalidInput(
            "this is an Excel workbook, not CSV: save it as CSV (UTF-8) and upload that", field="file"
        )
    if b"\x00" in raw and not raw.startswith(_UTF16_BOMS):
        raise InvalidInput("the file holds binary data, not CSV text", field="file")
    full = len(raw) == SAMPLE_BYTES
    if full and b"\n" not in raw:
        raise InvalidInput("the first line is longer than 1 MiB; is this a CSV file?", field="file", line=1)
    text, name, codec = _decode_sample(raw, encoding, full)
    first_line = text.lstrip("\r\n").split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    header = next(csv.reader(io.StringIO(text.lstrip("\r\n")), delimiter=delimiter), [])
    if not any(h.strip() for h in header):
        raise InvalidInput(
            "the file has no header row: its first line must name the columns", field="file", line=1
        )
    return CsvLayout(header, _resolve_column(header, column), name, codec, delimiter)


def estimate_rows(src: BinaryIO) -> int:
    """Data rows, counted as line breaks (quoted line breaks and blank lines make it an overestimate)."""
    src.seek(0)
    lines, last = 0, b"\n"
    while block := src.read(1 << 22):
        lines += block.count(b"\n")
        last = block[-1:]
    src.seek(0)
    return max(0, lines - 1 + (last != b"\n"))


def _chunks(src: BinaryIO, layout: CsvLayout, chunk: int) -> Iterator[pd.DataFrame]:
    reader = pd.read_csv(
        src,
        sep=layout.delimiter,
        header=0,
        names=range(len(layout.header)),
        index_col=False,
        dtype=str,
        na_filter=False,
        skip_blank_lines=True,
        encoding=layout.codec,
        chunksize=chunk,
    )
    rows = 0
    try:
        for frame in reader:
            rows += len(frame)
            yield frame
    except UnicodeDecodeError:
        raise InvalidInput(
            f"the file is not valid {layout.encoding} text after data row {rows}; save it in one encoding "
            "(UTF-8) or pass encoding=",
            field="encoding",
        ) from None
    except pd.errors.ParserError as exc:
        message = str(exc).replace("Error tokenizing data. C error: ", "")
        found = _LINE_RE.search(message)
        raise InvalidInput(
            f"cannot read the CSV: {message} (the header has {len(layout.header)} columns)",
            field="file",
            line=int(found.group(1)) if found else None,
        ) from None


def _result_columns(results: list[GeocodeResult], crs: str, crs_fn: CrsFn | None) -> dict[str, np.ndarray]:
    """One array per result column, one entry per distinct address."""
    n = len(results)
    text = {name: np.full(n, "", dtype=object) for name in RESULT_COLUMNS}
    score = np.full(n, np.nan)
    xy = np.full((n, 2), np.nan)
    for i, r in enumerate(results):
        text["gs_status"][i] = r.status.value
        text["gs_message"][i] = r.message or ""
        c = r.best
        if c is None:
            continue
        text["gs_level"][i] = c.level.label
        text["gs_level_code"][i] = c.level.value
        text["gs_formatted_address"][i] = c.formatted_address
        text["gs_district"][i] = c.district or ""
        text["gs_township"][i] = c.township or ""
        text["gs_community"][i] = c.community or ""
        text["gs_adcode"][i] = c.adcode or ""
        text["gs_towncode"][i] = c.towncode or ""
        text["gs_address_code"][i] = c.address_code or ""
        score[i] = c.score
        xy[i] = (c.lon, c.lat)
    located = ~np.isnan(xy[:, 0])
    if crs_fn is not None and located.any():
        xy[located] = crs_fn(xy[located])
    statuses = text["gs_status"]
    out: dict[str, np.ndarray] = dict(text)
    out["gs_matched"] = np.where(statuses == Status.ok.value, MATCHED, NOT_MATCHED).astype(object)
    out["gs_score"] = np.round(score, 3)
    out["gs_lon"] = np.round(xy[:, 0], 7)
    out["gs_lat"] = np.round(xy[:, 1], 7)
    out["gs_crs"] = np.where(located, crs, "").astype(object)
    return out


@dataclass(frozen=True, slots=True)
class _Matcher:
    """Everything matching needs; forked worker processes inherit it instead of unpickling it."""

    index: AddressIndex
    city: str | None
    district: str | None
    crs: str
    crs_fn: CrsFn | None

    def __call__(self, addresses: np.ndarray) -> dict[str, np.ndarray]:
        gaz = default_gazetteer()
        results = [
            geocode(self.index, a, city=self.city, district=self.district, limit=1, gaz=gaz)
            for a in addresses
        ]
        return _result_columns(results, self.crs, self.crs_fn)


_inherited: _Matcher | None = None  # set only while a pool forks, under the lock
_fork_lock = threading.Lock()


def _match_in_worker(addresses: np.ndarray) -> dict[str, np.ndarray]:
    assert _inherited is not None
    return _inherited(addresses)


def _pool(matcher: _Matcher, workers: int) -> Pool | None:
    global _inherited
    if workers <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        return None
    with _fork_lock:
        _inherited = matcher
        try:
            return multiprocessing.get_context("fork").Pool(workers)
        finally:
            _inherited = None


Chunk = tuple[pd.DataFrame, dict[str, np.ndarray]]


def _matched(
    frames: Iterator[pd.DataFrame], position: int, matcher: _Matcher, workers: int
) -> Iterator[Chunk]:
    """(chunk, result columns per row), in input order; distinct addresses are matched once.

    With ``workers`` > 1 chunks go to forked processes (the index is shared copy-on-write, not
    copied), at most two per process in flight so memory stays flat.
    """
    pool = _pool(matcher, workers)
    pending: deque[tuple[pd.DataFrame, np.ndarray, AsyncResult]] = deque()
    try:
        for frame in frames:
            codes, uniques = pd.factorize(frame[position].to_numpy(dtype=object))
            if pool is None:
                columns = matcher(uniques)
                yield frame, {k: v[codes] for k, v in columns.items()}
                continue
            pending.append((frame, codes, pool.apply_async(_match_in_worker, (uniques,))))
            while pending and (len(pending) > 2 * workers or pending[0][2].ready()):
                yield _take(pending)
        while pending:
            yield _take(pending)
    finally:
        if pool is not None:
            pool.terminate()


def _take(pending: deque) -> Chunk:
    frame, codes, result = pending.popleft()
    return frame, {k: v[codes] for k, v in result.get().items()}


def geocode_csv(
    index: AddressIndex,
    src: Source,
    dst: Source,
    *,
    column: str | None = None,
    city: str | None = None,
    district: str | None = None,
    crs: str = "EPSG:4326",
    crs_fn: CrsFn | None = None,
    encoding: str | None = None,
    unmatched: Source | None = None,
    progress: Progress | None = None,
    chunk: int = 2000,
    workers: int = 1,
) -> BatchCounts:
    """Geocode every row of ``src`` (a CSV with a header) into ``dst``; see the module docstring.

    ``crs_fn`` converts an (n, 2) WGS84 lon/lat array into ``crs``, the name written to ``gs_crs``.
    ``unmatched``, when given, receives the same output restricted to rows not matched. ``progress``
    is called after every chunk with (rows done, rows expected). ``src`` must be seekable; ``dst``
    is written from its current position and left open; nothing is written before the header and
    the address column are known good. ``workers`` > 1 matches in that many forked processes: for
    command-line use, not inside a threaded server.
    """
    with _binary(src, "rb") as source:
        layout = inspect_csv(source, column, encoding)
        expected = estimate_rows(source) if progress else 0
        names = [h.strip() for h in layout.header]
        keep = [i for i, name in enumerate(names) if name not in RESULT_COLUMNS]
        header = [layout.header[i] for i in keep] + list(RESULT_COLUMNS)
        counts = BatchCounts(column=layout.column, encoding=layout.encoding)
        matcher = _Matcher(index, city, district, crs, crs_fn)
        default_gazetteer()  # built before any fork, so workers inherit it
        with _binary(dst, "wb") as out_raw, _optional_binary(unmatched) as flagged_raw:
            writers = [_writer(out_raw)] + ([_writer(flagged_raw)] if flagged_raw is not None else [])
            try:
                for w in writers:
                    csv.writer(w, lineterminator="\n").writerow(header)
                for frame, columns in _matched(
                    _chunks(source, layout, chunk), layout.position, matcher, workers
                ):
                    part = frame[keep]
                    part.columns = range(len(keep))
                    part = pd.concat([part, pd.DataFrame(columns, index=frame.index)], axis=1)
                    part.to_csv(writers[0], header=False, index=False, lineterminator="\n")
                    flagged = columns["gs_matched"] != MATCHED
                    if len(writers) > 1 and flagged.any():
                        part[flagged].to_csv(writers[1], header=False, index=False, lineterminator="\n")
                    counts.add(columns["gs_status"])
                    if progress:
                        expected = max(expected, counts.rows)
                        progress(counts.rows, expected)
            finally:
                for w in writers:
                    w.flush()
                    w.detach()
    if progress:
        progress(counts.rows, counts.rows)
    return counts


def _optional_binary(target: Source | None) -> AbstractContextManager[BinaryIO | None]:
    return _binary(target, "wb") if target is not None else nullcontext()


def _writer(raw: BinaryIO) -> io.TextIOWrapper:
    """UTF-8 text on ``raw``, starting with the BOM; detach it, do not close it."""
    w = io.TextIOWrapper(raw, encoding="utf-8", newline="")
    w.write("\ufeff")
    return w
