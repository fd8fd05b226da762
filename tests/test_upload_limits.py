"""Uploads past a limit are a 422 naming the file, field or line, in bounded memory, writing nothing.

Zip bombs are built here from compressed streams of a repeated MiB in a hand-written zip container
(so headers can lie); each is read in a subprocess whose peak RSS is measured. PostgreSQL's limits
(columns, row and index-entry sizes, identifier length) are refused before anything is written.
"""

from __future__ import annotations

import bz2
import json
import lzma
import secrets
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import pytest
from fastapi.testclient import TestClient
from shapely.geometry import Point
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from geoshare.api.problems import database_unavailable, program_limit
from geoshare.services.departments import ensure_department

MiB = 1024**2
STORED, DEFLATED, BZIP2, LZMA = 0, 8, 12, 14
PEAK_RSS_MB = 300


def compressed(method: int, head: bytes, fill: bytes, count: int) -> tuple[bytes, int]:
    """``head`` then ``fill`` ``count`` times, compressed with ``method``, and the plain text's CRC."""
    crc = zlib.crc32(head)
    for _ in range(count):
        crc = zlib.crc32(fill, crc)
    if method == STORED:
        return head + fill * count, crc
    if method == DEFLATED:  # full flushes make every repetition the same bytes: a GiB in milliseconds
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
        segment = c.compress(fill) + c.flush(zlib.Z_FULL_FLUSH)
        return first + segment * count + c.flush(zlib.Z_FINISH), crc
    if method == BZIP2:
        c = bz2.BZ2Compressor(1)
        return c.compress(head) + b"".join(c.compress(fill) for _ in range(count)) + c.flush(), crc
    options = {"id": lzma.FILTER_LZMA1, "preset": 0}
    c = lzma.LZMACompressor(format=lzma.FORMAT_RAW, filters=[options])
    props = lzma._encode_filter_properties(options)  # noqa: SLF001 - zip's LZMA member header, as zipfile writes it
    data = c.compress(head) + b"".join(c.compress(fill) for _ in range(count)) + c.flush()
    return struct.pack("<BBH", 9, 4, len(props)) + props + data, crc


def write_zip(path: Path, members: list[tuple[str, int, bytes, int, int]]) -> Path:
    """``members``: (name, method, compressed data, CRC, declared uncompressed size)."""
    central = []
    with path.open("wb") as f:
        for name, method, data, crc, size in members:
            offset, raw = f.tell(), name.encode()
            flags = 2 if method == LZMA else 0
            fields = (20, flags, method, 0, 0x21, crc, len(data), size, len(raw))
            f.write(struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + raw + data)
            central.append(
                struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, *fields, 0, 0, 0, 0, 0, offset) + raw
            )
        start, directory = f.tell(), b"".join(central)
        n = len(central)
        f.write(directory + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(directory), start, 0))
    return path


def zeros_bomb(path: Path, method: int, mib: int, forged: int | None = None) -> Path:
    data, crc = compressed(method, b"", bytes(MiB), mib)
    return write_zip(path, [("bomb.geojson", method, data, crc, mib * MiB if forged is None else forged)])


