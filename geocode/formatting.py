"""How addresses are written back: door text, full addresses and address codes.

One place for the conventions the address database uses (``full_address`` of ``addr.address``),
so the engine can rebuild them from compact columns instead of holding millions of strings.
"""

from __future__ import annotations

from geocode.addressdb.codes import suffix_code


def door_text(number: int, suffix: str) -> str:
    """12 + '' → 12号; 12 + '甲' → 甲12号; 12 + '-1' → 12-1号."""
    if not suffix:
        return f"{number}号"
    if suffix.startswith(("-", "之")):
        return f"{number}{suffix}号"
    return f"{suffix}{number}号"


def full_address(
    province: str,
    district: str,
    township: str,
    road: str,
    door: str,
    compound: str | None,
    compound_kind: str | None,
    building: int | None,
) -> str:
    """北京市 + district + street + road + door (+ 院 | compound) (+ building 号楼)."""
    out = f"{province}{district}{township}{road}{door}"
    if compound_kind == "院":
        out += "院"
    elif compound:
        out += compound
    if building:
        out += f"{building}号楼"
    return out


def address_code(community_code: str, road_code: str, number: int, suffix: str, building: int | None) -> str:
    """The GB/T 39609-2020 region-based code, as ``geocode.addressdb.codes`` assigns it."""
    return f"{community_code:0>12}{road_code:0>4}{number:04d}{suffix_code(suffix):02d}{building or 0:03d}"
