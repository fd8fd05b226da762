"""Who reads what: every read endpoint × {public, shared, restricted} × six principals.

Each layer is owned by SCJ and carries a restricted field (身份证号). Public layers are for everyone,
shared ones for any department's key, restricted ones for the owner and platform admins, and for
holders of an approved sharing agreement naming them; the restricted field only for the owner,
platform admins and holders of an agreement listing it. Two holders: ``holder`` (department AREA)
has an agreement on all three layers for 编号 and 名称 inside a division area that holds E0 and E1;
``holder_all`` (department FULL) one for 编号, 名称 and 身份证号 with no area. A layer one may not
read answers exactly as an unknown id does, and is not listed; a hidden field is named nowhere and
fails like an unknown one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import _wipe
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point, box
from sqlalchemy import Engine, text

from geoshare.access.store import create_key, revoke_key
from geoshare.settings import Settings

OWNER, OTHER, IT = "SCJ", "JT", "IT"
SECRET = "身份证号"
UNKNOWN = "不存在字段"
GHOST = "no-such-layer"
LAYERS = {"pub": "public", "shr": "shared", "rst": "restricted"}
PRINCIPALS = ("anonymous", "other", "owner", "admin", "holder", "holder_all")
HOLDERS = {"holder": "AREA", "holder_all": "FULL"}
AREA_CODE = "999901"  # a division of the test's own, far from any real code
IN_AREA = ["E0", "E1"]
ATTRS = [("编号", "string"), ("名称", "string"), (SECRET, "string"), ("资本", "number")]
FIXTURES = Path(__file__).parent / "fixtures"


def _secrets(layer_id: str) -> list[str]:
    return [f"11010119900{n}01{layer_id}X" for n in range(3)]


def _features(layer_id: str) -> list[tuple[Point, dict[str, Any]]]:
    return [
        (Point(116.4 + n / 100, 39.9), {"编号": f"E{n}", "名称": f"企业{n}", SECRET: s, "资本": n * 10.5})
        for n, s in enumerate(_secrets(layer_id))
    ]


@pytest.fixture(scope="module")
def world(engine: Engine) -> dict[str, Any]:
    """Three layers of SCJ (one per class) and keys; built once for the module."""
    _wipe(engine)
    for layer_id, cls in LAYERS.items():
        make_layer(
            engine,
            layer_id,
            _features(layer_id),
            ATTRS,
            key_field="编号",
            sharing_class=cls,
            department=OWNER,
            title=f"企业名录 {cls}",
            keywords=["企业"],
        )
    with engine.begin() as conn:
        conn.execute(text("UPDATE gs.layer SET restricted_fields = ARRAY[:f]"), {"f": SECRET})
        for code in (OTHER, IT, *HOLDERS.values()):
            conn.execute(text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), {"c": code})
        conn.execute(
            text(
                "INSERT INTO addr.division (code, level, name, short_name, path_codes, path_names,"
                " full_name, geom) VALUES (:c, 4, '测试街道', '测试', ARRAY[:c], ARRAY['测试街道'],"
                " '测试街道', ST_Multi(ST_GeomFromText(:wkt, 4326))) ON CONFLICT (code) DO UPDATE"
                " SET geom = excluded.geom"
            ),
            {"c": AREA_CODE, "wkt": box(116.39, 39.8, 116.415, 40.0).wkt},
        )
        for who, code in HOLDERS.items():
            fields = ["编号", "名称"] + ([SECRET] if who == "holder_all" else [])
            conn.execute(
                text(
                    "INSERT INTO gs.agreement (consumer_code, provider_code, purpose, starts_on, ends_on,"
                    " status, area_code, area) VALUES (:c, :p, '测试', current_date - 1, current_date + 30,"
                    " 'approved', :a, (SELECT geom FROM addr.division WHERE code = :a))"
                ),
                {"c": code, "p": OWNER, "a": AREA_CODE if who == "holder" else None},
            )
            conn.execute(
                text(
                    "INSERT INTO gs.agreement_layer SELECT currval(pg_get_serial_sequence('gs.agreement',"
                    " 'id')), l, :f FROM unnest(CAST(:layers AS text[])) l"
                ),
                {"f": fields, "layers": list(LAYERS)},
            )
        keys = {
            "anonymous": None,
            "other": create_key(conn, OTHER, "consumer").key,
            "owner": create_key(conn, OWNER, "consumer").key,
            "admin": create_key(conn, IT, "platform_admin").key,
            "owner_publisher": create_key(conn, OWNER, "publisher").key,
            "other_publisher": create_key(conn, OTHER, "publisher").key,
            **{who: create_key(conn, code, "consumer").key for who, code in HOLDERS.items()},
        }
    return keys


@pytest.fixture(scope="module")
def app_client(world: dict[str, Any], settings: Settings) -> Iterator[TestClient]:
    from geoshare.api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def can_read(cls: str, who: str) -> bool:
    return cls == "public" or (cls == "shared" and who != "anonymous") or who in ("owner", "admin", *HOLDERS)


def sees_secret(who: str) -> bool:
    """Owners and admins; the agreement listing the field (an area-limited one unlocks no
    restricted field on a public or shared layer, and does not list it on the restricted one)."""
    return who in ("owner", "admin", "holder_all")


def fields_seen(cls: str, who: str) -> set[str]:
    """Attributes ``who`` reads on a layer of class ``cls``: on a restricted layer a holder gets the
    agreement's fields only."""
    names = {name for name, _ in ATTRS}
    if cls == "restricted" and who in HOLDERS:
        names = {"编号", "名称", SECRET}
    return names if sees_secret(who) else names - {SECRET}