def dbf_bomb(path: Path, method: int, mib: int) -> Path:
    """A real one-point shapefile whose .dbf holds ``mib`` * 4096 blank 255-character records."""
    folder = path.parent / "one"
    folder.mkdir(exist_ok=True)
    gpd.GeoDataFrame({"NAME": ["a"]}, geometry=[Point(116.4, 39.9)], crs=4326).to_file(folder / "one.shp")
    head = struct.pack("<BBBBIHH20x", 3, 124, 1, 1, mib * MiB // 256, 65, 256)
    head += b"NAME".ljust(11, b"\x00") + b"C" + bytes(4) + bytes([255, 0]) + bytes(14) + b"\x0d"
    data, crc = compressed(method, head, b" " * MiB, mib)
    parts = [(f"bomb{s}", (folder / f"one{s}").read_bytes()) for s in (".shp", ".shx", ".prj")]
    members = [(n, STORED, b, zlib.crc32(b), len(b)) for n, b in parts]
    return write_zip(path, [*members, ("bomb.dbf", method, data, crc, len(head) + mib * MiB)])


# peak RSS from VmHWM: ru_maxrss would carry the forking parent's (the test process's) over exec
_READ = """
import json, re, sys
from pathlib import Path
from layers.ingest import read_source
args = json.loads(sys.argv[2])
if args:
    from layers.ingest import ReadLimits
    args = {"limits": ReadLimits(**args)}
try:
    source = read_source(Path(sys.argv[1]), label="upload.zip", **args)
    out = {"accepted": len(source.frame)}
except Exception as exc:
    out = {"error": type(exc).__name__, "detail": str(exc), "field": getattr(exc, "field", None)}
status = open("/proc/self/status").read()
out["peak_mb"] = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
print(json.dumps(out))
"""


def read_in_subprocess(path: Path, **limits: int) -> dict:
    """Read ``path`` as an upload in a fresh interpreter: what happened and its peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", _READ, str(path), json.dumps(limits)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


BOMBS: dict[str, Callable[[Path], Path]] = {
    "deflate-1GiB": lambda p: zeros_bomb(p, DEFLATED, 1024),
    "bzip2-512MiB": lambda p: zeros_bomb(p, BZIP2, 512),
    "lzma-512MiB": lambda p: zeros_bomb(p, LZMA, 512),
    "dbf-deflate-1GiB": lambda p: dbf_bomb(p, DEFLATED, 1024),
    # headers that lie: declared 4 KiB, so no check of declared sizes can stop them
    "forged-deflate-1GiB": lambda p: zeros_bomb(p, DEFLATED, 1024, forged=4096),
    "forged-bzip2-512MiB": lambda p: zeros_bomb(p, BZIP2, 512, forged=4096),
    "forged-stored-64MiB": lambda p: zeros_bomb(p, STORED, 64, forged=4096),
}


@pytest.mark.parametrize("name", list(BOMBS))
def test_zip_bombs_are_refused_in_bounded_memory(tmp_path: Path, name: str) -> None:
    """Even with the engine's default limits (16 GiB): every codec is streamed and stopped early."""
    result = read_in_subprocess(BOMBS[name](tmp_path / f"{name}.zip"))
    assert result.get("error") == "InvalidInput" and result["field"] == "file", result
    assert "zip bomb" in result["detail"] or "corrupt" in result["detail"], result
    assert "/tmp" not in result["detail"]
    assert result["peak_mb"] < PEAK_RSS_MB, result


def test_expanded_size_limit(tmp_path: Path) -> None:
    """Past ``max_bytes`` (the platform derives it from its upload limit) an archive is refused; a
    header declaring less than its member holds is refused as soon as the member outgrows it."""
    data, crc = compressed(DEFLATED, b"", secrets.token_bytes(MiB), 4)  # incompressible: ratio ~1
    honest = write_zip(tmp_path / "honest.zip", [("big.geojson", DEFLATED, data, crc, 4 * MiB)])
    result = read_in_subprocess(honest, max_bytes=2 * MiB)
    assert "upload.zip: the zip archive's content is larger than the 2 MiB" in result["detail"], result
    forged = write_zip(tmp_path / "forged.zip", [("big.geojson", DEFLATED, data, crc, 100)])
    result = read_in_subprocess(forged, max_bytes=2 * MiB)
    assert "holds more than the 100 bytes its header declares" in result["detail"], result


def test_bzip2_and_lzma_archives_are_readable(tmp_path: Path) -> None:
    """GDAL's /vsizip/ could not read them at all; streamed out by the engine, they publish."""
    from layers.ingest import read_source

    feature = {
        "type": "Feature",
        "properties": {"n": 1},
        "geometry": {"type": "Point", "coordinates": [116, 40]},
    }
    plain = json.dumps({"type": "FeatureCollection", "features": [feature]}).encode()
    for method in (BZIP2, LZMA, DEFLATED, STORED):
        data, crc = compressed(method, plain, b"", 0)
        path = write_zip(tmp_path / f"m{method}.zip", [("stops.geojson", method, data, crc, len(plain))])
        assert len(read_source(path).frame) == 1


def test_loose_file_past_the_limit_names_it(tmp_path: Path) -> None:
    from layers.errors import InvalidInput
    from layers.ingest import ReadLimits, read_source

    path = tmp_path / "upload.csv"
    path.write_text("lon,lat\n" + "116.4,39.9\n" * 20_000, encoding="utf-8")
    with pytest.raises(InvalidInput) as err:
        read_source(path, label="门店.csv", limits=ReadLimits(max_bytes=100_000))
    assert (
        err.value.field == "file"
        and err.value.detail.startswith("门店.csv")
        and "100,000 bytes" in err.value.detail
    )


# ---------------------------------------------------------------- over HTTP


@pytest.fixture
def api(client: TestClient, db: Engine, key_headers: Callable[..., dict[str, str]]) -> TestClient:
    """The app as a publisher of the transport bureau; server errors come back as responses."""
    with db.begin() as conn:
        ensure_department(conn, "transport", "Transport Bureau")
    quiet = TestClient(client.app, raise_server_exceptions=False)
    quiet.headers.update(key_headers("transport"))
    return quiet


def post(client: TestClient, name: str, data: bytes, dry_run: bool = False, **metadata: object):  # type: ignore[no-untyped-def]
    body = {"id": "stops", "title": "Stops", "department": "transport", **metadata}
    return client.post(
        "/layers",
        params={"dry_run": "true"} if dry_run else None,
        files={"file": (name, data)},
        data={"metadata": json.dumps(body)},
    )


def nothing_written(db: Engine) -> bool:
    with db.connect() as conn:
        layers = conn.execute(text("SELECT count(*) FROM gs.layer")).scalar_one()
        tables = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = 'layerdata'")
        ).scalar_one()
    return (layers, tables) == (0, 0)


