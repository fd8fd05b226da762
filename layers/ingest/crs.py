"""Resolving a source CRS to an EPSG code: layers are only accepted from CRSs we can name exactly.

What is refused and what only warned about (in the publish and dry-run reports' ``warnings``):

* refused (422): a CRS that cannot be resolved (an unknown ``EPSG:999999`` in ``source_crs``, in a
  GeoJSON ``crs`` member or an unreadable .prj, or one without an EPSG code), and coordinates that
  cannot be in the CRS at all: not finite once transformed, or beyond longitude ±180 / latitude ±90
  (``layers.validate.to_lonlat`` names the feature);
* warned (``degrees_in_projected_crs``): a projected CRS whose coordinates all lie within ±180/±90,
  which is what degrees labelled as metres look like (the layer then spans a few metres near the
  projection's origin) but a small layer near the origin could be;
* warned (``outside_area_of_use``): data outside the CRS's area of use (pyproj's ``area_of_use``,
  grown by ``AREA_MARGIN`` degrees), which usually means a wrong CRS but can be deliberate.

A warning never blocks: the data is possible, only unlikely, and there is no way to override a refusal.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pyproj import CRS
from pyproj.exceptions import CRSError

from layers.errors import InvalidInput

CRS84 = CRS.from_user_input("OGC:CRS84")
AREA_MARGIN = 1.0  # degrees around a CRS's area of use that still count as inside


def parse_crs(value: str, *, field: str = "source_crs", what: str | None = None) -> CRS:
    """Accept ``EPSG:4490``, ``4490``, OGC URIs or WKT, as a publisher would type them; ``what``
    names where the text came from (a .prj file) in the message."""
    text = value.strip()
    try:
        return CRS.from_user_input(f"EPSG:{text}" if text.isdigit() else text)
    except CRSError as exc:
        shown = f"{value[:80]!r}" + ("…" if len(value) > 80 else "")
        where = f"{what} holds an" if what else "an"
        fix = "remove it and pass source_crs" if what else "pass a known one"
        raise InvalidInput(
            f"{where} unknown coordinate reference system {shown}: {exc}; {fix} (e.g. EPSG:4490)", field=field
        ) from exc


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


def _span(low: float, high: float) -> str:
    return f"{high - low:.3g}"


def crs_warnings(
    raw_bounds: np.ndarray, lonlat_extent: list[float], crs: CRS, name: str
) -> list[dict[str, Any]]:
    """What makes data implausible, though possible, in its declared CRS (see the module docstring)."""
    warnings: list[dict[str, Any]] = []
    west, south, east, north = (float(v) for v in raw_bounds)
    if crs.is_projected and max(abs(west), abs(east)) <= 180 and max(abs(south), abs(north)) <= 90:
        unit = crs.axis_info[0].unit_name if crs.axis_info else "unit"
        warnings.append(
            {
                "code": "degrees_in_projected_crs",
                "field": "source_crs",
                "detail": f"every coordinate is within ±180/±90, like longitude/latitude degrees, but {name} "
                f"counts in {unit}s: the layer spans only {_span(west, east)} × {_span(south, north)} "
                f"{unit}s; "
                "if these are degrees, publish with source_crs=EPSG:4326 (or EPSG:4490)",
            }
        )
    area = crs.area_of_use
    if area is not None and area.west <= area.east:
        lon0, lat0, lon1, lat1 = lonlat_extent
        grown = (
            area.west - AREA_MARGIN,
            area.south - AREA_MARGIN,
            area.east + AREA_MARGIN,
            area.north + AREA_MARGIN,
        )
        if lon0 < grown[0] or lat0 < grown[1] or lon1 > grown[2] or lat1 > grown[3]:
            apart = lon1 < grown[0] or lat1 < grown[1] or lon0 > grown[2] or lat0 > grown[3]
            warnings.append(
                {
                    "code": "outside_area_of_use",
                    "field": "source_crs",
                    "detail": f"the data lies {'entirely' if apart else 'partly'} outside the area {name} is "
                    f"meant for ({area.name}); is the source CRS right?",
                    "area_of_use": [area.west, area.south, area.east, area.north],
                    "extent": [lon0, lat0, lon1, lat1],
                }
            )
    return warnings
