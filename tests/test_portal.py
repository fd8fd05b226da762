"""The portal over HTTP: pages and their assets, ``/`` negotiation, ``/embed`` (parameters, browser
keys, embed tickets), the SDK, the glyph PBFs and the JavaScript budget."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, text

from geoshare.access.store import create_key
from geoshare.settings import Settings
from geoshare.web import asset_version, embed_ticket

PAGES = ["/map", "/portal/catalog", "/portal/layers/roads", "/portal/geocode", "/sdk", "/embed"]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
JS_BUDGET = 1_500_000  # bytes, gzip-compressed, per page
SITE = "https://dept.example.gov.cn"
OTHER = "https://elsewhere.example.com"


@pytest.fixture
def portal(db: Engine, settings: Settings) -> Iterator[TestClient]:
    from geoshare.api.app import create_app
    from geoshare.api.routes import portal as portal_routes

    app = create_app(settings)
    portal_routes.install(app)
    portal_routes.install(app)  # idempotent: the app factory may already have done it
    with TestClient(app) as client:
        yield client


@pytest.fixture
def browser_key(db: Engine) -> Callable[[list[str]], str]:
    def make(referrers: list[str]) -> str:
        with db.begin() as conn:
            return create_key(conn, "testdept", "consumer", allowed_referrers=referrers).key

    make_layer(
        db,
        "shelters",
        [(Point(116.4, 39.9), {"名称": "天坛公园"})],
        [("名称", "string")],
        department="testdept",
    )
    return make


def _lang(html: str) -> str:
    m = re.search(r'<html lang="([^"]+)"', html)
    assert m, "no lang on <html>"
    return m.group(1)


def _assets(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/(?:static|sdk)/[^"]+)"', html)


# -- pages --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_chinese_html_by_default(portal: TestClient, path: str) -> None:
    r = portal.get(path, headers={"Accept": BROWSER_ACCEPT, "Accept-Language": "en-US,en;q=0.9"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert _lang(r.text) == "zh-CN"
    assert "frame-ancestors" in r.headers["content-security-policy"]


def test_english_switch_is_remembered(portal: TestClient) -> None:
    r = portal.get("/portal/catalog?lang=en")
    assert _lang(r.text) == "en"
    assert "Data catalog" in r.text and "数据目录" not in r.text.split("<main")[1]
    assert portal.cookies.get("gs_lang") == "en"
    again = portal.get("/map")
    assert _lang(again.text) == "en"
    back = portal.get("/map?lang=zh-CN")
    assert _lang(back.text) == "zh-CN" and 'href="/map?lang=en"' in back.text


def test_unsupported_language_is_a_400_naming_lang(portal: TestClient) -> None:
    r = portal.get("/map?lang=fr")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == "lang"


def test_form_inputs_have_labels(portal: TestClient) -> None:
    for path in ("/portal/catalog", "/portal/geocode"):
        html = portal.get(path).text
        ids = re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', html)
        assert ids
        for element_id in ids:
            assert f'<label for="{element_id}"' in html, f"{path}: #{element_id} has no label"


@pytest.mark.parametrize("path", PAGES)
def test_referenced_assets_exist_and_are_cached_for_good(portal: TestClient, path: str) -> None:
    assets = _assets(portal.get(path).text)
    assert any(a.startswith("/sdk/geoshare.js") for a in assets)
    assert any(a.startswith("/static/vendor/maplibre-gl.css") for a in assets)
    for url in assets:
        r = portal.get(url)
        assert r.status_code == 200, url
        assert f"v={asset_version()}" in url
        assert "immutable" in r.headers["cache-control"], url
        kind = {"js": "javascript", "css": "css", "svg": "svg"}[url.split("?")[0].rsplit(".", 1)[1]]
        assert kind in r.headers["content-type"], url


def test_unversioned_static_urls_are_revalidated_and_missing_files_404(portal: TestClient) -> None:
    r = portal.get("/static/css/portal.css")
    assert r.status_code == 200 and "immutable" not in r.headers["cache-control"]
    missing = portal.get("/static/js/nope.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_vendored_maplibre_licence_is_shipped(portal: TestClient) -> None:
    r = portal.get("/static/vendor/LICENSE.maplibre-gl.txt")
    assert r.status_code == 200 and "MapLibre" in r.text


@pytest.mark.parametrize("path", ["/map", "/portal/layers/roads", "/embed"])
def test_javascript_budget(portal: TestClient, path: str) -> None:
    total = 0
    for url in _assets(portal.get(path).text):
        if url.split("?")[0].endswith(".js"):
            total += len(gzip.compress(portal.get(url).content, compresslevel=6))
    assert 0 < total <= JS_BUDGET, f"{path} ships {total} bytes of gzipped JavaScript"


# -- / negotiation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "query", "html"),
    [
        ({"Accept": BROWSER_ACCEPT}, "", True),
        ({}, "?f=html", True),
        ({"Accept": BROWSER_ACCEPT}, "?f=json", False),
        ({"Accept": "application/json"}, "", False),
        ({"Accept": "*/*"}, "", False),
        ({"Accept": "application/json, text/html;q=0.5"}, "", False),
        ({"Accept": "text/html;q=0.5, application/json;q=0.9"}, "", False),
    ],
)
def test_root_negotiates_map_or_landing_page(
    portal: TestClient, headers: dict[str, str], query: str, html: bool
) -> None:
    r = portal.get(f"/{query}", headers=headers)
    assert r.status_code == 200
    if html:
        assert r.headers["content-type"].startswith("text/html")
        assert 'data-page="map"' in r.text
    else:
        doc = r.json()
        assert r.headers["content-type"].startswith("application/json")
        assert {link["rel"] for link in doc["links"]} >= {"self", "conformance", "data"}


def test_root_keeps_the_landing_page_errors(portal: TestClient) -> None:
    r = portal.get("/?f=xml")
    assert r.status_code == 400 and r.json()["field"] == "f"


# -- /embed -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("center=116.4", "center"),
        ("center=abc,39.9", "center"),
        ("center=200,39.9", "center"),
        ("center=116.4,89", "center"),
        ("center=nan,1", "center"),
        ("zoom=23", "zoom"),
        ("zoom=-1", "zoom"),
        ("zoom=near", "zoom"),
        ("zoom=inf", "zoom"),
        ("layers=Roads!", "layers"),
        ("layers=" + ",".join(f"l{i}" for i in range(11)), "layers"),
        ("basemap=satellite view", "basemap"),
        ("zoom=3&zoom=4", "zoom"),
        ("colour=red", "colour"),
    ],
)
def test_embed_rejects_bad_parameters(portal: TestClient, query: str, field: str) -> None:
    r = portal.get(f"/embed?{query}")
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field


def test_embed_passes_its_parameters_to_the_page(portal: TestClient) -> None:
    r = portal.get("/embed?layers=roads,shelters&center=116.4,39.9&zoom=12.5&basemap=dark")
    assert r.status_code == 200
    config = _config(r.text)
    assert config["layers"] == ["roads", "shelters"]
    assert config["center"] == [116.4, 39.9] and config["zoom"] == 12.5 and config["basemap"] == "dark"
    assert config["key"] is None and config["ticket"] is None
    assert "frame-ancestors *" in r.headers["content-security-policy"]


def _config(html: str) -> dict[str, Any]:
    m = re.search(r'<script id="gs-config" type="application/json">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


def test_embed_with_a_key_bound_to_the_framing_site(portal: TestClient, browser_key: Callable) -> None:
    key = browser_key([SITE])
    ok = portal.get(f"/embed?layers=shelters&key={key}", headers={"Referer": f"{SITE}/news/map.html"})
    assert ok.status_code == 200
    config = _config(ok.text)
    assert config["key"] == key and config["ticket"]

    refused = portal.get(f"/embed?layers=shelters&key={key}", headers={"Referer": f"{OTHER}/page"})
    assert refused.status_code == 403
    assert refused.headers["content-type"].startswith("text/html")
    assert 'role="alert"' in refused.text and OTHER in refused.text and "不允许" in refused.text
    assert "gs-config" not in refused.text  # no map, no key handed out

    unreferred = portal.get(f"/embed?key={key}")
    assert unreferred.status_code == 403

    bad = portal.get("/embed?key=gsk_abcdefgh_" + "x" * 40, headers={"Referer": SITE})
    assert bad.status_code == 401 and "密钥无效" in bad.text


def test_embed_ticket_lets_the_framed_page_use_its_key(portal: TestClient, browser_key: Callable) -> None:
    key = browser_key([SITE])
    other_key = browser_key([SITE])
    page = portal.get(f"/embed?layers=shelters&key={key}", headers={"Referer": SITE})
    ticket = _config(page.text)["ticket"]
    url = f"/collections/shelters/tiles/WebMercatorQuad/tilejson.json?key={key}"
    own_page = {"Referer": "http://testserver/embed?key=x"}  # what the framed page's requests carry

    assert portal.get(url, headers=own_page).status_code == 403
    assert portal.get(url, headers={**own_page, "X-GeoShare-Embed": ticket}).status_code == 200
    assert (
        portal.get(url, headers={"X-API-Key": key, **own_page, "X-GeoShare-Embed": ticket}).status_code == 200
    )
    # a ticket is for its own key only, and cannot be altered
    other_url = f"/collections/shelters/tiles/WebMercatorQuad/tilejson.json?key={other_key}"
    assert portal.get(other_url, headers={**own_page, "X-GeoShare-Embed": ticket}).status_code == 403
    payload, mac = ticket.split(".")
    forged = (
        embed_ticket._b64(embed_ticket._unb64(payload).replace(SITE.encode(), OTHER.encode())) + "." + mac
    )
    assert portal.get(url, headers={**own_page, "X-GeoShare-Embed": forged}).status_code == 403
    assert portal.get(url, headers={**own_page, "X-GeoShare-Embed": "garbage"}).status_code == 403


def test_an_embed_ticket_vouches_only_for_its_own_map(
    portal: TestClient, browser_key: Callable, db: Engine
) -> None:
    """A ticket lifted from an embed of ``shelters`` opens nothing else its key could (issue 15.6)."""
    key = browser_key([SITE])
    trail = [(Point(116.4, 39.9), {"名称": "步道"})]
    make_layer(db, "trails", trail, [("名称", "string")], department="testdept")
    assert portal.get("/collections/trails/items?limit=1").status_code == 200  # public: anyone reads it
    page = portal.get(f"/embed?layers=shelters&key={key}", headers={"Referer": SITE})
    ticket = _config(page.text)["ticket"]
    framed = {"Referer": "http://testserver/embed", "X-GeoShare-Embed": ticket, "X-API-Key": key}
    for own in (
        "/collections/shelters/tiles/WebMercatorQuad/tilejson.json",
        "/collections/shelters/items?limit=1",
        "/basemap/style.json",
    ):
        assert portal.get(own, headers=framed).status_code == 200, own
    for other in (
        "/collections/trails/tiles/WebMercatorQuad/tilejson.json",  # the key may read it, not the ticket
        "/collections/trails/items?limit=1",
        "/layers/shelters/export?format=geojson",
        "/whoami",
    ):
        assert portal.get(other, headers=framed).status_code == 403, other
    assert portal.post("/agreements", headers=framed, json={}).status_code == 403


def test_embed_tickets_expire() -> None:
    secret = b"s" * 32
    ticket = embed_ticket.issue(secret, "abcdefgh", SITE, ["shelters"], now=1000.0)
    assert embed_ticket.verify(secret, ticket, "abcdefgh", now=1000.0 + 60) == embed_ticket.Vouch(
        SITE, frozenset({"shelters"}), "light"
    )
    assert embed_ticket.verify(secret, ticket, "abcdefgh", now=1000.0 + embed_ticket.TTL_SECONDS + 1) is None
    assert embed_ticket.verify(b"t" * 32, ticket, "abcdefgh", now=1000.0) is None
    assert embed_ticket.verify(secret, ticket, "zzzzzzzz", now=1000.0) is None


def test_embed_secret_is_shared_through_the_database(db: Engine) -> None:
    first = embed_ticket.load_secret(db)
    assert len(first) == 32 and embed_ticket.load_secret(db) == first
    vouch = embed_ticket.verify(first, embed_ticket.issue(first, "abcdefgh", SITE), "abcdefgh")
    assert vouch is not None and vouch.origin == SITE


# -- SDK ----------------------------------------------------------------------------------------------


def test_sdk_is_javascript_with_maplibre_and_the_api(portal: TestClient) -> None:
    r = portal.get("/sdk/geoshare.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/javascript")
    body = r.text
    assert "maplibregl" in body and "global.GeoShare" in body
    for name in ("map: createMap", "geocode: geocode", "reverse: reverse"):
        assert name in body
    assert "__GEOSHARE_VERSION__" not in body and asset_version() in body
    assert "immutable" not in r.headers["cache-control"]
    assert portal.get("/sdk/geoshare.js", headers={"If-None-Match": r.headers["etag"]}).status_code == 304
    versioned = portal.get(f"/sdk/geoshare.js?v={asset_version()}")
    assert "immutable" in versioned.headers["cache-control"]


def test_sdk_page_has_a_copy_paste_example(portal: TestClient) -> None:
    html = portal.get("/sdk").text
    assert "GeoShare.map(" in html and "/sdk/geoshare.js" in html and "/embed?" in html


# -- glyphs -------------------------------------------------------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return result, i


def _fields(data: bytes) -> Iterator[tuple[int, Any]]:
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        if tag & 7 == 0:
            value, i = _varint(data, i)
        elif tag & 7 == 2:
            length, i = _varint(data, i)
            value, i = data[i : i + length], i + length
        else:
            raise AssertionError(f"unexpected wire type {tag & 7}")
        yield tag >> 3, value


def _glyphs(pbf: bytes) -> tuple[str, str, dict[int, dict[int, Any]]]:
    (number, stack), *rest = list(_fields(pbf))
    assert number == 1 and not rest
    name = rng = ""
    glyphs: dict[int, dict[int, Any]] = {}
    for n, value in _fields(stack):
        if n == 1:
            name = value.decode()
        elif n == 2:
            rng = value.decode()
        elif n == 3:
            glyph = dict(_fields(value))
            glyphs[glyph[1]] = glyph
    return name, rng, glyphs


def test_glyph_range_0_255_has_digits_and_latin(portal: TestClient) -> None:
    r = portal.get("/fonts/Noto%20Sans%20Regular/0-255.pbf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-protobuf"
    assert "max-age" in r.headers["cache-control"]
    _, rng, glyphs = _glyphs(r.content)
    assert rng == "0-255"
    for ch in "0123456789ABCxyz":
        glyph = glyphs[ord(ch)]
        width, height = glyph[3], glyph[4]
        assert 0 < width < 30 and 0 < height < 30 and 0 < glyph[7] < 30
        assert len(glyph[2]) == (width + 6) * (height + 6)  # SDF with MapLibre's 3 px border
        assert max(glyph[2]) > 191 > min(glyph[2])  # the edge (192) runs through the bitmap
    assert glyphs[ord(" ")][7] > 0 and 2 not in glyphs[ord(" ")]  # a space advances, draws nothing


def test_glyphs_for_any_font_stack(portal: TestClient) -> None:
    a = portal.get("/fonts/Open%20Sans%20Bold,Arial%20Unicode%20MS%20Bold/0-255.pbf")
    b = portal.get("/fonts/Noto%20Sans%20Regular/0-255.pbf")
    assert a.status_code == 200 and a.content == b.content


@pytest.mark.parametrize("rng", ["19968-20223", "57344-57599", "128512-128767"])
def test_unknown_glyph_ranges_are_empty_not_errors(portal: TestClient, rng: str) -> None:
    r = portal.get(f"/fonts/Noto%20Sans%20Regular/{rng}.pbf")
    assert r.status_code == 200
    name, got, glyphs = _glyphs(r.content)
    assert name == "Noto Sans Regular" and got == rng and glyphs == {}


@pytest.mark.parametrize("rng", ["0-254", "1-256", "abc", "0-255-511"])
def test_malformed_glyph_ranges_are_400(portal: TestClient, rng: str) -> None:
    r = portal.get(f"/fonts/Noto%20Sans%20Regular/{rng}.pbf")
    assert r.status_code == 400
    assert r.json()["field"] == "range"


# -- second slice: sign-in, publishing, sharing, usage and batch pages --------------------------------

FORM_PAGES = {
    "/portal/signin": ("signin-form", "js/account.js"),
    "/portal/publish": ("publish-form", "js/publish.js"),
    "/portal/agreements": ("request-form", "js/sharing.js"),
    "/portal/usage": ("usage-form", "js/usage.js"),
    "/portal/batch": ("batch-form", "js/batch.js"),
}
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("path", FORM_PAGES)
def test_form_pages_render_with_their_script_and_no_map_library(portal: TestClient, path: str) -> None:
    form_id, script = FORM_PAGES[path]
    r = portal.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert _lang(r.text) == "zh-CN" and "frame-ancestors 'self'" in r.headers["content-security-policy"]
    assert f'id="{form_id}"' in r.text
    assets = _assets(r.text)
    assert any(a.startswith(f"/static/{script}?v=") for a in assets)
    assert any(a.startswith("/static/js/portal.js?v=") for a in assets)
    assert not any(a.startswith("/sdk/") or "maplibre" in a for a in assets), "a form page needs no MapLibre"
    for url in assets:
        assert portal.get(url).status_code == 200, url
    current = re.findall(r'<a [^>]*href="([^"]+)"[^>]*aria-current="page"', r.text)
    assert current == [path], "the page is marked current in the header, and only it"


def test_navigation_links_every_page(portal: TestClient) -> None:
    html = portal.get("/map").text
    for path in FORM_PAGES:
        assert f'href="{path}"' in html, path


@pytest.mark.parametrize("path", FORM_PAGES)
def test_form_page_inputs_have_labels(portal: TestClient, path: str) -> None:
    html = portal.get(path).text
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html)
    assert len(ids) >= 1
    for element_id in ids:
        assert f'<label for="{element_id}"' in html, f"{path}: #{element_id} has no label"


def test_form_pages_switch_to_english(portal: TestClient) -> None:
    html = portal.get("/portal/publish?lang=en").text
    assert _lang(html) == "en"
    main = html.split("<main")[1]
    assert "Layer id" in main and "Check" in main and "图层编号" not in main


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/portal/publish?layer=Not%20an%20id", "layer"),
        ("/portal/agreements?layer=x%2Fy", "layer"),
        ("/portal/signin?next=//evil.example.com/", "next"),
        ("/portal/signin?next=https://evil.example.com/", "next"),
        ("/portal/batch?job=../../etc", "job"),
        ("/portal/usage?colour=red", "colour"),
    ],
)
def test_form_pages_reject_bad_parameters(portal: TestClient, query: str, field: str) -> None:
    r = portal.get(query)
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json" and r.json()["field"] == field


def test_form_pages_pass_their_parameters(portal: TestClient) -> None:
    assert _config(portal.get("/portal/publish?layer=roads").text)["layerId"] == "roads"
    assert 'value="roads"' in portal.get("/portal/agreements?layer=roads").text
    assert _config(portal.get("/portal/signin?next=/portal/usage").text)["next"] == "/portal/usage"
    job = "0b8e3c1e-8d1f-4a43-9a55-2d1f0f3b5a10"
    assert _config(portal.get(f"/portal/batch?job={job}").text)["job"] == job


def test_every_message_the_pages_use_is_translated() -> None:
    """Keys named literally in templates and scripts exist in both languages (dynamic prefixes such as
    ``role.`` are listed here and checked for every value the API can send)."""
    from geoshare.web import STATIC_DIR, TEMPLATES_DIR, i18n

    used: set[str] = set()
    for path in [*STATIC_DIR.glob("js/*.js"), *TEMPLATES_DIR.glob("*.html")]:
        text_ = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_][\w.]*)["']\s*[,)]""", text_))
    dynamic = {
        "role": ("consumer", "publisher", "department_admin", "platform_admin"),
        "agreement": ("requested", "approved", "rejected", "revoked", "expired"),
        "batch.status": ("queued", "running", "done", "failed"),
        "type": ("string", "integer", "number", "boolean", "date", "datetime"),
        "publish": ("warn_class_changed", "warn_key_field_changed"),
    }
    used |= {f"{prefix}.{v}" for prefix, values in dynamic.items() for v in values}
    for lang in i18n.LANGS:
        missing = sorted(k for k in used if k not in i18n.messages(lang))
        assert not missing, f"{lang} lacks {missing}"