def problem(r, field: str | None, line: int | None = None) -> dict:  # type: ignore[no-untyped-def]
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body.get("field") == field and body.get("line") == line, body
    assert "/tmp" not in body["detail"] and "geoshare-" not in body["detail"], body
    return body


def test_a_bomb_upload_is_a_422_and_writes_nothing(api: TestClient, db: Engine, tmp_path: Path) -> None:
    data = zeros_bomb(tmp_path / "b.zip", BZIP2, 256).read_bytes()
    for dry_run in (True, False):
        assert "zip bomb" in problem(post(api, "公交站.zip", data, dry_run), "file")["detail"]
    assert nothing_written(db)


def test_the_expanded_limit_follows_the_upload_limit(api: TestClient, db: Engine) -> None:
    features = [
        {
            "type": "Feature",
            "properties": {"note": secrets.token_hex(40)},
            "geometry": {"type": "Point", "coordinates": [116, 40]},
        }
        for _ in range(10_000)
    ]
    plain = json.dumps({"type": "FeatureCollection", "features": features}).encode()  # ~1.4 MB
    data, crc = compressed(DEFLATED, plain, b"", 0)
    zipped = _zip_bytes([("stops.geojson", DEFLATED, data, crc, len(plain))])
    settings = api.app.state.settings
    api.app.state.settings = type(settings)(database_url=settings.database_url, upload_max_bytes=1 * MiB)
    try:
        assert len(zipped) < MiB
        body = problem(post(api, "stops.zip", zipped), "file")
        assert body["detail"].startswith("stops.zip") and "1 MiB" in body["detail"], body
    finally:
        api.app.state.settings = settings
    assert nothing_written(db)


def _zip_bytes(members: list[tuple[str, int, bytes, int, int]]) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return write_zip(Path(folder) / "a.zip", members).read_bytes()


def _csv(columns: int, rows: int = 2, value: str = "1") -> bytes:
    header = ",".join(["lon", "lat", *(f"c{i}" for i in range(columns))])
    row = ",".join(["116.4", "39.9", *([value] * columns)])
    return ("\n".join([header, *([row] * rows)]) + "\n").encode()