def rows_seen(cls: str, who: str) -> list[str]:
    return IN_AREA if cls == "restricted" and who == "holder" else ["E0", "E1", "E2"]


class Caller:
    """Sends one principal's key: the owner's in the ``key`` parameter, the others' in the header."""

    def __init__(self, client: TestClient, who: str, key: str | None) -> None:
        self.client, self.who, self.key = client, who, key

    def get(self, path: str, **params: Any) -> Any:
        if self.key is not None and self.who == "owner":
            params["key"] = self.key
        headers = {"X-API-Key": self.key} if self.key is not None and self.who != "owner" else {}
        return self.client.get(path, params=params, headers=headers)


def _no_leak(body: bytes, layer_id: str) -> None:
    """Neither the hidden field's name (raw or JSON-escaped) nor any of its values."""
    escaped = json.dumps(SECRET).strip('"').encode()
    assert SECRET.encode() not in body and escaped not in body
    for value in _secrets(layer_id):
        assert value.encode() not in body


ENDPOINTS = {
    "collection": "/collections/{id}",
    "queryables": "/collections/{id}/queryables",
    "items": "/collections/{id}/items",
    "item": "/collections/{id}/items/E1",
    "versions": "/layers/{id}/versions",
    "changes": "/layers/{id}/changes",
}
QUERY = {"changes": {"since": 0}}


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("layer_id", list(LAYERS))
def test_read_matrix(app_client: TestClient, world: dict[str, Any], layer_id: str, who: str) -> None:
    cls = LAYERS[layer_id]
    caller = Caller(app_client, who, world[who])
    visible, secret = can_read(cls, who), sees_secret(who)

    listed = caller.get("/collections")
    assert listed.status_code == 200
    assert (layer_id in [c["id"] for c in listed.json()["collections"]]) is visible
    found = caller.get("/catalog", q="企业")
    assert found.status_code == 200
    assert (layer_id in [x["id"] for x in found.json()["layers"]]) is visible
    assert found.json()["numberMatched"] == sum(can_read(c, who) for c in LAYERS.values())
    if not visible:
        assert f"企业名录 {cls}".encode() not in listed.content + found.content

    for name, template in ENDPOINTS.items():
        path = template.format(id=layer_id)
        r = caller.get(path, **QUERY.get(name, {}))
        if not visible:
            unknown = caller.get(template.format(id=GHOST), **QUERY.get(name, {}))
            assert r.status_code == unknown.status_code == 404, (name, r.text)
            assert r.headers["content-type"] == unknown.headers["content-type"]
            assert r.json() == json.loads(unknown.text.replace(GHOST, layer_id)), name
            _no_leak(r.content, layer_id)
            continue
        assert r.status_code == 200, (name, r.text)
        if not secret:
            _no_leak(r.content, layer_id)
        fields, rows = fields_seen(cls, who), rows_seen(cls, who)
        if "资本" not in fields:
            assert b"\\u8d44\\u672c" not in r.content and "资本".encode() not in r.content, name
        body = r.json()
        if name == "queryables":
            assert set(body["properties"]) & {n for n, _ in ATTRS} == fields
        elif name == "items":
            props = {f["id"]: f["properties"] for f in body["features"]}
            assert sorted(props) == rows and all(set(p) == fields for p in props.values())
            assert ("numberMatched" in body) is (rows == ["E0", "E1", "E2"])
            if secret:
                assert sorted(p[SECRET] for p in props.values()) == sorted(_secrets(layer_id))[: len(rows)]
        elif name == "item":
            assert set(body["properties"]) == fields and body["properties"]["名称"] == "企业1"
        elif name == "changes":
            feats = {c["feature"]["id"]: c["feature"]["properties"] for c in body["changes"]}
            assert sorted(feats) == rows and all(set(p) == fields for p in feats.values())
        elif name == "versions":
            assert [v["version"] for v in body["versions"]] == [1]