# -- POST /layers?dry_run=true ------------------------------------------------------------------------


def _meta(**extra: object) -> str:
    return json.dumps(
        {"id": "stops", "title": "公交站", "department": "transport", "class": "public", **extra}
    )


def _written(db: Engine) -> tuple[Any, ...]:
    with db.connect() as conn:
        return (
            tuple(conn.execute(text("SELECT count(*), max(current_version) FROM gs.layer")).one()),
            conn.execute(text("SELECT count(*) FROM gs.layer_version")).scalar_one(),
            conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'layerdata'")).scalar_one(),
        )


@pytest.fixture
def publisher(portal: TestClient, key_headers: Callable[..., dict[str, str]]) -> TestClient:
    portal.headers.update(key_headers("transport"))
    return portal


def _dry_run(client: TestClient, name: str, data: bytes | None = None, **form: str) -> Any:
    content = data if data is not None else (FIXTURES / name).read_bytes()
    fields = {"metadata": form.pop("metadata", _meta()), **form}
    return client.post("/layers?dry_run=true", files={"file": (name, content)}, data=fields)


def test_dry_run_names_the_line_of_a_bad_row_and_writes_nothing(publisher: TestClient, db: Engine) -> None:
    before = _written(db)
    r = _dry_run(publisher, "hospitals_bad_lat_line7.csv")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["line"] == 7 and problem["field"] == "纬度"
    assert "north" in problem["detail"]
    assert _written(db) == before


