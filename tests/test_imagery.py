"""Imagery: COG storage, the registry, TileJSON and raster tiles, over real Landsat samples.

The two sample COGs come from ``shared/data/imagery`` beside the repository (see its README); a
non-COG copy is made here with rasterio to exercise the conversion path.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest
import rasterio
from fastapi.testclient import TestClient
from PIL import Image
from rasterio.warp import transform_bounds
from sqlalchemy import Engine, text

from geoshare.settings import Settings
from layers.errors import InvalidInput, NotFound
from layers.imagery import cog, imagery_catalog_records
from layers.imagery.store import ImageryMetadata, add_imagery, get_imagery, remove_imagery
from layers.registry import ANONYMOUS, TRUSTED, Visibility
from layers.tiles.matrixsets import get_tms

SAMPLES = Path(__file__).parents[2] / "shared" / "data" / "imagery"
BAHAMAS = SAMPLES / "bahamas_rgb.tif"
LANDSAT = SAMPLES / "landsat7.tif"

pytestmark = pytest.mark.skipif(
    not (BAHAMAS.is_file() and LANDSAT.is_file()),
    reason="shared/data/imagery samples are not beside the repo",
)

OWNER, OTHER = "ghj", "jtw"


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "imagery"
    monkeypatch.setenv("GEOSHARE_IMAGERY_DIR", str(directory))
    return directory


@pytest.fixture
def img_settings(settings: Settings, store_dir: Path) -> Settings:
    """The session settings pointed at this test's imagery directory (whether or not Settings
    already has the ``imagery_dir`` field: without it the environment variable is read)."""
    if any(f.name == "imagery_dir" for f in dataclasses.fields(settings)):
        return dataclasses.replace(settings, imagery_dir=str(store_dir))  # type: ignore[call-arg]
    return settings


@pytest.fixture
def departments(db: Engine) -> Engine:
    with db.begin() as conn:
        conn.execute(
            text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), [{"c": OWNER}, {"c": OTHER}]
        )
    return db


@pytest.fixture
def api(departments: Engine, img_settings: Settings) -> Iterator[TestClient]:
    from geoshare.api.app import create_app

    with TestClient(create_app(img_settings)) as c:
        yield c


def _meta(image_id: str = "bahamas", **kw: object) -> ImageryMetadata:
    values: dict[str, object] = {"title": f"{image_id} sample", "department_code": OWNER} | kw
    return ImageryMetadata(id=image_id, **values)  # type: ignore[arg-type]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def _non_cog_uint16(source: Path, target: Path) -> Path:
    """A striped 16-bit GeoTIFF without overviews: not a COG, and needing a rescale to render."""
    with rasterio.open(source) as src:
        data = src.read().astype("uint16") * 40
        profile = src.profile
    profile.update(driver="GTiff", dtype="uint16", tiled=False, compress="lzw", nodata=0)
    for k in ("blockxsize", "blockysize", "interleave"):
        profile.pop(k, None)
    with rasterio.open(target, "w", **profile) as dst:
        dst.write(data)
    return target


def _centre_tile(bounds: tuple[float, float, float, float], tms_id: str, z: int) -> tuple[int, int, int]:
    west, south, east, north = bounds
    t = get_tms(tms_id).tile((west + east) / 2, (south + north) / 2, z)
    return t.z, t.y, t.x


def _pixels(body: bytes, fmt: str) -> np.ndarray:
    image = Image.open(io.BytesIO(body))
    assert image.format == {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}[fmt]
    assert image.size == (256, 256)
    return np.asarray(image.convert("RGBA"))


def _problem(r, status: int, field: str | None = None) -> dict:  # noqa: ANN001
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    if field is not None:
        assert body["field"] == field
    return body


# -- storage ---------------------------------------------------------------------------------------


def test_cog_is_stored_verbatim_and_described(departments: Engine, store_dir: Path) -> None:
    image = add_imagery(departments, BAHAMAS, store_dir, _meta())
    assert image.checksum == image.source_checksum == cog.checksum(BAHAMAS)
    assert _files(store_dir) == [image.file_name]
    assert image.size_bytes == BAHAMAS.stat().st_size
    with rasterio.open(BAHAMAS) as ds:
        assert image.crs == ds.crs.to_string()
        assert (image.width, image.height, image.band_count) == (ds.width, ds.height, ds.count)
        expected = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds, densify_pts=21)
    assert image.bounds == pytest.approx(expected, abs=1e-9)
    assert image.rescale is None and image.dtype == "uint8"
    assert 0 <= image.minzoom <= image.maxzoom <= 24
    with departments.connect() as conn:
        assert get_imagery(conn, "bahamas", TRUSTED) == image


def test_non_cog_is_converted_and_rescaled(departments: Engine, store_dir: Path, tmp_path: Path) -> None:
    source = _non_cog_uint16(BAHAMAS, tmp_path / "striped.tif")
    assert not cog.is_cog(source)
    image = add_imagery(departments, source, store_dir, _meta("striped"))
    stored = store_dir / image.file_name
    assert cog.is_cog(stored)
    assert image.checksum != image.source_checksum == cog.checksum(source)
    with rasterio.open(stored) as ds, rasterio.open(source) as src:
        assert ds.crs == src.crs  # the source CRS is kept
        assert ds.overviews(1)  # internal overviews
        assert ds.profile["tiled"] and ds.dtypes[0] == "uint16"
        assert np.array_equal(ds.read(), src.read())  # lossless
    assert image.rescale is not None and len(image.rescale) == 3
    assert all(0 < low < high <= 255 * 40 for low, high in image.rescale)


def test_failed_replacement_leaves_previous_state(
    departments: Engine, store_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = add_imagery(departments, BAHAMAS, store_dir, _meta())
    files = _files(store_dir)
    broken = tmp_path / "broken.tif"
    broken.write_bytes(b"II*\x00 this is not really a TIFF")
    with pytest.raises(InvalidInput) as bad:
        add_imagery(departments, broken, store_dir, _meta(title="new title"))
    assert bad.value.field == "file"

    from layers.imagery import store

    def fail(*args: object) -> None:
        raise RuntimeError("database went away")

    monkeypatch.setattr(store, "_upsert", fail)  # fails after the new file got its final name
    with pytest.raises(RuntimeError):
        add_imagery(departments, LANDSAT, store_dir, _meta(title="new title"))
    with pytest.raises(InvalidInput) as dept:
        add_imagery(departments, LANDSAT, store_dir, _meta(department_code="nobody"))
    assert dept.value.field == "department"

    assert _files(store_dir) == files
    with departments.connect() as conn:
        assert get_imagery(conn, "bahamas", TRUSTED) == before


def test_replacement_swaps_the_file(departments: Engine, store_dir: Path) -> None:
    first = add_imagery(departments, BAHAMAS, store_dir, _meta())
    second = add_imagery(departments, LANDSAT, store_dir, _meta(title="replaced"))
    assert second.file_name != first.file_name and second.checksum == cog.checksum(LANDSAT)
    assert _files(store_dir) == [second.file_name]
    assert second.added_at == first.added_at < second.updated_at
    assert second.title == "replaced" and second.crs != first.crs
    assert remove_imagery(departments, "bahamas", store_dir) == second.file_name
    assert _files(store_dir) == []
    with pytest.raises(NotFound):
        remove_imagery(departments, "bahamas", store_dir)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"id": "Bad Id"}, "id"), ({"sharing_class": "secret"}, "class"), ({"title": " "}, "title")],
)
def test_bad_metadata_is_refused_before_any_work(
    departments: Engine, store_dir: Path, change: dict[str, str], field: str
) -> None:
    meta = dataclasses.replace(_meta(), **change)
    with pytest.raises(InvalidInput) as exc:
        add_imagery(departments, BAHAMAS, store_dir, meta)
    assert exc.value.field == field
    assert _files(store_dir) == []


def test_visibility_and_catalog_records(departments: Engine, store_dir: Path) -> None:
    for image_id, cls in (("pub", "public"), ("shr", "shared"), ("rst", "restricted")):
        add_imagery(departments, BAHAMAS, store_dir, _meta(image_id, sharing_class=cls))
    with departments.connect() as conn:

        def ids(vis: Visibility) -> set[str]:
            return {r["id"] for r in imagery_catalog_records(conn, vis, "http://x")}

        assert ids(ANONYMOUS) == {"pub"}
        assert ids(Visibility(department=OTHER)) == {"pub", "shr"}
        # a layer agreement naming the same id opens no image
        assert ids(Visibility(department=OTHER, granted=frozenset({"rst"}))) == {"pub", "shr"}
        assert ids(Visibility(department=OWNER)) == ids(TRUSTED) == {"pub", "shr", "rst"}
        record = imagery_catalog_records(conn, ANONYMOUS, "http://x")[0]
    assert record["type"] == "imagery" and record["class"] == "public"
    assert record["links"][0]["href"] == "http://x/imagery/pub"


def test_demo_imagery_loads_once(departments: Engine, img_settings: Settings, store_dir: Path) -> None:
    from geoshare.demo.imagery import DEMO_DEPARTMENT, DEMO_IMAGE, load_demo_imagery

    assert DEMO_IMAGE.is_file() and (DEMO_IMAGE.parent / "PROVENANCE.md").is_file()
    with departments.begin() as conn:
        conn.execute(text("INSERT INTO gs.department (code, name) VALUES (:c, :c)"), {"c": DEMO_DEPARTMENT})
    first = load_demo_imagery(departments, img_settings)
    again = load_demo_imagery(departments, img_settings)
    assert again == first and first.sharing_class == "public"
    assert _files(store_dir) == [first.file_name]


# -- HTTP ------------------------------------------------------------------------------------------


@pytest.fixture
def published(api: TestClient, departments: Engine, store_dir: Path) -> dict[str, object]:
    return {
        "pub": add_imagery(departments, BAHAMAS, store_dir, _meta("pub", sharing_class="public")),
        "shr": add_imagery(departments, LANDSAT, store_dir, _meta("shr", sharing_class="shared")),
        "rst": add_imagery(departments, BAHAMAS, store_dir, _meta("rst", sharing_class="restricted")),
    }


def test_list_and_metadata_follow_visibility(
    api: TestClient, published: dict, key_headers: Callable[..., dict[str, str]]
) -> None:
    listed = api.get("/imagery").json()
    assert [i["id"] for i in listed["imagery"]] == ["pub"] and listed["numberMatched"] == 1
    other = key_headers(OTHER, "consumer")
    assert {i["id"] for i in api.get("/imagery", headers=other).json()["imagery"]} == {"pub", "shr"}
    owner = key_headers(OWNER, "consumer")
    assert {i["id"] for i in api.get("/imagery", headers=owner).json()["imagery"]} == {"pub", "shr", "rst"}

    hidden = (
        "/imagery/rst",
        "/imagery/rst/tiles/WebMercatorQuad",
        "/imagery/shr/tiles/WebMercatorQuad/9/0/0.png",
    )
    for path in hidden:  # unreadable reads exactly like unknown
        image_id = path.split("/")[2]
        unknown = _problem(api.get(path.replace(f"/{image_id}", "/nope")), 404, "imageryId")
        assert _problem(api.get(path), 404, "imageryId")["detail"] == unknown["detail"].replace(
            "nope", image_id
        )
    assert _problem(api.get("/imagery/rst", headers=other), 404, "imageryId")

    doc = api.get("/imagery/rst", headers=owner).json()
    image = published["rst"]
    assert doc["bbox"] == pytest.approx(list(image.bounds))
    assert doc["crs"] == image.crs and doc["bandCount"] == 3 and doc["checksum"].endswith(image.checksum)
    rels = {
        link["href"].split("/tiles/")[-1] for link in doc["links"] if link["rel"].endswith("tilesets-map")
    }
    assert {"WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"} <= rels


@pytest.mark.parametrize("tms_id", ["WebMercatorQuad", "WorldCRS84Quad", "CGCS2000Quad"])
@pytest.mark.parametrize("fmt", ["png", "jpg", "webp"])
def test_tilejson_tiles_render(api: TestClient, published: dict, tms_id: str, fmt: str) -> None:
    tj = api.get(f"/imagery/pub/tiles/{tms_id}", params={"format": fmt}).json()
    image = published["pub"]
    assert tj["tilejson"] == "3.0.0" and tj["bounds"] == pytest.approx(list(image.bounds))
    assert tj["minzoom"] <= tj["maxzoom"] and tj["center"][2] == tj["minzoom"]
    url = urlsplit(tj["tiles"][0])
    assert url.path.endswith(f"/{{z}}/{{y}}/{{x}}.{fmt}")
    assert image.checksum.startswith(parse_qs(url.query)["v"][0])

    z, y, x = _centre_tile(image.bounds, tms_id, tj["maxzoom"])
    path = url.path.replace("{z}", str(z)).replace("{y}", str(y)).replace("{x}", str(x))
    r = api.get(f"{path}?{url.query}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}[fmt]
    assert "immutable" in r.headers["cache-control"]
    rgba = _pixels(r.content, fmt)
    assert rgba[..., :3].std() > 5  # an image, not a flat fill
    assert (rgba[..., 3] == 255).mean() > 0.9

    outside = path.replace(f"/{y}/{x}.", f"/{y}/{(x + 40) % 2**z}.")
    _problem(api.get(outside), 404, "tile")


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_edge_tiles_are_transparent_outside(api: TestClient, published: dict, fmt: str) -> None:
    image = published["pub"]
    z, y, x = _centre_tile(image.bounds, "WebMercatorQuad", image.minzoom - 1)  # image smaller than a tile
    r = api.get(f"/imagery/pub/tiles/WebMercatorQuad/{z}/{y}/{x}.{fmt}")
    alpha = _pixels(r.content, fmt)[..., 3]
    assert (alpha == 0).any() and (alpha == 255).any()


def test_rescaled_16bit_tiles_have_contrast(
    api: TestClient, departments: Engine, store_dir: Path, tmp_path: Path
) -> None:
    image = add_imagery(departments, _non_cog_uint16(BAHAMAS, tmp_path / "s.tif"), store_dir, _meta("deep"))
    z, y, x = _centre_tile(image.bounds, "WebMercatorQuad", image.maxzoom)
    rgba = _pixels(api.get(f"/imagery/deep/tiles/WebMercatorQuad/{z}/{y}/{x}.jpg").content, "jpg")
    assert rgba[..., :3].std() > 5 and 20 < rgba[..., :3].mean() < 235


def test_etag_and_caching(
    api: TestClient, published: dict, departments: Engine, store_dir: Path, tmp_path: Path
) -> None:
    image = published["pub"]
    z, y, x = _centre_tile(image.bounds, "WebMercatorQuad", image.minzoom)
    path = f"/imagery/pub/tiles/WebMercatorQuad/{z}/{y}/{x}.png"
    first = api.get(path)
    etag = first.headers["etag"]
    assert image.checksum[:20] in etag and "immutable" not in first.headers["cache-control"]
    assert first.headers["cache-control"].startswith("public")
    cached = api.get(path, headers={"If-None-Match": etag})
    assert cached.status_code == 304 and not cached.content and cached.headers["etag"] == etag
    assert api.get(path.replace(".png", ".webp"), headers={"If-None-Match": etag}).status_code == 200
    assert "immutable" in api.get(path, params={"v": image.checksum[:12]}).headers["cache-control"]
    assert "immutable" not in api.get(path, params={"v": "0" * 12}).headers["cache-control"]

    replacement = _non_cog_uint16(BAHAMAS, tmp_path / "new.tif")  # same place, other pixels
    add_imagery(departments, replacement, store_dir, _meta("pub", sharing_class="public"))
    fresh = api.get(path, headers={"If-None-Match": etag})
    assert fresh.status_code == 200 and fresh.headers["etag"] != etag


def test_missing_file_is_a_503_problem(api: TestClient, published: dict, store_dir: Path) -> None:
    image = published["pub"]
    z, y, x = _centre_tile(image.bounds, "WebMercatorQuad", image.minzoom)
    (store_dir / image.file_name).rename(store_dir / "moved.tif")
    try:
        r = api.get(f"/imagery/pub/tiles/WebMercatorQuad/{z}/{y}/{x}.png")
        assert "missing" in _problem(r, 503, "imageryId")["detail"]
    finally:
        (store_dir / "moved.tif").rename(store_dir / image.file_name)
    assert api.get(f"/imagery/pub/tiles/WebMercatorQuad/{z}/{y}/{x}.png").status_code == 200


@pytest.mark.parametrize(
    ("path", "status", "field"),
    [
        ("/imagery/pub/tiles/WebMercatorQuad/x/0/0.png", 400, "tileMatrix"),
        ("/imagery/pub/tiles/WebMercatorQuad/3/-1/0.png", 400, "tileRow"),
        ("/imagery/pub/tiles/WebMercatorQuad/3/0/1.5.png", 400, "tileCol"),
        ("/imagery/pub/tiles/WebMercatorQuad/31/0/0.png", 404, "tileMatrix"),
        ("/imagery/pub/tiles/WebMercatorQuad/3/8/0.png", 404, "tileRow"),
        ("/imagery/pub/tiles/WebMercatorQuad/3/0/0.gif", 400, "format"),
        ("/imagery/pub/tiles/Nowhere/3/0/0.png", 404, "tileMatrixSetId"),
        ("/imagery/pub/tiles/CGCS2000Quad/0/0/0.png", 404, "tileMatrix"),
        ("/imagery/pub/tiles/WebMercatorQuad/3/0/0.png?colour=red", 400, "colour"),
        ("/imagery/pub/tiles/WebMercatorQuad?format=tiff", 400, "format"),
        ("/imagery/pub/tiles/Nowhere", 404, "tileMatrixSetId"),
        ("/imagery?bbox=1,2,3,4", 400, "bbox"),
    ],
)
def test_bad_requests_are_problems(
    api: TestClient, published: dict, path: str, status: int, field: str
) -> None:
    _problem(api.get(path), status, field)


def test_admin_put_and_delete(
    api: TestClient, departments: Engine, key_headers: Callable, store_dir: Path
) -> None:
    body = BAHAMAS.read_bytes()
    params = {"title": "uploaded", "department": OWNER, "class": "restricted"}
    assert _problem(api.put("/imagery/up", params=params, content=body), 401)
    _problem(
        api.put("/imagery/up", params=params, content=body, headers=key_headers(OWNER, "department_admin")),
        403,
    )
    admin = key_headers("it", "platform_admin")
    created = api.put("/imagery/up", params=params, content=body, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["class"] == "restricted" and created.json()["checksum"].endswith(
        cog.checksum(BAHAMAS)
    )
    replaced = api.put("/imagery/up", params=params, content=LANDSAT.read_bytes(), headers=admin)
    assert replaced.status_code == 200 and replaced.json()["checksum"].endswith(cog.checksum(LANDSAT))
    _problem(api.put("/imagery/up", params=params, content=b"garbage", headers=admin), 422, "file")
    _problem(api.put("/imagery/up", params=params, content=b"", headers=admin), 400, "body")
    _problem(api.put("/imagery/Up!", params=params, content=body, headers=admin), 422, "id")
    assert api.get("/imagery/up", headers=admin).json()["checksum"].endswith(cog.checksum(LANDSAT))
    assert [n for n in _files(store_dir) if not n.startswith("up.")] == []  # no leftovers

    assert api.delete("/imagery/up", headers=admin).status_code == 204
    _problem(api.get("/imagery/up", headers=admin), 404)
    _problem(api.delete("/imagery/up", headers=admin), 404)
    assert _files(store_dir) == []


def test_cli_add_list_remove(departments: Engine, store_dir: Path, database_url: str) -> None:
    import typer
    from typer.testing import CliRunner

    from geoshare.cli.imagery import app as imagery_app
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    get_settings.cache_clear()
    get_engine.cache_clear()
    assert os.environ["GEOSHARE_IMAGERY_DIR"] == str(store_dir)
    cli = typer.Typer()
    cli.add_typer(imagery_app, name="imagery")
    run = CliRunner().invoke
    try:
        added = run(cli, ["imagery", "add", str(LANDSAT), "--department", OWNER, "--sharing-class", "shared"])
        assert added.exit_code == 0, added.output
        listed = run(cli, ["imagery", "list"])
        assert listed.output.split()[:5] == ["landsat7", "landsat7", OWNER, "shared", "EPSG:3857"]
        bad = run(cli, ["imagery", "add", str(LANDSAT), "--sharing-class", "secret"])
        assert bad.exit_code == 2 and "sharing class" in bad.output
        removed = run(cli, ["imagery", "remove", "landsat7"])
        assert removed.exit_code == 0 and _files(store_dir) == []
        assert run(cli, ["imagery", "remove", "landsat7"]).exit_code == 2
    finally:
        get_engine().dispose()
        get_engine.cache_clear()
