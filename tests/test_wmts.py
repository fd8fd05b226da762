"""WMTS 1.0.0 read by OWSLib over real HTTP (uvicorn on a free port), KVP and RESTful."""

from __future__ import annotations

import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.etree import ElementTree as ET

import pytest
import requests
import uvicorn
from owslib.wmts import WebMapTileService
from sqlalchemy import Engine
from test_raster_tiles import LAT, LON, add_raster_routes, city, write_config  # noqa: F401 - city: fixture

from geoshare.settings import Settings
from layers.tiles.matrixsets import get_tms

OWS = "{http://www.opengis.net/ows/1.1}"
WMTS = "{http://www.opengis.net/wmts/1.0}"
SAMPLE = Path(__file__).parents[2] / "shared" / "data" / "imagery" / "bahamas_rgb.tif"
METRES_PER_DEGREE = 2 * math.pi * 6378137.0 / 360


@pytest.fixture
def imagery_dir(tmp_path: Path) -> Path:
    return tmp_path / "imagery"


@pytest.fixture
def server(city: Engine, settings: Settings, tmp_path: Path, imagery_dir: Path) -> Iterator[str]:  # noqa: F811
    from geoshare.api.app import create_app

    config = write_config(tmp_path / "bm.toml")
    app = add_raster_routes(
        create_app(replace(settings, basemap_config=str(config), imagery_dir=str(imagery_dir)))
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)
    sock.close()


def ows_error(r: requests.Response, status: int, code: str, locator: str | None = None) -> str:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.content)
    assert root.tag == f"{OWS}ExceptionReport"
    exception = root.find(f"{OWS}Exception")
    assert exception is not None and exception.get("exceptionCode") == code
    if locator is not None:
        assert exception.get("locator") == locator
    return exception.findtext(f"{OWS}ExceptionText") or ""


