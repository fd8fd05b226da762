"""Answers shaped like the Amap (高德) Web Service API v3, so its clients only change the host.

Amap conventions kept on purpose, because client code is written against them:

* every value is a string (``"count": "3"``, ``"distance": "12.5"``), and an absent value is an
  empty list ``[]``, not null or "" — typed clients declare those fields accordingly;
* coordinates are GCJ-02 ``"lng,lat"`` strings with six decimals, unless the request chose
  another CRS;
* errors are HTTP 200 with ``status "0"`` and an ``info``/``infocode`` pair (``INVALID_PARAMS``
  20000, ``MISSING_REQUIRED_PARAMS`` 20001) — unlike the native API, which answers problem+json;
* in ``regeo`` a municipality's ``city`` is ``[]`` (Amap puts 北京市 in ``province`` only), while
  ``geo`` repeats it in ``city``; ``towncode`` has 12 digits (the 9-digit street code + "000").

Our levels map to Amap's ``level`` strings; road-interpolated doors are reported as 门牌号, as
Amap does for its own interpolated door hits (the native API's ``level_code`` tells them apart).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from geocode.model import Candidate, GeocodeResult, Level
from geoshare.services.coords import GCJ, from_wgs84_many

Empty = list[str]  # Amap's "no value"

AMAP_LEVELS: dict[Level, str] = {
    Level.door: "门牌号",
    Level.building: "门牌号",
    Level.interpolated: "门牌号",
    Level.road: "道路",
    Level.community: "村庄",
    Level.township: "乡镇",
    Level.district: "区县",
    Level.city: "市",
    Level.poi: "兴趣点",
}

# Amap's citycode is the telephone area code; keyed by the 4-digit city division code.
CITY_AREA_CODES: dict[str, str] = {
    "1101": "010",  # 北京
    "1201": "022",  # 天津
    "3101": "021",  # 上海
    "5001": "023",  # 重庆
}

OK = {"status": "1", "info": "OK", "infocode": "10000"}
INVALID_PARAMS = ("INVALID_PARAMS", "20000")
MISSING_REQUIRED_PARAMS = ("MISSING_REQUIRED_PARAMS", "20001")
SERVICE_NOT_AVAILABLE = ("SERVICE_NOT_AVAILABLE", "10002")

_DIRECTIONS = ("北", "东北", "东", "东南", "南", "西南", "西", "西北")


def _s(value: object) -> str | Empty:
    """A value the Amap way: a non-empty string, else ``[]``."""
    if value is None or value == "":
        return []
    return str(value)


def _location(xy: np.ndarray) -> str:
    return f"{xy[0]:.6f},{xy[1]:.6f}"


def citycode(c: Candidate) -> str | Empty:
    """The area code of the candidate's city, from whichever division code it carries."""
    code = c.adcode or c.towncode or c.community_code or ""
    return _s(CITY_AREA_CODES.get(code[:4]))


def _is_municipality(c: Candidate) -> bool:
    return bool(c.city) and c.city == c.province