@pytest.mark.parametrize(
    ("name", "data", "metadata", "field", "line"),
    [
        ("wide.csv", _csv(1_598), {}, "file", None),  # 1,600 fields: PostgreSQL's columns per table
        ("wider.csv", _csv(9_998), {}, "file", None),  # 10,000 fields
        ("ints.csv", _csv(1_100), {}, "file", 1),  # 1,102 bigint values do not fit a row
        (
            "keys.geojson",
            json.dumps(
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {"code": c},
                            "geometry": {"type": "Point", "coordinates": [116, 40]},
                        }
                        for c in ("A1", secrets.token_hex(4_000))
                    ],
                }
            ).encode(),
            {"key_field": "code"},
            "key_field",
            2,
        ),
        ("long_name.csv", ("lon,lat," + "名" * 22 + "\n116,40,1\n").encode(), {}, "名" * 22, None),
        (
            "cut_names.csv",
            ("lon,lat," + "x" * 63 + "a," + "x" * 63 + "b\n116,40,1,2\n").encode(),
            {},
            "x" * 63 + "a",
            None,
        ),
    ],
    ids=["1600-columns", "10000-columns", "row-too-big", "8000-char-key", "64-byte-name", "same-after-63"],
)
def test_postgresql_limits_are_422s_before_anything_is_written(
    api: TestClient, db: Engine, name: str, data: bytes, metadata: dict, field: str, line: int | None
) -> None:
    """They were a 503 'database unavailable' with Retry-After, and the dry run said OK."""
    for dry_run in (True, False):
        r = post(api, name, data, dry_run, **metadata)
        assert "retry-after" not in r.headers
        problem(r, field, line)
    assert nothing_written(db)


def test_sqlstate_tells_an_outage_from_a_limit(db: Engine) -> None:
    """psycopg maps SQLSTATE class 54 to OperationalError: only connection failures are outages."""
    columns = ", ".join(f"c{i} int" for i in range(1_700))
    with pytest.raises(DBAPIError) as limit, db.begin() as conn:
        conn.execute(text(f"CREATE TEMP TABLE too_wide ({columns})"))
    assert limit.value.orig.sqlstate == "54011"  # type: ignore[union-attr]
    assert program_limit(limit.value) and not database_unavailable(limit.value)

    with db.connect() as victim:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(DBAPIError) as gone:
            victim.execute(text("SELECT 1"))
    assert database_unavailable(gone.value) and not program_limit(gone.value)


def _point_collection(crs: str | None = None, **properties: object) -> bytes:
    feature = {
        "type": "Feature",
        "properties": properties,
        "geometry": {"type": "Point", "coordinates": [116.4, 39.9]},
    }
    collection: dict = {"type": "FeatureCollection", "features": [feature]}
    if crs:
        collection["crs"] = {"type": "name", "properties": {"name": crs}}
    return json.dumps(collection).encode()


def test_wrong_crs_and_broken_files_are_named_over_http(api: TestClient, db: Engine) -> None:
    problem(post(api, "a.geojson", _point_collection("EPSG:999999")), "crs")
    r = api.post(
        "/layers",
        files={"file": ("a.geojson", _point_collection())},
        data={
            "metadata": json.dumps({"id": "a", "title": "A", "department": "transport"}),
            "source_crs": "EPSG:999999",
        },
    )
    problem(r, "source_crs")
    body = problem(post(api, "站点.geojson", b'{"type": "FeatureCollection", "features": [7'), "file")
    assert "站点.geojson" in body["detail"]
    assert nothing_written(db)


def test_publish_and_dry_run_report_warnings(api: TestClient) -> None:
    """Degrees declared as EPSG:3857 and an integer beyond 64 bits: published, and said so."""
    data = _point_collection("EPSG:3857", licence=2**70)
    dry = post(api, "shops.geojson", data, dry_run=True)
    assert dry.status_code == 200, dry.text
    codes = [w["code"] for w in dry.json()["warnings"]]
    assert codes == ["integers_rounded", "degrees_in_projected_crs"]
    published = post(api, "shops.geojson", data)
    assert published.status_code == 201, published.text
    assert [w["code"] for w in published.json()["warnings"]] == codes
    assert "EPSG:3857" in published.json()["warnings"][1]["detail"]
