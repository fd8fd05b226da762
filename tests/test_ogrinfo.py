"""An outside client: GDAL's OGC API – Features driver against a real uvicorn server."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from layer_factory import make_layer
from shapely.geometry import Point

pytestmark = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL's ogrinfo is not installed")
N = 23


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(db: Any, database_url: str) -> Iterator[str]:
    make_layer(
        db,
        "shelters",
        [(Point(116.3 + i * 0.01, 39.9), {"名称": f"避难所{i}", "容量": i * 10}) for i in range(1, N + 1)],
        [("名称", "string"), ("容量", "integer")],
        title="应急避难场所",
    )
    port = _free_port()
    env = {**os.environ, "GEOSHARE_DATABASE_URL": database_url, "GEOSHARE_ITEMS_DEFAULT_LIMIT": "5"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "geoshare.api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("uvicorn did not start")
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _gdal(*args: str) -> str:
    env = {**os.environ, "CPL_DEBUG": "OFF", "GDAL_HTTP_TIMEOUT": "20"}
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_ogrinfo_lists_collections(server: str) -> None:
    out = _gdal("ogrinfo", "-ro", "-so", f"OAPIF:{server}")
    assert "shelters" in out


def test_ogrinfo_reads_every_feature_across_pages(server: str) -> None:
    out = _gdal("ogrinfo", "-ro", "-al", "-q", f"OAPIF:{server}", "shelters")
    assert out.count("OGRFeature(shelters)") == N  # paged at 5 per request through next links
    assert "避难所1" in out and "避难所23" in out
    assert "POINT (116.31 39.9)" in out


def test_ogr2ogr_to_geojson(server: str, tmp_path: Path) -> None:
    target = tmp_path / "shelters.geojson"
    _gdal("ogr2ogr", "-f", "GeoJSON", str(target), f"OAPIF:{server}", "shelters", "-where", '"容量" > 200')
    doc = json.loads(target.read_text(encoding="utf-8"))
    names = sorted(f["properties"]["名称"] for f in doc["features"])
    assert names == sorted(f"避难所{i}" for i in range(21, N + 1))
    assert doc["features"][0]["geometry"]["type"] == "Point"
