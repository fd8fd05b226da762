"""Reading the raw text cells of a DBF, to choose its encoding before GDAL decodes it."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from layers.errors import InvalidInput
from layers.ingest.encoding import cpg_codec, detect, first_undecodable


@dataclass(frozen=True)
class DbfText:
    """Non-ASCII byte strings of a DBF (field names and character cells) with their record numbers."""

    values: list[bytes]
    records: list[int]  # 1-based record number per value; 0 for a field name


def non_ascii_text(data: bytes) -> DbfText:
    if len(data) < 32:
        raise InvalidInput("the .dbf attribute table is truncated", field="file")
    n_records, header_len, record_len = struct.unpack("<IHH", data[4:12])
    values: list[bytes] = []
    records: list[int] = []
    fields: list[tuple[int, int]] = []  # (offset in record, length) of character fields
    offset = 1  # the deletion flag
    pos = 32
    while pos + 32 <= header_len and data[pos] != 0x0D:
        desc = data[pos : pos + 32]
        name = desc[:11].split(b"\x00", 1)[0]
        if any(b >= 0x80 for b in name):
            values.append(name)
            records.append(0)
        length = desc[16]
        if desc[11:12] in (b"C", b"M"):
            fields.append((offset, length))
        offset += length
        pos += 32
    body = data[header_len : header_len + n_records * record_len]
    n_complete = len(body) // record_len if record_len else 0
    if n_complete == 0 or not fields:
        return DbfText(values, records)
    table = np.frombuffer(body[: n_complete * record_len], dtype=np.uint8).reshape(n_complete, record_len)
    for start, length in fields:
        cells = table[:, start : start + length]
        rows = np.flatnonzero((cells >= 0x80).any(axis=1))
        for r in rows.tolist():
            values.append(cells[r].tobytes().rstrip(b" \x00"))
            records.append(r + 1)
    return DbfText(values, records)


def dbf_encoding(data: bytes, cpg_text: str | None, forced: str | None) -> tuple[str, str]:
    """Pick the DBF's encoding and say how: ``forced`` wins, then a truthful .cpg, then detection.

    A forced encoding that cannot decode the table is an error naming the first bad record; a .cpg
    that lies (common with GBK data labelled UTF-8) is ignored in favour of detection.
    """
    text = non_ascii_text(data)
    if forced:
        bad = first_undecodable(text.values, forced)
        if bad is not None:
            record = text.records[bad]
            where = f"record {record}" if record else "a field name"
            raise InvalidInput(
                f"the attribute table is not valid {forced} text ({where}); try another encoding "
                "or leave it out to detect it",
                field="encoding",
                line=record or None,
            )
        return forced, "given"
    declared = cpg_codec(cpg_text)
    if declared and first_undecodable(text.values, declared) is None:
        return declared, "cpg"
    return detect(text.values), "detected"
