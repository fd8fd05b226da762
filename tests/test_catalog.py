"""``GET /catalog``: keyword search over layer metadata, Chinese included, with ranking and facets."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from layer_factory import make_layer
from shapely.geometry import Point


@pytest.fixture
def client(client: Any, key_headers: Callable[..., dict[str, str]]) -> Any:
    """Search as a platform admin, who sees every class (who sees what: test_access_matrix)."""
    client.headers.update(key_headers("IT", "platform_admin"))
    return client


@pytest.fixture
def catalog(db: Any) -> None:
    one = [(Point(116.4, 39.9), {"名称": "x"})]
    attrs = [("名称", "string")]
    make_layer(
        db,
        "shelters",
        one,
        attrs,
        title="应急避难场所",
        description="全市室内外应急避难场所分布",
        keywords=["避难", "应急"],
        theme="公共安全",
        department="EMA",
        department_name="应急管理局",
    )
    make_layer(
        db,
        "hospitals",
        one,
        attrs,
        title="医疗机构",
        description="医院与社区卫生服务中心，可作应急避难医疗点",
        keywords=["医院", "卫生"],
        theme="卫生健康",
        department="HEALTH",
        department_name="卫生健康委",
        sharing_class="shared",
    )
    make_layer(
        db,
        "parks",
        one,
        attrs,
        title="城市公园 City Parks",
        description="Parks and green space",
        keywords=["绿地", "Parks"],
        theme="园林绿化",
        department="PARKS",
        department_name="园林绿化局",
    )
    make_layer(
        db,
        "fire-hydrants",
        one,
        attrs,
        title="消火栓",
        description="市政消防栓位置",
        keywords=["消防"],
        theme="公共安全",
        department="EMA",
        sharing_class="restricted",
    )


def _search(client: Any, **params: Any) -> dict[str, Any]:
    r = client.get("/catalog", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _ids(body: dict[str, Any]) -> list[str]:
    return [layer["id"] for layer in body["layers"]]


def test_chinese_substring_matches_and_title_hits_rank_first(client: Any, catalog: None) -> None:
    body = _search(client, q="避难")
    assert _ids(body) == ["shelters", "hospitals"]  # title match first, description match after
    assert body["numberMatched"] == 2
    entry = body["layers"][0]
    assert entry["title"] == "应急避难场所" and entry["department"] == "EMA" and entry["class"] == "public"
    assert any(link["rel"] == "items" for link in entry["links"])


def test_keywords_and_case_insensitive_latin(client: Any, catalog: None) -> None:
    assert _ids(_search(client, q="消防")) == ["fire-hydrants"]
    assert _ids(_search(client, q="city PARKS")) == ["parks"]
    assert _ids(_search(client, q="绿地")) == ["parks"]


def test_all_words_must_match(client: Any, catalog: None) -> None:
    assert _ids(_search(client, q="应急 医院")) == ["hospitals"]
    assert _search(client, q="避难 火星")["numberMatched"] == 0


def test_facets(client: Any, catalog: None) -> None:
    assert sorted(_ids(_search(client, department="EMA"))) == ["fire-hydrants", "shelters"]
    assert _ids(_search(client, department="卫生健康委")) == ["hospitals"]
    assert sorted(_ids(_search(client, theme="公共安全"))) == ["fire-hydrants", "shelters"]
    assert _ids(_search(client, **{"class": "restricted"})) == ["fire-hydrants"]
    assert _ids(_search(client, q="应急", department="HEALTH")) == ["hospitals"]


def test_paging_keeps_total(client: Any, catalog: None) -> None:
    first = _search(client, limit=3)
    assert len(first["layers"]) == 3 and first["numberMatched"] == 4
    rest = _search(client, limit=3, offset=3)
    assert len(rest["layers"]) == 1 and rest["numberMatched"] == 4
    beyond = _search(client, limit=3, offset=30)
    assert beyond["layers"] == [] and beyond["numberMatched"] == 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"class": "secret"}, "class"),
        ({"limit": "0"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"q": "x" * 500}, "q"),
    ],
)
def test_bad_parameters(client: Any, catalog: None, params: dict[str, str], field: str) -> None:
    r = client.get("/catalog", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field


def test_sql_and_like_metacharacters_are_plain_text(client: Any, catalog: None) -> None:
    assert _search(client, q="%")["numberMatched"] == 0
    assert _search(client, q="' OR 1=1 --")["numberMatched"] == 0
