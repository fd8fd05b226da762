"""Sharing agreements end to end over HTTP: filing, deciding, revoking, expiry, and what they grant.

SCJ owns a restricted layer ``rst`` (编号, 名称, 身份证号, 资本) and a shared layer ``shr`` whose
身份证号 is a restricted field. JT is the consumer; ZF is a third department that is party to nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point, box
from sqlalchemy import Engine, text
from waiting import status_within

PROVIDER, CONSUMER, THIRD, IT = "SCJ", "JT", "ZF", "IT"
SECRET = "身份证号"
ATTRS = [("编号", "string"), ("名称", "string"), (SECRET, "string"), ("资本", "number")]
AREA_CODE = "999902"
TODAY = date.today()


def _features() -> list[tuple[Point, dict[str, Any]]]:
    return [
        (Point(116.4 + n / 100, 39.9), {"编号": f"E{n}", "名称": f"企业{n}", SECRET: f"ID{n}", "资本": n})
        for n in range(3)
    ]


@pytest.fixture
def world(db: Engine, key_headers: Callable[..., dict[str, str]]) -> dict[str, dict[str, str]]:
    make_layer(
        db, "rst", _features(), ATTRS, key_field="编号", sharing_class="restricted", department=PROVIDER
    )
    make_layer(db, "shr", _features(), ATTRS, key_field="编号", sharing_class="shared", department=PROVIDER)
    with db.begin() as conn:
        conn.execute(
            text("UPDATE gs.layer SET restricted_fields = ARRAY[:f] WHERE id = 'shr'"), {"f": SECRET}
        )
        conn.execute(
            text(
                "INSERT INTO addr.division (code, level, name, short_name, path_codes, path_names,"
                " full_name, geom) VALUES (:c, 4, '协议街道', '协议', ARRAY[:c], ARRAY['协议街道'],"
                " '协议街道', ST_Multi(ST_GeomFromText(:wkt, 4326))) ON CONFLICT (code) DO UPDATE"
                " SET geom = excluded.geom"
            ),
            {"c": AREA_CODE, "wkt": box(116.39, 39.8, 116.415, 40.0).wkt},
        )
    return {
        "provider": key_headers(PROVIDER),
        "provider_consumer": key_headers(PROVIDER, "consumer"),
        "consumer": key_headers(CONSUMER),
        "consumer_reader": key_headers(CONSUMER, "consumer"),
        "third": key_headers(THIRD),
        "admin": key_headers(IT, "platform_admin"),
    }


def _request(client: TestClient, headers: dict[str, str], **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "provider": PROVIDER,
        "layers": [{"layer": "rst", "fields": ["编号", "名称"]}],
        "purpose": "应急指挥",
        "starts_on": TODAY.isoformat(),
        "ends_on": (TODAY + timedelta(days=90)).isoformat(),
        "update_frequency": "daily",
        **overrides,
    }
    return client.post("/agreements", json=body, headers=headers)


def _approve(client: TestClient, world: dict[str, dict[str, str]], **overrides: Any) -> dict[str, Any]:
    filed = _request(client, world["consumer"], **overrides)
    assert filed.status_code == 201, filed.text
    done = client.post(f"/agreements/{filed.json()['id']}/approve", headers=world["provider"])
    assert done.status_code == 200, done.text
    return done.json()


def test_an_approved_agreement_grants_exactly_its_layers_and_fields(
    client: TestClient, world: dict[str, dict[str, str]]
) -> None:
    reader = world["consumer_reader"]
    assert client.get("/collections/rst/items", headers=reader).status_code == 404
    filed = _request(client, world["consumer"])
    assert filed.status_code == 201 and filed.json()["status"] == "requested"
    assert client.get("/collections/rst/items", headers=reader).status_code == 404  # not before approval

    approved = client.post(f"/agreements/{filed.json()['id']}/approve", headers=world["provider"])
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    items = client.get("/collections/rst/items", headers=reader)
    assert items.status_code == 200
    assert [set(f["properties"]) for f in items.json()["features"]] == [{"编号", "名称"}] * 3
    assert b"ID1" not in items.content and "资本".encode() not in items.content
    assert "rst" in [c["id"] for c in client.get("/collections", headers=reader).json()["collections"]]
    # fields not granted are unknown names, not forbidden ones
    r = client.get("/collections/rst/items", params={"filter": "资本 > 0"}, headers=reader)
    assert r.status_code == 400 and "资本" in r.json()["detail"]
    # other departments gain nothing
    assert client.get("/collections/rst/items", headers=world["third"]).status_code == 404
    grants = client.get("/whoami", headers=reader).json()["grants"]
    assert grants["rst"]["fields"] == ["名称", "编号"] and grants["rst"]["area_limited"] is False


def test_area_limits_rows_on_every_path(client: TestClient, world: dict[str, dict[str, str]]) -> None:
    _approve(client, world, area_code=AREA_CODE)
    reader = world["consumer_reader"]
    items = client.get("/collections/rst/items", headers=reader).json()
    assert [f["id"] for f in items["features"]] == ["E0", "E1"] and "numberMatched" not in items
    bbox_all = client.get("/collections/rst/items", params={"bbox": "116,39,117,41"}, headers=reader)
    assert [f["id"] for f in bbox_all.json()["features"]] == ["E0", "E1"]
    outside = client.get("/collections/rst/items/E2", headers=reader)
    ghost = client.get("/collections/rst/items/E9", headers=reader)
    assert outside.status_code == ghost.status_code == 404
    assert outside.json() == json.loads(ghost.text.replace("E9", "E2"))
    changes = client.get("/layers/rst/changes", params={"since": 0}, headers=reader).json()
    assert [c["feature_key"] if "feature_key" in c else c["feature"]["id"] for c in changes["changes"]] == [
        "E0",
        "E1",
    ]
    # the owner is never limited by someone else's agreement
    owner = client.get("/collections/rst/items", headers=world["provider_consumer"]).json()
    assert len(owner["features"]) == 3


def test_an_agreement_unlocks_restricted_fields_of_a_shared_layer(
    client: TestClient, world: dict[str, dict[str, str]]
) -> None:
    reader = world["consumer_reader"]
    before = client.get("/collections/shr/items", headers=reader).json()["features"]
    assert all(SECRET not in f["properties"] for f in before) and len(before) == 3
    _approve(client, world, layers=[{"layer": "shr", "fields": [SECRET]}])
    after = client.get("/collections/shr/items", headers=reader).json()["features"]
    assert sorted(f["properties"][SECRET] for f in after) == ["ID0", "ID1", "ID2"]
    assert all("资本" in f["properties"] for f in after)  # the rest of a shared layer stays readable


def test_revocation_and_expiry_take_effect_on_the_next_request(
    client: TestClient, world: dict[str, dict[str, str]], db: Engine
) -> None:
    reader = world["consumer_reader"]
    agreement = _approve(client, world)
    assert client.get("/collections/rst/items", headers=reader).status_code == 200
    revoked = client.post(f"/agreements/{agreement['id']}/revoke", headers=world["consumer"])
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert client.get("/collections/rst/items", headers=reader).status_code == 404
    again = client.post(f"/agreements/{agreement['id']}/revoke", headers=world["provider"])
    assert again.status_code == 409

    expired = _approve(
        client,
        world,
        starts_on=(TODAY - timedelta(days=30)).isoformat(),
        ends_on=(TODAY - timedelta(days=1)).isoformat(),
    )
    assert expired["status"] == "expired" and expired["in_force"] is False
    assert client.get("/collections/rst/items", headers=reader).status_code == 404
    current = _approve(client, world)
    assert client.get("/collections/rst/items", headers=reader).status_code == 200
    with db.begin() as conn:  # the period ends, changed in the database as another process would
        conn.execute(
            text(
                "UPDATE gs.agreement SET starts_on = current_date - 9, ends_on = current_date - 1"
                " WHERE id = :i"
            ),
            {"i": current["id"]},
        )
    assert client.app.state.layer_cache.sync()  # type: ignore[attr-defined] # announced to the workers
    assert client.get("/collections/rst/items", headers=reader).status_code == 404


def test_who_may_file_decide_and_read(client: TestClient, world: dict[str, dict[str, str]]) -> None:
    r = _request(client, world["consumer_reader"])  # a consumer key reads; it does not file
    assert r.status_code == 403
    assert _request(client, {}).status_code == 401
    filed = _request(client, world["consumer"]).json()
    path = f"/agreements/{filed['id']}"
    # a consumer cannot approve its own request; a stranger does not even see it
    assert client.post(f"{path}/approve", headers=world["consumer"]).status_code == 403
    stranger = client.post(f"{path}/approve", headers=world["third"])
    assert stranger.status_code == 404 and client.get(path, headers=world["third"]).status_code == 404
    assert client.post(f"{path}/approve", headers=world["provider_consumer"]).status_code == 403
    rejected = client.post(f"{path}/reject", json={"note": "用途不明"}, headers=world["provider"])
    assert rejected.status_code == 200 and rejected.json()["decision_note"] == "用途不明"
    assert client.post(f"{path}/approve", headers=world["provider"]).status_code == 409

    mine = client.get("/agreements", params={"role": "consumer"}, headers=world["consumer"]).json()
    theirs = client.get("/agreements", params={"role": "provider"}, headers=world["provider"]).json()
    assert [a["id"] for a in mine["agreements"]] == [a["id"] for a in theirs["agreements"]] == [filed["id"]]
    assert client.get("/agreements", headers=world["third"]).json()["agreements"] == []
    every = client.get("/agreements", params={"status": "rejected"}, headers=world["admin"]).json()
    assert [a["id"] for a in every["agreements"]] == [filed["id"]]


def test_filing_reveals_nothing_and_approval_checks_names(
    client: TestClient, world: dict[str, dict[str, str]], db: Engine
) -> None:
    hidden = _request(client, world["consumer"], layers=[{"layer": "rst", "fields": ["不存在"]}])
    ghost = _request(client, world["consumer"], layers=[{"layer": "ghost", "fields": ["不存在"]}])
    assert hidden.status_code == ghost.status_code == 201  # the consumer cannot see rst: no check, no hint
    r = client.post(f"/agreements/{hidden.json()['id']}/approve", headers=world["provider"])
    assert r.status_code == 422 and r.json()["field"] == "layers[0].fields"
    r = client.post(f"/agreements/{ghost.json()['id']}/approve", headers=world["provider"])
    assert r.status_code == 422 and r.json()["field"] == "layers[0].layer"
    # a layer the consumer can see is checked at once
    r = _request(client, world["consumer"], layers=[{"layer": "shr", "fields": ["不存在"]}])
    assert r.status_code == 422 and r.json()["field"] == "layers[0].fields"

    with db.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM gs.agreement")).scalar_one()
    for overrides, field in (
        (
            {"layers": [{"layer": "shr", "fields": ["编号"]}, {"layer": "shr", "fields": ["名称"]}]},
            "layers[1].layer",
        ),
        ({"area_code": "000000"}, "area_code"),
        ({"ends_on": (TODAY - timedelta(days=1)).isoformat()}, "ends_on"),
        ({"provider": CONSUMER}, "provider"),
        ({"provider": "NOBODY"}, "provider"),
        ({"purpose": "  "}, "purpose"),
    ):
        r = _request(client, world["consumer"], **overrides)
        assert 400 <= r.status_code < 500 and r.json()["field"] == field, (overrides, r.text)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gs.agreement")).scalar_one() == before


def test_cli_files_approves_and_revokes(
    client: TestClient, world: dict[str, dict[str, str]], database_url: str
) -> None:
    import typer
    from typer.testing import CliRunner

    from geoshare.cli.agreement import app as agreement_app
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    cli = typer.Typer()
    cli.add_typer(agreement_app, name="agreement")
    run = CliRunner().invoke
    try:
        ends = (TODAY + timedelta(days=30)).isoformat()
        filed = run(
            cli,
            [
                "agreement",
                "file",
                "--consumer",
                CONSUMER,
                "--provider",
                PROVIDER,
                "--layer",
                "rst=编号,名称",
                "--purpose",
                "纸质协议补录",
                "--ends",
                ends,
            ],
        )
        assert filed.exit_code == 0, filed.output
        agreement_id = re.match(r"#(\d+)", filed.output).group(1)  # type: ignore[union-attr]
        assert "requested" in filed.output
        reader = world["consumer_reader"]
        assert client.get("/collections/rst/items", headers=reader).status_code == 404
        assert run(cli, ["agreement", "approve", agreement_id]).exit_code == 0
        # the CLI is another client of the database: the app hears of it by NOTIFY, in milliseconds
        assert status_within(client, "/collections/rst/items", reader, 200) == 200
        listed = run(cli, ["agreement", "list", "--status", "approved"])
        assert re.search(rf"#{agreement_id}\s+approved", listed.output)
        assert run(cli, ["agreement", "revoke", agreement_id]).exit_code == 0
        assert status_within(client, "/collections/rst/items", reader, 404) == 404
        again = run(cli, ["agreement", "approve", agreement_id])
        assert again.exit_code != 0 and "already revoked" in again.output
    finally:
        get_engine().dispose()
