"""Resolving a source CRS to an EPSG code: layers are only accepted from CRSs we can name exactly."""

from __future__ import annotations

from typing import Any

from pyproj import CRS
from pyproj.exceptions import CRSError

from layers.errors import InvalidInput

CRS84 = CRS.from_user_input("OGC:CRS84")


def parse_crs(value: str, *, field: str = "source_crs") -> CRS:
    """Accept ``EPSG:4490``, ``4490``, OGC URIs or WKT, as a publisher would type them."""
    text = value.strip()
    try:
        return CRS.from_user_input(f"EPSG:{text}" if text.isdigit() else text)
    except CRSError as exc:
        raise InvalidInput(f"unknown coordinate reference system {value!r}: {exc}", field=field) from exc


def epsg_code(crs: Any, *, field: str = "source_crs") -> int:
    """The EPSG code of ``crs``; ESRI .prj flavours (CGCS2000, Web Mercator) resolve via pyproj's matcher."""
    crs = CRS.from_user_input(crs)
    if crs.equals(CRS84):
        return 4326
    for confidence in (70, 25):
        code = crs.to_epsg(min_confidence=confidence)
        if code is not None:
            return code
    raise InvalidInput(
        f"the source CRS ({crs.name}) has no EPSG code; re-project the data or pass source_crs=EPSG:nnnn",
        field=field,
    )