def test_dry_run_reports_what_would_be_published_and_writes_nothing(
    publisher: TestClient, db: Engine
) -> None:
    source = json.loads((FIXTURES / "bus_stops.geojson").read_text(encoding="utf-8"))
    before = _written(db)
    r = _dry_run(publisher, "bus_stops.geojson", metadata=_meta(key_field="stop_id"))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["dry_run"] is True and report["new_layer"] is True and report["version"] == 1
    assert report["feature_count"] == len(source["features"])
    assert report["geometry_type"] == "Point" and report["source_crs"] == "EPSG:4326"
    names = [f["name"] for f in report["fields"]]
    assert names == list(source["features"][0]["properties"])
    types = {f["name"]: f["type"] for f in report["fields"]}
    assert types["routes"] == "integer" and types["name"] == "string"
    xs = [f["geometry"]["coordinates"][0] for f in source["features"]]
    assert report["extent"][0] == pytest.approx(min(xs)) and report["extent"][2] == pytest.approx(max(xs))
    assert report["repaired"] == 0 and report["warnings"] == []
    assert _written(db) == before
    assert publisher.get("/collections/stops").status_code == 404


def test_dry_run_of_a_new_version_compares_with_the_current_one(publisher: TestClient, db: Engine) -> None:
    first = publisher.post(
        "/layers",
        files={"file": ("bus_stops.geojson", (FIXTURES / "bus_stops.geojson").read_bytes())},
        data={"metadata": _meta(key_field="stop_id", restricted_fields=["name"])},
    )
    assert first.status_code == 201, first.text
    before = _written(db)
    r = _dry_run(publisher, "bus_stops.geojson", metadata=_meta(**{"class": "shared"}))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["new_layer"] is False and report["version"] == first.json()["version"] + 1
    assert report["current"]["feature_count"] == first.json()["feature_count"]
    codes = {w["code"]: w for w in report["warnings"]}
    assert codes["class_changed"]["from"] == "public" and codes["class_changed"]["to"] == "shared"
    assert codes["fields_unrestricted"]["fields"] == ["name"]
    assert codes["key_field_changed"]["from"] == "stop_id" and codes["key_field_changed"]["to"] is None
    assert _written(db) == before
    assert publisher.get("/layers/stops/versions").json()["versions"][0]["version"] == 1