def _tile_path(layer_id: str, tms: str, z: int = 12) -> str:
    from layers.tiles.matrixsets import get_tms

    t = get_tms(tms).tile(116.41, 39.9, z)
    return f"/collections/{layer_id}/tiles/{tms}/{t.z}/{t.y}/{t.x}"


@pytest.mark.parametrize("tms", ["WebMercatorQuad", "CGCS2000Quad"])
@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("layer_id", list(LAYERS))
def test_tile_matrix(
    app_client: TestClient, world: dict[str, Any], layer_id: str, who: str, tms: str
) -> None:
    """Vector tiles follow the same rules: unreadable layers 404 like unknown ones, and hidden
    fields and rows outside an agreement's area are absent from the decoded tile."""
    import mapbox_vector_tile

    cls = LAYERS[layer_id]
    caller = Caller(app_client, who, world[who])
    r = caller.get(_tile_path(layer_id, tms))
    if not can_read(cls, who):
        unknown = caller.get(_tile_path(GHOST, tms))
        assert r.status_code == unknown.status_code == 404
        assert r.json() == json.loads(unknown.text.replace(GHOST, layer_id))
        return
    assert r.status_code == 200, r.text
    if not sees_secret(who):
        _no_leak(r.content, layer_id)
    layer = mapbox_vector_tile.decode(r.content)[layer_id]
    props = {f["properties"]["编号"]: f["properties"] for f in layer["features"]}
    assert sorted(props) == rows_seen(cls, who)
    assert all(set(p) == fields_seen(cls, who) for p in props.values())
    tilejson = caller.get(f"/collections/{layer_id}/tiles/{tms}/tilejson.json")
    assert tilejson.status_code == 200
    fields = set(tilejson.json()["vector_layers"][0]["fields"])
    assert fields & {n for n, _ in ATTRS} == fields_seen(cls, who)


@pytest.mark.parametrize("who", PRINCIPALS)
@pytest.mark.parametrize("layer_id", list(LAYERS))
def test_raster_wmts_and_export_matrix(
    app_client: TestClient, world: dict[str, Any], layer_id: str, who: str
) -> None:
    """Raster tiles, WMTS capabilities and exports follow the same rules as items and vector tiles."""
    import csv
    import io
    import xml.etree.ElementTree as ET

    cls = LAYERS[layer_id]
    caller = Caller(app_client, who, world[who])
    visible = can_read(cls, who)
    png = caller.get(_tile_path(layer_id, "WebMercatorQuad") + ".png")
    export = caller.get(f"/layers/{layer_id}/export", format="csv")
    caps = caller.get("/wmts", SERVICE="WMTS", REQUEST="GetCapabilities")
    assert caps.status_code == 200
    ows = "{http://www.opengis.net/ows/1.1}"
    offered = {e.text for e in ET.fromstring(caps.content).iter(f"{ows}Identifier")}
    assert (layer_id in offered) is visible
    if not visible:
        assert png.status_code == export.status_code == 404
        _no_leak(png.content + export.content + caps.content, layer_id)
        return
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert export.status_code == 200, export.text
    rows = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert sorted(r["编号"] for r in rows) == rows_seen(cls, who)
    assert set(rows[0]) & {n for n, _ in ATTRS} == fields_seen(cls, who)
    if not sees_secret(who):
        _no_leak(export.content, layer_id)


LANG = "cql2-json"


def _naming(params: dict[str, str], name: str) -> dict[str, str]:
    return {k.replace("{name}", name): v.replace("{name}", name) for k, v in params.items()}


@pytest.mark.parametrize(
    ("layer_id", "who"),
    [(layer, who) for layer, cls in LAYERS.items() for who in PRINCIPALS if can_read(cls, who)],
)
def test_hidden_field_is_an_unknown_field(
    app_client: TestClient, world: dict[str, Any], layer_id: str, who: str
) -> None:
    """filter, property=value, sortby and properties naming the hidden field fail like a typo
    (on the layers the principal can read; the others are not found at all)."""
    caller = Caller(app_client, who, world[who])
    path = f"/collections/{layer_id}/items"
    value = _secrets(layer_id)[1]
    for params in (
        {"filter": f"{{name}} = '{value}'"},
        {"filter": json.dumps({"op": "=", "args": [{"property": "{name}"}, value]}), "filter-lang": LANG},
        {"{name}": value},
        {"sortby": "-{name}"},
        {"properties": "名称,{name}"},
    ):
        hidden = caller.get(path, **_naming(params, SECRET))
        if sees_secret(who):
            assert hidden.status_code == 200, (params, hidden.text)
            continue
        unknown = caller.get(path, **_naming(params, UNKNOWN))
        assert hidden.status_code == unknown.status_code == 400, (params, hidden.text)
        assert hidden.json() == json.loads(unknown.text.replace(UNKNOWN, SECRET)), params
        assert value.encode() not in hidden.content
    if sees_secret(who):
        exact = caller.get(path, filter=f"{SECRET} = '{value}'").json()["features"]
        assert [f["id"] for f in exact] == ["E1"]