def direct(server: str, path: str, **params: str) -> bytes:
    r = requests.get(f"{server}{path}", params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.content


def rest_url(wmts: WebMapTileService, layer: str, media: str, **indices: Any) -> str:
    """The layer's ResourceURL for ``media``, filled in (OWSLib's own picks a format at random)."""
    [template] = [u["template"] for u in wmts[layer].resourceURLs if u["format"] == media]
    return template.format(Style="default", **indices)


def test_capabilities_parse_with_owslib(server: str) -> None:
    wmts = WebMapTileService(f"{server}/wmts")
    assert wmts.identification.type == "OGC WMTS" and wmts.identification.version == "1.0.0"
    layers = set(wmts.contents)
    assert {"basemap", "r_parks", "r_dot", "r_districts"} <= layers and "r_secret" not in layers
    assert set(wmts["basemap"].styles) == {"light", "dark"} and wmts["basemap"].styles["light"]["isDefault"]
    assert wmts["r_parks"].formats == ["image/png", "image/webp"]
    assert set(wmts["r_parks"].tilematrixsetlinks) == {"c", "w", "WebMercatorQuad"}
    west, south, east, north = wmts["r_parks"].boundingBoxWGS84
    assert west < LON < east and south < LAT < north

    for identifier, tms_id in (
        ("c", "CGCS2000Quad"),
        ("w", "TianDiTuWebMercator"),
        ("WebMercatorQuad", "WebMercatorQuad"),
    ):
        tms = get_tms(tms_id)
        matrices = wmts.tilematrixsets[identifier].tilematrix
        assert list(matrices) == [m.id for m in tms.tileMatrices]
        for tm_id, tm in matrices.items():
            ours = tms.matrix(int(tm_id))
            assert tm.scaledenominator == ours.scaleDenominator  # exactly, as matrixsets.py defines them
            assert (tm.matrixwidth, tm.matrixheight, tm.tilewidth) == (
                ours.matrixWidth,
                ours.matrixHeight,
                256,
            )
    assert wmts.tilematrixsets["c"].crs == "urn:ogc:def:crs:EPSG::4490"
    assert wmts.tilematrixsets["c"].tilematrix["1"].topleftcorner == (90.0, -180.0)  # lat, lon
    assert wmts.tilematrixsets["w"].tilematrix["1"].topleftcorner == (-20037508.3427892, 20037508.3427892)

    raw = requests.get(f"{server}/wmts/1.0.0/WMTSCapabilities.xml", timeout=30)
    assert raw.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(raw.content)
    sets = {s.findtext(f"{OWS}Identifier"): s for s in root.iter(f"{WMTS}TileMatrixSet") if len(s)}
    assert (
        sets["WebMercatorQuad"].findtext(f"{WMTS}WellKnownScaleSet")
        == "urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible"
    )
    corners = {k: s.find(f"{WMTS}TileMatrix").findtext(f"{WMTS}TopLeftCorner") for k, s in sets.items()}  # type: ignore[union-attr]
    assert corners == {"c": "90 -180", "w": "-20037508.3427892 20037508.3427892",
                       "WebMercatorQuad": "-20037508.3427892 20037508.3427892"}  # fmt: skip


@pytest.mark.parametrize(
    ("matrix_set", "tms_id", "z"),
    [("c", "CGCS2000Quad", 15), ("w", "TianDiTuWebMercator", 15), ("WebMercatorQuad", "WebMercatorQuad", 15)],
)
def test_gettile_kvp_and_rest_equal_the_direct_tile(
    server: str, matrix_set: str, tms_id: str, z: int
) -> None:
    wmts = WebMapTileService(f"{server}/wmts")
    t = get_tms(tms_id).tile(LON, LAT, z)
    expected = direct(server, f"/collections/r_parks/tiles/{tms_id}/{z}/{t.y}/{t.x}.png")
    kvp = wmts.gettile(
        layer="r_parks", tilematrixset=matrix_set, tilematrix=str(z), row=t.y, column=t.x, format="image/png"
    )
    assert kvp.read() == expected
    rest = rest_url(
        wmts, "r_parks", "image/png", TileMatrixSet=matrix_set, TileMatrix=z, TileRow=t.y, TileCol=t.x
    )
    assert urlsplit(rest).path.endswith(f"/wmts/1.0.0/r_parks/default/{matrix_set}/{z}/{t.y}/{t.x}.png")
    assert requests.get(rest, timeout=30).content == expected

    dark = wmts.gettile(
        layer="basemap",
        style="dark",
        tilematrixset=matrix_set,
        tilematrix=str(z),
        row=t.y,
        column=t.x,
        format="image/webp",
    )
    assert dark.read() == direct(server, f"/basemap/tiles/{tms_id}/{z}/{t.y}/{t.x}.webp", variant="dark")


def test_tianditu_c_tiles_cover_the_ground_of_cgcs2000quad(server: str) -> None:
    """A client placing ``c`` tiles from the capabilities alone (top-left corner plus scale denominator
    times 0.28 mm, as OpenLayers and QGIS do) puts each one where /basemap/tiles/CGCS2000Quad has it."""
    wmts = WebMapTileService(f"{server}/wmts")
    tms = get_tms("CGCS2000Quad")
    for level in (1, 8, 12, 16):
        tm = wmts.tilematrixsets["c"].tilematrix[str(level)]
        t = tms.tile(LON, LAT, level)
        degrees_per_pixel = tm.scaledenominator * 0.28e-3 / METRES_PER_DEGREE
        north, west = tm.topleftcorner  # EPSG:4490 order: latitude first
        span = degrees_per_pixel * tm.tilewidth
        client_box = (
            west + t.x * span,
            north - (t.y + 1) * span,
            west + (t.x + 1) * span,
            north - t.y * span,
        )
        ours = tms.bounds(t)
        assert client_box == pytest.approx((ours.left, ours.bottom, ours.right, ours.top), abs=1e-9)
    t = tms.tile(LON, LAT, 12)
    via_wmts = wmts.gettile(
        layer="basemap", tilematrixset="c", tilematrix="12", row=t.y, column=t.x, format="image/png"
    )
    assert via_wmts.read() == direct(server, f"/basemap/tiles/CGCS2000Quad/12/{t.y}/{t.x}.png")


def test_key_opens_restricted_layers_and_rides_in_every_url(
    server: str, key_headers: Callable[..., dict[str, str]]
) -> None:
    key = key_headers("IT", "consumer")["X-API-Key"]
    raw = requests.get(
        f"{server}/wmts", params={"SERVICE": "WMTS", "REQUEST": "GetCapabilities", "key": key}, timeout=30
    )
    root = ET.fromstring(raw.content)
    urls = [e.get("template") for e in root.iter() if e.get("template")]
    urls += [v for e in root.iter() for k, v in e.attrib.items() if k.endswith("href")]
    assert len(urls) > 10 and all(parse_qs(urlsplit(u).query).get("key") == [key] for u in urls)

    wmts = WebMapTileService(f"{server}/wmts?key={key}")
    assert "r_secret" in wmts.contents
    t = get_tms("CGCS2000Quad").tile(LON, LAT, 14)
    tile = wmts.gettile(
        layer="r_secret", tilematrixset="c", tilematrix="14", row=t.y, column=t.x, format="image/png"
    )
    expected = direct(server, f"/collections/r_secret/tiles/CGCS2000Quad/14/{t.y}/{t.x}.png", key=key)
    assert tile.read() == expected
    rest = rest_url(wmts, "r_secret", "image/png", TileMatrixSet="c", TileMatrix=14, TileRow=t.y, TileCol=t.x)
    assert requests.get(rest, timeout=30).content == expected
    anonymous = requests.get(rest.replace(f"&key={key}", ""), timeout=30)
    ows_error(anonymous, 400, "InvalidParameterValue", "Layer")


GETTILE = {
    "SERVICE": "WMTS",
    "REQUEST": "GetTile",
    "VERSION": "1.0.0",
    "LAYER": "r_parks",
    "STYLE": "default",
    "TILEMATRIXSET": "c",
    "TILEMATRIX": "14",
    "FORMAT": "image/png",
}


def _kvp(server: str, **params: Any) -> requests.Response:
    base = dict(GETTILE, TILEROW="2000", TILECOL="10000") | params
    return requests.get(f"{server}/wmts", params={k: v for k, v in base.items() if v is not None}, timeout=30)


def test_errors_are_ows_exception_reports(server: str) -> None:
    t = get_tms("CGCS2000Quad").tile(LON, LAT, 14)
    good = _kvp(server, TILEROW=str(t.y), TILECOL=str(t.x))
    assert good.status_code == 200 and good.headers["content-type"] == "image/png"
    lower = {
        k.lower(): v for k, v in (GETTILE | {"TILEROW": str(t.y), "TILECOL": str(t.x), "STYLE": ""}).items()
    }
    del lower["version"]
    assert (
        requests.get(f"{server}/wmts", params=lower, timeout=30).content == good.content
    )  # names in any case

    ows_error(_kvp(server, LAYER=None), 400, "MissingParameterValue", "LAYER")
    ows_error(_kvp(server, SERVICE=None), 400, "MissingParameterValue", "SERVICE")
    ows_error(_kvp(server, SERVICE="WMS"), 400, "InvalidParameterValue", "SERVICE")
    ows_error(_kvp(server, REQUEST="GetMap"), 501, "OperationNotSupported", "REQUEST")
    unknown = ows_error(_kvp(server, LAYER="r_nope"), 400, "InvalidParameterValue", "Layer")
    hidden = ows_error(_kvp(server, LAYER="r_secret"), 400, "InvalidParameterValue", "Layer")
    assert hidden == unknown.replace("r_nope", "r_secret")  # unreadable reads like unknown
    ows_error(_kvp(server, TILEMATRIXSET="x"), 400, "InvalidParameterValue", "TileMatrixSet")
    ows_error(_kvp(server, TILEMATRIX="0"), 400, "InvalidParameterValue", "TileMatrix")  # c starts at 1
    ows_error(_kvp(server, TILEROW="99999"), 400, "TileOutOfRange", "TileRow")
    ows_error(_kvp(server, TILECOL="-1"), 400, "InvalidParameterValue", "TileCol")
    ows_error(_kvp(server, FORMAT="image/gif"), 400, "InvalidParameterValue", "Format")
    ows_error(_kvp(server, STYLE="neon"), 400, "InvalidParameterValue", "Style")
    ows_error(_kvp(server, LAYER="basemap", STYLE="neon"), 400, "InvalidParameterValue", "Style")
    ows_error(_kvp(server, VERSION="2.0.0"), 400, "InvalidParameterValue", "VERSION")
    ows_error(_kvp(server, KEY="x"), 400, "InvalidParameterValue", "KEY")
    bad_key = _kvp(server, key="gsk_abcdefgh_nope")
    assert bad_key.status_code == 401 and ET.fromstring(bad_key.content).tag == f"{OWS}ExceptionReport"
    rest = requests.get(f"{server}/wmts/1.0.0/r_parks/default/c/14/{t.y}/{t.x}.gif", timeout=30)
    ows_error(rest, 400, "InvalidParameterValue", "Format")
    caps = requests.get(
        f"{server}/wmts",
        params={"service": "WMTS", "request": "GetCapabilities", "AcceptVersions": "2.0.0"},
        timeout=30,
    )
    ows_error(caps, 400, "VersionNegotiationFailed")


def test_an_unknown_layer_is_blamed_before_its_style(server: str) -> None:
    t = get_tms("CGCS2000Quad").tile(LON, LAT, 14)
    at = {"TILEROW": str(t.y), "TILECOL": str(t.x)}
    unknown = ows_error(_kvp(server, LAYER="r_nope", **at), 400, "InvalidParameterValue", "Layer")
    for layer in ("r_nope", "r_secret", "imagery.nope"):  # unknown, unreadable, unknown image
        for style in ("light", "neon"):
            kvp = _kvp(server, LAYER=layer, STYLE=style, **at)
            text = ows_error(kvp, 400, "InvalidParameterValue", "Layer")
            assert layer.removeprefix("imagery.") in text and "style" not in text.lower()
        rest = requests.get(f"{server}/wmts/1.0.0/{layer}/light/c/14/{t.y}/{t.x}.png", timeout=30)
        assert ows_error(rest, 400, "InvalidParameterValue", "Layer") == text
    hidden = ows_error(_kvp(server, LAYER="r_secret", STYLE="light", **at), 400, "InvalidParameterValue")
    assert hidden == unknown.replace("r_nope", "r_secret")  # unreadable still reads like unknown
    # a layer that is there, with a style it does not have: the style is at fault
    ows_error(_kvp(server, STYLE="light", **at), 400, "InvalidParameterValue", "Style")
    rest = requests.get(f"{server}/wmts/1.0.0/r_parks/light/c/14/{t.y}/{t.x}.png", timeout=30)
    ows_error(rest, 400, "InvalidParameterValue", "Style")


@pytest.mark.skipif(not SAMPLE.is_file(), reason="shared/data/imagery samples are not beside the repo")
def test_imagery_is_offered_and_served(server: str, city: Engine, imagery_dir: Path) -> None:  # noqa: F811
    from layers.imagery.store import ImageryMetadata, add_imagery

    image = add_imagery(
        city, SAMPLE, imagery_dir, ImageryMetadata(id="bahamas", title="巴哈马", department_code="IT")
    )
    wmts = WebMapTileService(f"{server}/wmts")
    layer = wmts["imagery.bahamas"]
    assert layer.formats == ["image/png", "image/jpeg", "image/webp"]
    limits = layer.tilematrixsetlinks["WebMercatorQuad"].tilematrixlimits
    assert limits and int(limits[str(image.maxzoom)].mintilerow) > 0
    west, south, east, north = image.bounds
    t = get_tms("CGCS2000Quad").tile((west + east) / 2, (south + north) / 2, image.maxzoom)
    got = wmts.gettile(
        layer="imagery.bahamas",
        tilematrixset="c",
        tilematrix=str(t.z),
        row=t.y,
        column=t.x,
        format="image/jpeg",
    )
    assert got.read() == direct(server, f"/imagery/bahamas/tiles/CGCS2000Quad/{t.z}/{t.y}/{t.x}.jpg")
    outside = _kvp(server, LAYER="imagery.bahamas", TILEMATRIX=str(t.z), TILEROW=str(t.y), TILECOL="0")
    ows_error(outside, 400, "TileOutOfRange")
