"""Answers shaped like the Tianditu (天地图) geocoder, so its clients only change the host.

Tianditu works in CGCS2000, which is WGS84 to a few centimetres: coordinates pass unchanged.
Its conventions, kept here: ``status`` is a string, "0" for success; "101" (无结果) when nothing
was found and "1" for bad input, both with HTTP 200 (only ``status == "0"`` is meaningful to
clients). Division codes carry the country prefix 156 and are 9 digits for province, city and
county (156110000, 156110100, 156110102) and 12 for towns (156 + the 9-digit street code). For a
municipality ``city`` and ``city_code`` are empty, as Tianditu answers for Beijing.

We hold no POIs: ``poi`` is the residential compound of the address when there is one. Our road
distance is the distance to the door point on that road (doors stand a few metres back from it).
"""

from __future__ import annotations

from typing import Any

from geocode.model import Candidate, GeocodeResult, Level
from geoshare import __version__
from geoshare.services.compat_amap import compass

SEARCH_VERSION = f"geoshare-{__version__}"
TIANDITU_LEVELS: dict[Level, str] = {
    Level.door: "门址",
    Level.building: "门址",
    Level.interpolated: "门址",
    Level.road: "道路",
    Level.community: "村庄",
    Level.township: "乡镇",
    Level.district: "区县",
    Level.city: "城市",
}
NO_RESULT = {"status": "101", "msg": "无结果"}


def error(message: str) -> dict[str, str]:
    return {"status": "1", "msg": message, "searchVersion": SEARCH_VERSION}


def tianditu_code(code: str | None) -> str:
    """156 + the division code, 6-digit codes padded (11 → 156110000, 110101001 → 156110101001)."""
    if not code:
        return ""
    return "156" + (code.ljust(6, "0") if len(code) < 6 else code)


def geocoder_response(result: GeocodeResult) -> dict[str, Any]:
    """``/geocoder?ds={"keyWord": …}``: the best candidate."""
    c = result.best
    if c is None:
        return {**NO_RESULT, "searchVersion": SEARCH_VERSION}
    return {
        "msg": "ok",
        "status": "0",
        "searchVersion": SEARCH_VERSION,
        "location": {
            "score": round(c.score * 100),
            "level": TIANDITU_LEVELS[c.level],
            "lon": round(c.lon, 6),
            "lat": round(c.lat, 6),
            "keyWord": result.query,
        },
    }


def reverse_response(candidate: Candidate | None, query: tuple[float, float]) -> dict[str, Any]:
    """``/geocoder?postStr={'lon':…,'lat':…}&type=geocode``; ``query`` is the point asked about."""
    c = candidate
    if c is None:
        return dict(NO_RESULT)
    lon, lat = query
    municipality = bool(c.city) and c.city == c.province
    has_door = c.distance_m is not None
    distance = round(c.distance_m) if c.distance_m is not None else 0
    position = compass(c.lon, c.lat, lon, lat) if has_door else ""
    address = "".join(p or "" for p in (c.road, c.number, c.compound, c.building)) if has_door else ""
    path_codes = _codes(c)
    component = {
        "nation": "中国",
        "province": c.province or "",
        "province_code": tianditu_code(path_codes[0]),
        "city": "" if municipality else c.city or "",
        "city_code": "" if municipality else tianditu_code(path_codes[1]),
        "county": c.district or "",
        "county_code": tianditu_code(c.adcode),
        "town": c.township or "",
        "town_code": tianditu_code(c.towncode),
        "road": (c.road or "") if has_door else "",
        "road_distance": distance if has_door else 0,
        "address": address,
        "address_distance": distance,
        "address_position": position,
        "poi": (c.compound or "") if has_door else "",
        "poi_distance": distance if has_door and c.compound else 0,
        "poi_position": position if has_door and c.compound else "",
    }
    return {
        "status": "0",
        "msg": "ok",
        "result": {
            "formatted_address": c.formatted_address,
            "location": {"lon": lon, "lat": lat},
            "addressComponent": component,
        },
    }


def _codes(c: Candidate) -> tuple[str | None, str | None]:
    """Province and city codes, read off the finest division code the candidate carries."""
    code = c.community_code or c.towncode or c.adcode
    if not code:
        return None, None
    return code[:2], code[:4]