def test_dry_run_lists_repaired_geometries(publisher: TestClient, db: Engine) -> None:
    r = _dry_run(publisher, "bowtie.geojson")
    assert r.status_code == 200, r.text
    assert r.json()["repaired"] == 1 and r.json()["repaired_features"] == [2]


def test_dry_run_needs_a_publisher_of_the_department(
    portal: TestClient, db: Engine, key_headers: Callable[..., dict[str, str]]
) -> None:
    assert _dry_run(portal, "bus_stops.geojson").status_code == 401
    portal.headers.update(key_headers("transport", "consumer"))
    refused = _dry_run(portal, "bus_stops.geojson")
    assert refused.status_code == 403 and refused.json()["field"] == "metadata.department"


def test_dry_run_of_an_address_table_reports_the_match_rate(
    portal: TestClient, address_db: Engine, key_headers: Callable[..., dict[str, str]]
) -> None:
    with address_db.connect() as conn:
        full = conn.execute(
            text("SELECT full_address FROM addr.address WHERE level = 'door' ORDER BY address_code LIMIT 6")
        ).scalars().all()  # fmt: skip
    junk = ["琉璃星光大道8号", "hello"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["名称", "注册地址"])
    writer.writerows(
        [(f"店{i}", a) for i, a in enumerate(full)] + [(f"无{i}", a) for i, a in enumerate(junk)]
    )
    portal.headers.update(key_headers("scjgj"))
    before = _written(address_db)
    r = _dry_run(
        portal,
        "shops.csv",
        out.getvalue().encode(),
        metadata=_meta(id="shops", department="scjgj"),
        address_column="注册地址",
    )
    assert r.status_code == 200, r.text
    report = r.json()
    geo = report["geocoding"]
    assert geo["rows"] == len(full) + len(junk) and geo["matched"] == report["feature_count"] == len(full)
    assert geo["match_rate"] == pytest.approx(len(full) / geo["rows"], abs=1e-3)
    first_junk = len(full) + 2  # the header is line 1
    assert [u["line"] for u in geo["unmatched_rows"]] == [first_junk, first_junk + 1]
    assert {"名称", "注册地址", "匹配级别", "标准地址"} <= {f["name"] for f in report["fields"]}
    assert _written(address_db) == before
