"""Places from a CSV file: ``name`` plus any of ``aliases``, ``category``, ``code``, ``address``,
``lon``/``lat`` (WGS84), ``district``, ``id``, ``weight``.

Headers may be the English names or the usual Chinese ones (名称, 别名, 类别, 编码, 地址, 经度,
纬度, 区县); aliases are separated by ``|`` or ``;``. A row without coordinates keeps its address
and is placed later by the geocoder (``locate``) or not at all. Rows without a name, with an
unknown category or with coordinates that are not numbers are refused with their line number.
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from geocode.places.model import CATEGORIES, PlaceRecord
from layers.errors import InvalidInput

HEADERS: dict[str, tuple[str, ...]] = {
    "id": ("id", "source_id", "编号"),
    "name": ("name", "名称", "地名"),
    "aliases": ("aliases", "alias", "别名"),
    "category": ("category", "类别", "分类"),
    "code": ("code", "编码", "代码"),
    "address": ("address", "地址"),
    "lon": ("lon", "lng", "x", "经度"),
    "lat": ("lat", "y", "纬度"),
    "district": ("district", "区县"),
    "weight": ("weight", "权重"),
}
_LABELS = {label: key for key, label in CATEGORIES.items()}
_SPLIT = re.compile(r"[|;；]")


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    lowered = [h.strip().lower() for h in header]
    for field, names in HEADERS.items():
        for name in names:
            if name in lowered:
                found[field] = lowered.index(name)
                break
    if "name" not in found:
        raise InvalidInput("the CSV file has no name column (name or 名称)", field="name")
    return found


def _number(value: str, field: str, line: int) -> float | None:
    if not value.strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise InvalidInput(f"{field} is not a number: {value[:40]!r}", field=field, line=line) from None
    if not math.isfinite(number):
        raise InvalidInput(f"{field} must be finite", field=field, line=line)
    return number


def read_csv(path: Path, category: str = "other") -> list[PlaceRecord]:
    """Every row of the file as a place (``category`` where the file has none)."""
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            content = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise InvalidInput("the CSV file is neither UTF-8 nor GB18030", field="file")
    rows = list(csv.reader(io.StringIO(content)))
    if not rows:
        raise InvalidInput("the CSV file is empty", field="file")
    cols = _columns(rows[0])
    out: list[PlaceRecord] = []
    for line, row in enumerate(rows[1:], start=2):

        def get(field: str, row: list[str] = row) -> str:
            i = cols.get(field)
            return row[i].strip() if i is not None and i < len(row) else ""

        name = get("name")
        if not name:
            raise InvalidInput("a row has no name", field="name", line=line)
        kind = get("category") or category
        kind = _LABELS.get(kind, kind)
        if kind not in CATEGORIES:
            raise InvalidInput(f"unknown category {kind!r}; one of {', '.join(CATEGORIES)}", field="category",
                               line=line)  # fmt: skip
        lon, lat = _number(get("lon"), "lon", line), _number(get("lat"), "lat", line)
        if (lon is None) != (lat is None):
            raise InvalidInput("give both lon and lat, or neither", field="lon", line=line)
        weight = _number(get("weight"), "weight", line)
        out.append(
            PlaceRecord(
                source_id=get("id") or str(line - 1),
                name=name,
                category=kind,
                aliases=[a.strip() for a in _SPLIT.split(get("aliases")) if a.strip()],
                code=get("code") or None,
                address=get("address") or None,
                lon=lon,
                lat=lat,
                weight=min(max(weight, 0.0), 1.0) if weight is not None else 0.5,
                located_by="source" if lon is not None else None,
                tags={"district": get("district")} if get("district") else {},
            )
        )
    return out