def test_revoked_key_is_refused_on_the_next_request(
    app_client: TestClient, world: dict[str, Any], engine: Engine
) -> None:
    with engine.begin() as conn:
        key = create_key(conn, OTHER, "consumer").key
    headers = {"X-API-Key": key}
    assert app_client.get("/collections/shr/items", headers=headers).status_code == 200
    with engine.begin() as conn:
        revoke_key(conn, key)  # straight in the database, as another process would
    assert app_client.app.state.layer_cache.sync()  # type: ignore[attr-defined] # its announcement arrived
    for path in ("/collections/shr/items", "/collections/pub", "/catalog", "/layers/pub/versions"):
        r = app_client.get(path, headers=headers)
        assert r.status_code == 401, (path, r.text)
        assert key not in r.text
    assert app_client.get("/collections/pub/items", params={"key": key}).status_code == 401


def _publish(client: TestClient, key: str | None, **metadata: str) -> Any:
    body = {"id": "stops", "title": "公交站", "department": OWNER, "class": "public", **metadata}
    headers = {"X-API-Key": key} if key else {}
    return client.post(
        "/layers",
        files={"file": ("bus_stops.geojson", (FIXTURES / "bus_stops.geojson").read_bytes())},
        data={"metadata": json.dumps(body)},
        headers=headers,
    )


def test_writes_need_the_owners_publisher(app_client: TestClient, world: dict[str, Any]) -> None:
    """Anonymous 401; another department naming the owner 403; over an id another department owns
    403; deleting a layer one cannot read 404 (as if unknown), one one can read 403; the owner's
    publisher publishes and deletes; a consumer key of the owner may not."""
    assert _publish(app_client, None).status_code == 401
    other, owner = world["other_publisher"], world["owner_publisher"]
    r = _publish(app_client, other)
    assert r.status_code == 403 and r.json()["field"] == "metadata.department"
    r = _publish(app_client, other, id="shr", department=OTHER)
    assert r.status_code == 403 and r.json()["field"] == "metadata.id"
    assert _publish(app_client, world["owner"]).status_code == 403  # a consumer, not a publisher

    hidden = app_client.delete("/layers/rst", headers={"X-API-Key": other})
    ghost = app_client.delete(f"/layers/{GHOST}", headers={"X-API-Key": other})
    assert hidden.status_code == ghost.status_code == 404
    assert hidden.json() == json.loads(ghost.text.replace(GHOST, "rst"))
    assert app_client.delete("/layers/shr", headers={"X-API-Key": other}).status_code == 403
    assert app_client.delete("/layers/shr").status_code == 401

    r = _publish(app_client, owner)
    assert r.status_code == 201, r.text
    assert app_client.get("/collections/stops").status_code == 200
    r = _publish(app_client, world["admin"], department="nobody", id="stops2")
    assert r.status_code == 422 and r.json()["field"] == "department"  # the engine's own check
    assert app_client.delete("/layers/stops", headers={"X-API-Key": other}).status_code == 403
    assert app_client.delete("/layers/stops", headers={"X-API-Key": owner}).status_code == 204
    assert app_client.get("/collections/stops").status_code == 404
    assert app_client.get("/collections/rst", headers={"X-API-Key": world["owner"]}).status_code == 200


def test_base_layers_are_for_platform_admins_only(app_client: TestClient, world: dict[str, Any]) -> None:
    """The base map is the IT office's: a department's publisher can neither publish nor replace nor
    delete a base layer, even under its own department code."""
    r = _publish(app_client, world["owner_publisher"], id="basestops", kind="base")
    assert r.status_code == 403 and r.json()["field"] == "metadata.kind"
    r = _publish(app_client, world["admin"], id="basestops", kind="base")
    assert r.status_code == 201, r.text
    r = _publish(app_client, world["owner_publisher"], id="basestops")  # "thematic" over a base layer
    assert r.status_code == 403 and r.json()["field"] == "metadata.id"
    r = app_client.delete("/layers/basestops", headers={"X-API-Key": world["owner_publisher"]})
    assert r.status_code == 403 and "base layer" in r.json()["detail"]
    assert app_client.delete("/layers/basestops", headers={"X-API-Key": world["admin"]}).status_code == 204
