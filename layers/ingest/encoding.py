"""Text encodings of DBF tables and CSV files: Chinese government data arrives in GBK as often as UTF-8."""

from __future__ import annotations

import codecs
from collections.abc import Sequence

import numpy as np
from charset_normalizer import from_bytes

from layers.errors import InvalidInput

# .cpg contents seen in the wild → Python codec names
_CPG_ALIASES = {
    "UTF8": "utf-8", "UTF-8": "utf-8", "65001": "utf-8",
    "GBK": "gbk", "CP936": "gbk", "936": "gbk", "ANSI 936": "gbk", "GB2312": "gbk",
    "GB18030": "gb18030", "54936": "gb18030",
    "BIG5": "big5", "950": "big5",
    "88591": "latin-1", "8859_1": "latin-1", "ISO-8859-1": "latin-1", "ISO88591": "latin-1",
    "1252": "cp1252", "CP1252": "cp1252", "ANSI 1252": "cp1252",
}  # fmt: skip
_CANDIDATES = ("utf-8", "gbk", "gb18030")


def codec_name(label: str, *, field: str = "encoding") -> str:
    """Normalise an encoding label to a Python codec name, or say it is unknown."""
    key = label.strip().upper()
    name = _CPG_ALIASES.get(key, label.strip())
    try:
        return codecs.lookup(name).name
    except LookupError as exc:
        raise InvalidInput(f"unknown text encoding {label!r}", field=field) from exc


def cpg_codec(cpg_text: str | None) -> str | None:
    """The codec a .cpg file names, or None when it is absent or unintelligible."""
    if not cpg_text or not cpg_text.strip():
        return None
    try:
        return codec_name(cpg_text)
    except InvalidInput:
        return None


def first_undecodable(values: Sequence[bytes], encoding: str) -> int | None:
    """Index of the first value that does not decode strictly, or None if all do.

    Decodes all values as one buffer (fast); only on failure walks to the culprit.
    """
    if not values:
        return None
    joined = b"\n".join(values)
    try:
        joined.decode(encoding)
        return None
    except UnicodeDecodeError as exc:
        ends = np.cumsum([len(v) + 1 for v in values])
        guess = int(np.searchsorted(ends, exc.start, side="right"))
    for i in range(max(0, guess - 1), len(values)):
        try:
            values[i].decode(encoding)
        except UnicodeDecodeError:
            return i
    return guess


def detect(values: Sequence[bytes]) -> str:
    """UTF-8 strictly, then GBK, then GB18030, then charset-normalizer's best guess."""
    for encoding in _CANDIDATES:
        if first_undecodable(values, encoding) is None:
            return encoding
    best = from_bytes(b"\n".join(values[:5000])).best()
    if best is not None and first_undecodable(values, best.encoding) is None:
        return codecs.lookup(best.encoding).name
    raise InvalidInput("cannot tell the text encoding of the file; pass encoding=", field="encoding")
