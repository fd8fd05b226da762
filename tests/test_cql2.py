"""CQL2 text and JSON filters translated to SQL and run against a real layer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from layer_factory import make_layer
from shapely.geometry import Point

from layers.cql2 import _quote_unicode_identifiers, parse_filter
from layers.errors import BadParameter

ATTRS = [
    ("名称", "string"),
    ("类型", "string"),
    ("人口", "integer"),
    ("面积", "number"),
    ("开放", "boolean"),
    ("建成日期", "date"),
]
ROWS = [
    (
        Point(116.40, 39.90),
        {
            "名称": "东城避难所",
            "类型": "公园",
            "人口": 1200,
            "面积": 3.5,
            "开放": True,
            "建成日期": "2010-05-01",
        },
    ),
    (
        Point(116.30, 39.95),
        {
            "名称": "海淀避难所",
            "类型": "学校",
            "人口": 800,
            "面积": 1.25,
            "开放": False,
            "建成日期": "2015-09-01",
        },
    ),
    (
        Point(116.50, 39.85),
        {
            "名称": "朝阳广场",
            "类型": "广场",
            "人口": None,
            "面积": 7.0,
            "开放": True,
            "建成日期": "2020-01-15",
        },
    ),
    (
        Point(121.47, 31.23),
        {"名称": "O'Brien Park", "类型": "Park", "人口": 50, "面积": 0.5, "开放": None, "建成日期": None},
    ),
]


@pytest.fixture
def places(db: Any) -> str:
    make_layer(db, "places", ROWS, ATTRS, time_field="建成日期")
    return "places"


def _ids(client: Any, filter_: str | dict[str, Any], **params: Any) -> list[str]:
    if isinstance(filter_, dict):
        params = {**params, "filter": json.dumps(filter_, ensure_ascii=False), "filter-lang": "cql2-json"}
    else:
        params = {**params, "filter": filter_}
    r = client.get("/collections/places/items", params={"limit": 100, **params})
    assert r.status_code == 200, r.text
    return [f["id"] for f in r.json()["features"]]


@pytest.mark.parametrize(
    ("cql", "expected"),
    [
        ("人口 > 900", ["1"]),
        ("人口 <> 800", ["1", "4"]),
        ("面积 >= 3.5 AND 开放 = true", ["1", "3"]),
        ("人口 < 100 OR 类型 = '学校'", ["2", "4"]),
        ("NOT (开放 = true)", ["2"]),
        ("名称 LIKE '%避难%'", ["1", "2"]),
        ("名称 NOT LIKE '%避难%'", ["3", "4"]),
        ("名称 LIKE '__广场'", ["3"]),
        ("CASEI(类型) = casei('PARK')", ["4"]),
        ("类型 IN ('公园', '广场')", ["1", "3"]),
        ("类型 NOT IN ('公园', '广场')", ["2", "4"]),
        ("人口 BETWEEN 100 AND 1000", ["2"]),
        ("人口 NOT BETWEEN 100 AND 1000", ["1", "4"]),
        ("人口 IS NULL", ["3"]),
        ("开放 IS NOT NULL AND 人口 IS NOT NULL", ["1", "2"]),
        ("人口 * 2 > 2000", ["1"]),
        ("名称 = 'O''Brien Park'", ["4"]),
        ("\"名称\" = '海淀避难所'", ["2"]),
        ("建成日期 > DATE('2014-01-01')", ["2", "3"]),
        ("建成日期 T_AFTER DATE('2015-09-01')", ["3"]),
        ("建成日期 T_DURING INTERVAL('2010-01-01T00:00:00Z','2016-01-01T00:00:00Z')", ["1", "2"]),
        ("S_INTERSECTS(geometry, POLYGON((116 39, 117 39, 117 40, 116 40, 116 39)))", ["1", "2", "3"]),
        ("S_WITHIN(geometry, POLYGON((116.35 39.8, 117 39.8, 117 40, 116.35 40, 116.35 39.8)))", ["1", "3"]),
        ("S_DISJOINT(geometry, POLYGON((116 39, 117 39, 117 40, 116 40, 116 39)))", ["4"]),
        ("S_INTERSECTS(geometry, POINT(116.4 39.9))", ["1"]),
        ("BBOX(geometry, 121, 31, 122, 32)", ["4"]),
        ("INCLUDE", ["1", "2", "3", "4"]),
    ],
)
def test_cql2_text(client: Any, places: str, cql: str, expected: list[str]) -> None:
    assert _ids(client, cql) == expected


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"op": "=", "args": [{"property": "类型"}, "学校"]}, ["2"]),
        (
            {
                "op": "and",
                "args": [
                    {"op": ">", "args": [{"property": "面积"}, 1]},
                    {"op": "like", "args": [{"property": "名称"}, "%避难所"]},
                ],
            },
            ["1", "2"],
        ),
        ({"op": "between", "args": [{"property": "人口"}, 100, 1000]}, ["2"]),
        ({"op": "in", "args": [{"property": "人口"}, [50, 1200]]}, ["1", "4"]),
        ({"op": "not", "args": [{"op": "isNull", "args": [{"property": "人口"}]}]}, ["1", "2", "4"]),
        (
            {
                "op": "s_intersects",
                "args": [{"property": "geometry"}, {"bbox": [116.35, 39.8, 116.6, 39.92]}],
            },
            ["1", "3"],
        ),
        (
            {
                "op": "s_intersects",
                "args": [{"property": "geometry"}, {"type": "Point", "coordinates": [121.47, 31.23]}],
            },
            ["4"],
        ),
        ({"op": "t_after", "args": [{"property": "建成日期"}, {"date": "2012-01-01"}]}, ["2", "3"]),
        (
            {"op": "t_before", "args": [{"property": "建成日期"}, {"timestamp": "2012-01-01T00:00:00Z"}]},
            ["1"],
        ),
        (
            {
                "op": "=",
                "args": [{"op": "casei", "args": [{"property": "类型"}]}, {"op": "casei", "args": ["park"]}],
            },
            ["4"],
        ),
    ],
)
def test_cql2_json(client: Any, places: str, doc: dict[str, Any], expected: list[str]) -> None:
    assert _ids(client, doc) == expected


def test_filter_combines_with_other_parameters(client: Any, places: str) -> None:
    assert _ids(client, "开放 = true", bbox="116.45,39.8,116.6,39.9") == ["3"]
    assert _ids(client, "人口 IS NOT NULL", datetime="2010-01-01/2016-01-01") == ["1", "2"]


def test_filter_in_lat_lon_crs(client: Any, places: str) -> None:
    flipped = "S_INTERSECTS(geometry, POLYGON((39 116, 39 117, 40 117, 40 116, 39 116)))"
    assert _ids(client, flipped, **{"filter-crs": "http://www.opengis.net/def/crs/EPSG/0/4326"}) == [
        "1",
        "2",
        "3",
    ]


@pytest.mark.parametrize(
    ("cql", "lang", "message"),
    [
        ("人口 >", "cql2-text", "cannot parse"),
        ("不存在 = 1", "cql2-text", "不存在"),
        ("人口 = '多'", "cql2-text", "integer"),
        ("名称 > 5", "cql2-text", "string"),
        ("开放 LIKE 'x%'", "cql2-text", "LIKE"),
        ("S_INTERSECTS(名称, POINT(1 2))", "cql2-text", "geometry"),
        ("S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))", "cql2-text", "invalid geometry"),
        ("S_INTERSECTS(geometry, POINT(200 100))", "cql2-text", "longitude"),
        ("UPPER(名称) = 'X'", "cql2-text", "unsupported function"),
        ("人口 / 0 > 1", "cql2-text", "filter"),
        ('{"op": "=", "args": [{"property": "x"}', "cql2-json", "not valid JSON"),
        ('{"op": "nope", "args": []}', "cql2-json", "cannot parse"),
        ('{"op": "=", "args": [{"property": "缺失"}, 1]}', "cql2-json", "缺失"),
        ("[1, 2]", "cql2-json", "boolean expression"),
        ("名称 = 'x'); DROP TABLE gs.layer; --", "cql2-text", "cannot parse"),
    ],
)
def test_bad_filters_are_400(client: Any, places: str, cql: str, lang: str, message: str) -> None:
    r = client.get("/collections/places/items", params={"filter": cql, "filter-lang": lang})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["field"] == "filter" and message in body["detail"], body


def test_deep_and_long_filters_never_500(client: Any, places: str) -> None:
    deep = "(" * 3000 + "人口 = 1200" + ")" * 3000
    assert _ids(client, deep) == ["1"]
    r = client.get("/collections/places/items", params={"filter": "1 = 1 AND " * 2100 + "1 = 1"})
    assert r.status_code == 400 and r.json()["field"] == "filter"
    chain = " AND ".join(["人口 > 1"] * 300)
    assert _ids(client, chain) == ["1", "2", "4"]


def test_unicode_identifiers_are_quoted_outside_strings() -> None:
    assert _quote_unicode_identifiers("名称 = '名称' AND pop > 1") == "\"名称\" = '名称' AND pop > 1"
    assert _quote_unicode_identifiers('"已引" = 1') == '"已引" = 1'


def test_parse_filter_rejects_unknown_language_and_empty_text() -> None:
    with pytest.raises(BadParameter) as err:
        parse_filter("a = 1", "ecql")
    assert err.value.field == "filter-lang"
    with pytest.raises(BadParameter):
        parse_filter("   ", None)


@pytest.mark.parametrize(
    ("cql", "lang"),
    [
        ("名称 = 'a\x00b'", "cql2-text"),
        ("名称 = 'a\x1fb'", "cql2-text"),
        ('{"op": "=", "args": [{"property": "名称"}, "a\\u0000b"]}', "cql2-json"),
        ('{"op": "=", "args": [{"property": "名称"}, "\\ud800"]}', "cql2-json"),  # cannot be encoded
        ('{"op": "like", "args": [{"property": "名称"}, "%\\u007f"]}', "cql2-json"),
        ('{"op": "=", "args": [{"property": "名\\u0000称"}, "x"]}', "cql2-json"),
    ],
)
def test_control_characters_are_refused_raw_or_escaped(cql: str, lang: str) -> None:
    """PostgreSQL holds no NUL in text: the engine refuses it, whoever calls it (a JSON ``\\u``
    escape in a URL is plain ASCII, so only the parser can see it)."""
    with pytest.raises(BadParameter) as err:
        parse_filter(cql, lang)
    assert err.value.field == "filter" and "U+" in err.value.detail


def test_control_characters_in_json_filters_over_http(client: Any, places: str) -> None:
    doc = json.dumps({"op": "=", "args": [{"property": "名称"}, "东城\u0000避难所"]})
    r = client.get("/collections/places/items", params={"filter": doc, "filter-lang": "cql2-json"})
    assert r.status_code == 400 and r.json()["field"] == "filter", r.text
