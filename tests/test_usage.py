"""``/usage`` and ``/usage/audit``: the figures match the calls made, in JSON and CSV; a department
sees its own calls and the calls on its layers, nobody else's; anonymous callers get a 401 problem.

Calls are made on two public layers: ``use_p`` of PROV and ``use_x`` of OTHR, by CONS1, CONS2,
OTHR itself and anonymous callers. The roll-up outlives the test database's layer wipes, so each
check filters by this module's own departments and layers.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import _wipe
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, text
from test_audit import audited_app, flush

from geoshare.access.audit import AuditConfig
from geoshare.access.store import create_key
from geoshare.settings import Settings

PROV, CONS1, CONS2, OTHR, IT = "UPROV", "UCONS1", "UCONS2", "UOTHR", "UIT"
LAYER_P, LAYER_X = "use_p", "use_x"
# (caller, layer, times): the calls this module makes on the features endpoint
CALLS = [
    ("c1", LAYER_P, 3),
    ("c2", LAYER_P, 2),
    ("c1", LAYER_X, 1),
    ("other", LAYER_X, 2),
    (None, LAYER_P, 1),
]
DEPARTMENT = {"c1": CONS1, "c2": CONS2, "other": OTHR, "prov": PROV, "admin": IT, None: None}
OWNER = {LAYER_P: PROV, LAYER_X: OTHR}


def _layer(engine: Engine, layer_id: str, department: str) -> None:
    make_layer(
        engine,
        layer_id,
        [(Point(116.3 + n / 100, 39.9), {"编号": f"U{n}"}) for n in range(4)],
        [("编号", "string")],
        key_field="编号",
        department=department,
    )


@pytest.fixture(scope="module")
def keys(engine: Engine) -> dict[str, str]:
    _wipe(engine)
    _layer(engine, LAYER_P, PROV)
    _layer(engine, LAYER_X, OTHR)
    with engine.begin() as conn:
        for code in (CONS1, CONS2, IT):
            conn.execute(text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), {"c": code})
        return {
            "c1": create_key(conn, CONS1).key,
            "c2": create_key(conn, CONS2).key,
            "other": create_key(conn, OTHR).key,
            "prov": create_key(conn, PROV, "department_admin").key,
            "admin": create_key(conn, IT, "platform_admin").key,
        }


@pytest.fixture(scope="module")
def client(keys: dict[str, str], settings: Settings) -> Iterator[TestClient]:
    with TestClient(audited_app(settings)) as c:
        for who, layer, times in CALLS:
            headers = {"X-API-Key": keys[who]} if who else {}
            for _ in range(times):
                assert c.get(f"/collections/{layer}/items?limit=2", headers=headers).status_code == 200
        flush(c)
        yield c


def expected(visible: Any) -> Counter[tuple[str | None, str]]:
    """Features calls per (department, layer) among CALLS that ``visible(department, layer)`` admits."""
    out: Counter[tuple[str | None, str]] = Counter()
    for who, layer, times in CALLS:
        if visible(DEPARTMENT[who], layer):
            out[(DEPARTMENT[who], layer)] += times
    return out


def get(client: TestClient, keys: dict[str, str], who: str | None, query: str) -> Any:
    headers = {"X-API-Key": keys[who]} if who else {}
    return client.get(f"/usage?{query}", headers=headers)


def pairs(body: dict[str, Any]) -> Counter[tuple[str | None, str]]:
    return Counter({(r["department"], r["layer"]): r["calls"] for r in body["rows"]})


def test_platform_admin_sees_every_call_on_a_providers_layers(
    client: TestClient, keys: dict[str, str]
) -> None:
    r = get(client, keys, "admin", f"group=department,layer&kind=features&provider={PROV}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["scope"] == "all" and body["group"] == ["department", "layer"]
    assert pairs(body) == expected(lambda dept, layer: OWNER[layer] == PROV)
    assert body["totals"]["calls"] == sum(expected(lambda d, layer: OWNER[layer] == PROV).values())
    # top consumers first
    calls = [row["calls"] for row in body["rows"]]
    assert calls == sorted(calls, reverse=True)


def test_a_department_sees_its_calls_and_the_calls_on_its_layers_only(
    client: TestClient, keys: dict[str, str]
) -> None:
    for who in ("c1", "c2", "other", "prov"):
        mine = DEPARTMENT[who]
        body = get(client, keys, who, "group=department,layer&kind=features").json()
        assert body["scope"] == mine
        assert pairs(body) == expected(lambda dept, layer, mine=mine: mine in (dept, OWNER[layer])), who


def test_rows_per_layer_and_day_sum_to_the_calls(client: TestClient, keys: dict[str, str]) -> None:
    zone = AuditConfig().timezone
    today = datetime.now(ZoneInfo(zone)).date()
    body = get(client, keys, "admin", f"group=day,layer&kind=features&from={today}&to={today}").json()
    mine = [r for r in body["rows"] if r["layer"] in OWNER]
    per_layer = expected(lambda d, layer: True)
    assert {r["layer"]: r["calls"] for r in mine} == {
        layer: sum(n for (_, lay), n in per_layer.items() if lay == layer) for layer in OWNER
    }
    assert all(r["day"] == today.isoformat() for r in mine)
    assert all(r["errors"] == 0 and r["items"] >= 0 and r["bytes"] > 0 for r in mine)
    yesterday = today - timedelta(days=1)
    earlier = get(client, keys, "admin", f"group=layer&kind=features&from={yesterday}&to={yesterday}").json()
    assert not [r for r in earlier["rows"] if r["layer"] in OWNER]


def test_csv_matches_json(client: TestClient, keys: dict[str, str]) -> None:
    query = f"group=department,layer&kind=features&provider={PROV}"
    as_json = get(client, keys, "prov", query).json()
    r = get(client, keys, "prov", query + "&f=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert [(row["department"] or None, row["layer"], int(row["calls"])) for row in rows] == [
        (row["department"], row["layer"], row["calls"]) for row in as_json["rows"]
    ]
    assert list(rows[0]) == ["department", "layer", "calls", "items", "errors", "limited", "bytes", "avg_ms"]


def test_anonymous_callers_get_a_401_problem(client: TestClient, keys: dict[str, str]) -> None:
    r = get(client, keys, None, "group=day")
    assert r.status_code == 401
    assert r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("group=week", "group"),
        ("group=day,,layer,day", "group"),
        ("from=2026-13-01", "from"),
        ("from=2026-02-02&to=2026-02-01", "from"),
        ("f=xml", "f"),
        ("colour=red", "colour"),
        ("layer=a&layer=b", "layer"),
    ],
)
def test_bad_parameters_are_named(client: TestClient, keys: dict[str, str], query: str, field: str) -> None:
    r = get(client, keys, "c1", query)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field


def test_raw_audit_log_is_for_platform_admins_and_pages(client: TestClient, keys: dict[str, str]) -> None:
    assert client.get("/usage/audit", headers={"X-API-Key": keys["prov"]}).status_code == 403
    assert client.get("/usage/audit").status_code == 401
    admin = {"X-API-Key": keys["admin"]}
    everything = client.get(f"/usage/audit?department={CONS1}&layer={LAYER_P}&limit=1000", headers=admin)
    assert everything.status_code == 200
    rows = everything.json()["rows"]
    assert len(rows) == sum(n for who, layer, n in CALLS if who == "c1" and layer == LAYER_P)
    assert all(r["department_code"] == CONS1 and r["layer_id"] == LAYER_P for r in rows)

    seen: list[int] = []
    url: str | None = f"/usage/audit?department={CONS1}&layer={LAYER_P}&limit=2"
    while url:
        page = client.get(url.replace("http://testserver", ""), headers=admin).json()
        assert len(page["rows"]) <= 2
        seen += [r["id"] for r in page["rows"]]
        url = page["next"]
    assert seen == [r["id"] for r in rows] and seen == sorted(seen, reverse=True)

    as_csv = client.get(f"/usage/audit?department={CONS1}&layer={LAYER_P}&f=csv", headers=admin)
    assert as_csv.content.startswith("\ufeff".encode())
    assert len(list(csv.DictReader(io.StringIO(as_csv.content.decode("utf-8-sig"))))) == len(rows)
    assert client.get("/usage/audit?limit=0", headers=admin).json()["field"] == "limit"


def test_a_restricted_layer_is_named_only_to_who_may_see_it(
    client: TestClient, keys: dict[str, str], engine: Engine
) -> None:
    """A probe of a hidden layer's id must not learn from ``/usage`` that it exists (issue 15.4)."""
    make_layer(
        engine, "use_r", [(Point(116.3, 39.9), {"编号": "R1"})], [("编号", "string")],
        key_field="编号", department=PROV, sharing_class="restricted",
    )  # fmt: skip
    probe = {"X-API-Key": keys["c1"]}
    for layer in ("use_r", "use_nonexistent"):
        for _ in range(3):
            assert client.get(f"/collections/{layer}/items", headers=probe).status_code == 404
    flush(client)
    seen = get(client, keys, "c1", "group=layer,provider&kind=features").json()["rows"]
    assert "use_r" not in {r["layer"] for r in seen} and PROV in {r["provider"] for r in seen}
    unnamed = [r for r in seen if r["layer"] is None]
    assert len(unnamed) == 1 and unnamed[0]["calls"] >= 6 and unnamed[0]["provider"] is None
    assert get(client, keys, "c1", "layer=use_r&group=layer").json()["rows"] == []
    owner = get(client, keys, "prov", "group=department,layer&kind=features").json()["rows"]
    assert {(r["department"], r["layer"]) for r in owner} >= {(CONS1, "use_r")}  # its owner sees them
