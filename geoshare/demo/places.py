"""The demo city's place names: the best-known Beijing landmarks and the real designated hospitals.

Landmarks (``data/beijing_landmarks.csv``) are written for this project with approximate real
points. Hospitals (``data/designated_hospitals_2020.csv``, MIT, see ``data/PROVENANCE.md``) come
with addresses only: the engine's own geocoder places those whose road the demo address database
has in their district; the others are stored without a point, never with a made-up one.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from sqlalchemy import Connection

from geocode.index import AddressIndex, load_index
from geocode.places.csvfile import read_csv
from geocode.places.locate import locate
from geocode.places.model import PlaceRecord
from geocode.places.store import replace_places

DATA = Path(__file__).parent / "data"
SOURCE = "demo"
_NOTE = re.compile(r"[（(]([^）)]*)[）)]")


def landmarks() -> list[PlaceRecord]:
    return read_csv(DATA / "beijing_landmarks.csv")


def hospitals(province: str = "北京市") -> list[PlaceRecord]:
    """The province's hospitals; a note in brackets (another name) becomes an alias, and so does the
    name without its 北京市 prefix (people say 垂杨柳医院)."""
    out: list[PlaceRecord] = []
    with (DATA / "designated_hospitals_2020.csv").open(encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["province"] != province:
                continue
            full = row["name"].strip()
            name = _NOTE.sub("", full).strip()
            aliases = [a.strip() for a in _NOTE.findall(full) if a.strip()]
            for prefix in (province, province.removesuffix("市")):
                if name.startswith(prefix) and len(name) > len(prefix) + 2:
                    aliases.append(name[len(prefix) :])
                    break
            district = row["district"].strip()
            out.append(
                PlaceRecord(
                    source_id=row["source_id"],
                    name=name,
                    category="hospital",
                    aliases=aliases,
                    code=row["source_id"],
                    address=row["address"].strip() or None,
                    weight=0.7,
                    tags={"district": district} if district else {},
                )
            )
    return out


def demo_places(index: AddressIndex) -> tuple[list[PlaceRecord], dict[str, int]]:
    """Landmarks and hospitals, the hospitals located on ``index`` where it can."""
    found = hospitals()
    counts = locate(index, found)
    marks = landmarks()
    locate(index, marks)  # only fills their districts: they have points
    return marks + found, counts


def load_demo_places(conn: Connection) -> dict[str, int]:
    """Replace the demo's places (source ``demo``) on the address database now in ``conn``."""
    records, counts = demo_places(load_index(conn))
    written = replace_places(conn, SOURCE, records)
    return {"places": written, **{f"hospitals {k}": v for k, v in counts.items()}}
