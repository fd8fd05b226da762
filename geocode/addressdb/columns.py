"""Which column of an address file holds which field: default header aliases and overrides.

A city's address export names its columns in Chinese (门牌号, 街路巷) or English (door, road), so
each canonical field has a list of aliases matched against the headers (whole header, case and
surrounding blanks ignored, never by substring: 区 must not find 小区). A mapping file or
``--column field=header`` options win over the aliases; mapping a field to an empty header
switches it off (``--column compound=``) when an alias would pick the wrong column.

Mandatory: ``road`` and ``door``, and coordinates (``lon`` + ``lat``) unless the file carries
point geometry. Divisions are optional: codes win over names, names over the point's location.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from layers.errors import InvalidInput
from layers.ingest.tabular import LAT_NAMES, LON_NAMES


@dataclass(frozen=True)
class Field:
    name: str
    aliases: tuple[str, ...]
    description: str


FIELDS: tuple[Field, ...] = (
    Field("province", ("省", "省份", "省名", "省/直辖市", "province"), "province (must be the city's own)"),
    Field("city", ("市", "城市", "地市", "city"), "city (must be the city's own)"),
    Field(
        "district",
        ("区县", "区", "县", "区/县", "县区", "市辖区", "区县名称", "district", "county"),
        "district or county (区/县), current or former name",
    ),
    Field(
        "street",
        ("街道", "乡镇", "街道/乡镇", "乡镇街道", "街乡", "街道办事处", "street", "town", "township"),
        "street or town (街道/地区/镇/乡)",
    ),
    Field(
        "community",
        ("社区", "村", "社区居委会", "社区/村", "村居", "居委会", "村委会", "community", "village"),
        "community or village (社区/村)",
    ),
    Field(
        "road",
        ("道路", "街路巷", "路", "道路名称", "街路巷名称", "路名", "road", "road_name"),
        "road, street or hutong name (街路巷)",
    ),
    Field(
        "door",
        (
            "门牌号",
            "门址",
            "门牌",
            "门牌号码",
            "门楼牌号",
            "门号",
            "door",
            "door_number",
            "house_number",
        ),
        'door number: "22号", "甲12号", "12-1号", "22"',
    ),
    Field(
        "compound",
        ("小区", "院落", "小区名称", "小区/院落", "院落名称", "compound", "estate"),
        "compound or residential estate (小区/院)",
    ),
    Field(
        "building",
        ("楼栋", "楼号", "楼", "楼栋号", "栋", "幢", "building", "building_number"),
        'building number: "3号楼", "3栋", "3"; a row with one is a building address',
    ),
    Field("units", ("单元数", "单元", "units"), "number of units (单元) of the building"),
    Field("floors", ("层数", "楼层数", "地上层数", "总层数", "floors"), "number of floors of the building"),
    Field("lon", tuple(dict.fromkeys(("经度", "x坐标", *LON_NAMES))), "longitude (or x)"),
    Field("lat", tuple(dict.fromkeys(("纬度", "y坐标", *LAT_NAMES))), "latitude (or y)"),
    Field(
        "district_code",
        ("区县代码", "区县编码", "区县区划代码", "district_code", "adcode"),
        "6-digit district code (wins over the name)",
    ),
    Field(
        "street_code",
        ("街道代码", "乡镇代码", "街道编码", "乡镇编码", "street_code", "towncode"),
        "9-digit street/town code (wins over the name)",
    ),
    Field(
        "community_code",
        ("社区代码", "村居代码", "社区编码", "村居编码", "community_code"),
        "12-digit community/village code (wins over the name)",
    ),
)
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
_BY_NAME = {f.name: f for f in FIELDS}


def _norm(header: str) -> str:
    return header.replace("\ufeff", "").strip().lower()


def _field(name: str, where: str) -> Field:
    found = _BY_NAME.get(name.strip())
    if found is None:
        raise InvalidInput(
            f"{where}: unknown field {name!r}; fields are {', '.join(FIELD_NAMES)}", field="mapping"
        )
    return found


@dataclass(frozen=True)
class ColumnMapping:
    """Overrides (field → header, "" = ignore the field) on top of the default aliases."""

    overrides: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_options(cls, mapping_file: Path | None = None, columns: Sequence[str] = ()) -> ColumnMapping:
        """``--mapping`` TOML (a ``[columns]`` table or top-level keys), then ``--column`` options."""
        merged: dict[str, str] = {}
        if mapping_file is not None:
            merged.update(load_mapping_file(mapping_file))
        merged.update(parse_column_options(columns))
        return cls(merged)

    def resolve(self, headers: Sequence[str], *, has_geometry: bool = False) -> dict[str, str]:
        """Field → header for every field found; mandatory fields missing raise, listing the headers."""
        by_norm: dict[str, str] = {}
        for h in headers:
            by_norm.setdefault(_norm(h), h)
        shown = ", ".join(repr(h) for h in headers[:40]) or "none"
        found: dict[str, str] = {}
        for name, header in self.overrides.items():
            _field(name, "column mapping")
            if not header.strip():
                continue
            actual = header if header in headers else by_norm.get(_norm(header))
            if actual is None:
                raise InvalidInput(
                    f"column mapping {name}={header!r}: the file has no such column; headers found: {shown}",
                    field=name,
                )
            found[name] = actual
        taken = set(found.values())
        for f in FIELDS:
            if f.name in self.overrides:
                continue
            for alias in f.aliases:
                header = by_norm.get(_norm(alias))
                if header is not None and header not in taken:
                    found[f.name] = header
                    taken.add(header)
                    break
        mandatory = ["road", "door"] + ([] if has_geometry else ["lon", "lat"])
        for name in mandatory:
            if name not in found:
                f = _BY_NAME[name]
                raise InvalidInput(
                    f"no column for the mandatory field {name} ({f.description}); headers found: {shown}; "
                    f"name it with --column {name}=HEADER (default headers: {', '.join(f.aliases[:6])})",
                    field=name,
                )
        if ("lon" in found) != ("lat" in found):
            missing = "lat" if "lon" in found else "lon"
            raise InvalidInput(
                f"a {'lon' if missing == 'lat' else 'lat'} column without a {missing} column; headers "
                f"found: {shown}; name it with --column {missing}=HEADER",
                field=missing,
            )
        return {f.name: found[f.name] for f in FIELDS if f.name in found}


def parse_column_options(options: Sequence[str]) -> dict[str, str]:
    """``["door=门牌", "compound="]`` → ``{"door": "门牌", "compound": ""}``."""
    out: dict[str, str] = {}
    for option in options:
        name, sep, header = option.partition("=")
        if not sep:
            raise InvalidInput(f"--column {option!r}: expected FIELD=HEADER", field="column")
        out[_field(name, f"--column {option!r}").name] = header.strip()
    return out


def load_mapping_file(path: Path) -> dict[str, str]:
    """A TOML file: ``door = "门牌"`` lines, at top level or under ``[columns]``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except OSError as exc:
        raise InvalidInput(
            f"cannot read the mapping file {path.name}: {exc.strerror}", field="mapping"
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path.name} is not a valid TOML mapping: {exc}", field="mapping") from exc
    table = data.get("columns", data)
    if not isinstance(table, dict):
        raise InvalidInput(f'{path.name}: [columns] must be a table of field = "header"', field="mapping")
    out: dict[str, str] = {}
    for name, header in table.items():
        if not isinstance(header, str):
            raise InvalidInput(f"{path.name}: {name} must map to a header string", field="mapping")
        out[_field(name, path.name).name] = header.strip()
    return out


def describe() -> list[tuple[str, str, str]]:
    """(field, default headers, description) rows, for help texts and the docs."""
    return [(f.name, " / ".join(f.aliases), f.description) for f in FIELDS]