def compass(from_lon: float, from_lat: float, to_lon: float, to_lat: float) -> str:
    """Which way ``to`` lies seen from ``from`` (东北 …); "" when they are within about 10 cm."""
    dx = (to_lon - from_lon) * math.cos(math.radians((from_lat + to_lat) / 2))
    dy = to_lat - from_lat
    if math.hypot(dx, dy) < 1e-6:
        return ""
    bearing = math.degrees(math.atan2(dx, dy)) % 360.0
    return _DIRECTIONS[int((bearing + 22.5) // 45) % 8]


def error(info: tuple[str, str] = INVALID_PARAMS) -> dict[str, str]:
    """Amap's error body (sent with HTTP 200, as Amap does)."""
    return {"status": "0", "info": info[0], "infocode": info[1]}


def _locations(candidates: Sequence[Candidate | None], crs: str) -> list[np.ndarray | None]:
    """Each candidate's point in ``crs`` (one vectorised conversion), None for None."""
    present = [i for i, c in enumerate(candidates) if c is not None]
    coords = from_wgs84_many(np.array([(candidates[i].lon, candidates[i].lat) for i in present]), crs)
    out: list[np.ndarray | None] = [None] * len(candidates)
    for i, xy in zip(present, coords, strict=True):
        out[i] = xy
    return out


def _geocode(c: Candidate | None, xy: np.ndarray | None) -> dict[str, Any]:
    if c is None or xy is None:
        keys = ("formatted_address", "country", "province", "citycode", "city", "district", "adcode")
        empty: dict[str, Any] = {k: [] for k in keys}
        empty.update(
            township=[],
            neighborhood={"name": [], "type": []},
            building={"name": [], "type": []},
            street=[],
            number=[],
            location=[],
            level=[],
        )
        return empty
    return {
        "formatted_address": c.formatted_address,
        "country": "中国",
        "province": _s(c.province),
        "citycode": citycode(c),
        "city": _s(c.city),
        "district": _s(c.district),
        "township": [],
        "neighborhood": {"name": [], "type": []},
        "building": {"name": [], "type": []},
        "adcode": _s(c.adcode),
        "street": _s(c.road),
        "number": _s(c.number),
        "location": _location(xy),
        "level": AMAP_LEVELS[c.level],
    }


def geo_response(results: Sequence[GeocodeResult], crs: str = GCJ, batch: bool = False) -> dict[str, Any]:
    """``/v3/geocode/geo``: the best candidate of each result.

    A single query lists only what was found (``count`` 0 or 1). A batch keeps one entry per
    address, in order, with an all-empty entry where nothing was found, so clients can zip the
    answers with their input.
    """
    best = [r.best for r in results]
    located = _locations(best, crs)
    pairs = list(zip(best, located, strict=True))
    geocodes = [_geocode(c, xy) for c, xy in pairs if batch or c is not None]
    count = sum(1 for c in best if c is not None)
    return {**OK, "count": str(count), "geocodes": geocodes}


def _regeocode(
    c: Candidate | None, query: tuple[float, float], xy: np.ndarray | None, extensions: str
) -> dict:
    if c is None:  # outside every division (sea, abroad): Amap answers empties, not an error
        body: dict[str, Any] = {
            "formatted_address": [],
            "addressComponent": {
                "country": [],
                "province": [],
                "city": [],
                "citycode": [],
                "district": [],
                "adcode": [],
                "township": [],
                "towncode": [],
                "neighborhood": {"name": [], "type": []},
                "building": {"name": [], "type": []},
                "streetNumber": {"street": [], "number": [], "location": [], "direction": [], "distance": []},
                "businessAreas": [],
            },
        }
    else:
        has_door = c.distance_m is not None and xy is not None
        street_number: dict[str, Any] = {
            "street": _s(c.road) if has_door else [],
            "number": _s(c.number) if has_door else [],
            "location": _location(xy) if has_door and xy is not None else [],
            "direction": _s(compass(c.lon, c.lat, *query)) if has_door else [],
            "distance": f"{c.distance_m:g}" if has_door else [],
        }
        body = {
            "formatted_address": c.formatted_address,
            "addressComponent": {
                "country": "中国",
                "province": _s(c.province),
                "city": [] if _is_municipality(c) else _s(c.city),
                "citycode": citycode(c),
                "district": _s(c.district),
                "adcode": _s(c.adcode),
                "township": _s(c.township),
                "towncode": f"{c.towncode:0<12}" if c.towncode else [],
                "neighborhood": {"name": _s(c.compound), "type": []},
                "building": {"name": _s(c.building), "type": []},
                "streetNumber": street_number,
                "businessAreas": [],
            },
        }
    if extensions == "all":  # we hold no POIs, roads or AOIs yet: Amap's keys, empty
        body.update(pois=[], roads=[], roadinters=[], aois=[])
    return body


def _door_locations(candidates: Sequence[Candidate | None], crs: str) -> list[np.ndarray | None]:
    """Reverse answers' door points in ``crs``; None where only divisions were found."""
    return _locations([c if c is not None and c.distance_m is not None else None for c in candidates], crs)


def regeo_response(
    candidate: Candidate | None, query: tuple[float, float], crs: str = GCJ, extensions: str = "base"
) -> dict[str, Any]:
    """``/v3/geocode/regeo`` for one location; ``query`` is the WGS84 point asked about (the
    door's ``direction`` is told from it).
    """
    xy = _door_locations([candidate], crs)[0]
    return {**OK, "regeocode": _regeocode(candidate, query, xy, extensions)}


def regeo_batch_response(
    candidates: Sequence[Candidate | None],
    queries: Sequence[tuple[float, float]],
    crs: str = GCJ,
    extensions: str = "base",
) -> dict[str, Any]:
    """``/v3/geocode/regeo?batch=true``: ``regeocodes``, one per location, in order."""
    located = _door_locations(candidates, crs)
    bodies = [_regeocode(c, q, xy, extensions) for c, q, xy in zip(candidates, queries, located, strict=True)]
    return {**OK, "regeocodes": bodies}


# --- place search: /v3/assistant/inputtips and /v3/place/text ------------------------------------

TYPECODES: dict[str, str] = {
    "government": "130100",  # 政府机关
    "school": "141200",  # 学校
    "hospital": "090100",  # 综合医院
    "park": "110101",  # 公园
    "station": "150200",  # 火车站
    "airport": "150104",  # 飞机场
    "landmark": "110200",  # 风景名胜
    "residential": "120302",  # 住宅小区
    "building": "120201",  # 商务写字楼
    "other": "190000",  # 地名地址信息
    "road": "190301",  # 道路名
    "compound": "120302",
    "division": "190104",  # 区县级地名
    "address": "190400",  # 门牌信息
}


def _xy_text(lon: float | None, lat: float | None, crs: str) -> str | Empty:
    if lon is None or lat is None or math.isnan(lon):
        return []
    return _location(from_wgs84_many(np.array([[lon, lat]]), crs)[0])


def inputtips_response(suggestions: Sequence[Any], divisions: dict[str, Any], crs: str = GCJ) -> dict:
    """``/v3/assistant/inputtips``: ``tips`` with id, name, district, adcode, location, address, typecode."""
    tips = []
    for s in suggestions:
        category = s.category if s.kind == "place" else s.kind
        tips.append(
            {
                "id": f"P{s.place_id}" if s.place_id is not None else [],
                "name": s.name,
                "district": _s(getattr(divisions.get(s.district_code or ""), "full_name", None)),
                "adcode": _s(s.district_code),
                "location": _xy_text(s.lon, s.lat, crs),
                "address": _s(s.address if s.kind != "address" else None),
                "typecode": TYPECODES.get(category or "other", "190000"),
            }
        )
    return {**OK, "count": str(len(tips)), "tips": tips}


def place_text_response(
    places: Any, hits: Sequence[tuple[int, float, float | None]], divisions: dict[str, Any], crs: str = GCJ
) -> dict:
    """``/v3/place/text``: ``pois`` in Amap's keys (``pname``, ``cityname``, ``adname`` …)."""
    from geocode.places.model import CATEGORIES

    pois = []
    for i, _, distance in hits:
        adcode = places.district_code[i]
        division = divisions.get(adcode or "")
        path = division.path if division is not None else ()
        pois.append(
            {
                "id": f"P{int(places.ids[i])}",
                "name": places.name[i],
                "type": CATEGORIES.get(places.category[i], "其他"),
                "typecode": TYPECODES.get(places.category[i], "190000"),
                "address": _s(places.address[i]),
                "location": _xy_text(float(places.lon[i]), float(places.lat[i]), crs),
                "tel": [],
                "distance": f"{distance:.0f}" if distance is not None else [],
                "pname": _s(path[0] if path else None),
                "cityname": _s(path[1] if len(path) > 1 else None),
                "adname": _s(division.name if division is not None else None),
                "adcode": _s(adcode),
                "citycode": _s(CITY_AREA_CODES.get((adcode or "")[:4])),
            }
        )
    return {**OK, "count": str(len(pois)), "suggestion": {"keywords": [], "cities": []}, "pois": pois}
