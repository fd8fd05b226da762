"""``docs/clients.md`` stays true: each block it marks ``<!-- tested -->`` is run as written against
a real server (uvicorn in a thread over the test database), with the guide's placeholder host and
key replaced by that server's and a fresh key's (issue 15.21)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import _wipe
from e2e.conftest import _Server
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine

from geoshare.access.store import create_key
from geoshare.settings import Settings

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "clients.md"
HOST = "https://geoshare.example.gov.cn"
BLOCK = re.compile(r"<!-- tested -->\s*```(bash|python)\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    return BLOCK.findall(GUIDE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def served(engine: Engine, settings: Settings) -> Iterator[tuple[str, str]]:
    from geoshare.api.app import create_app

    _wipe(engine)
    shelters = [(Point(116.3 + i / 100, 39.9), {"名称": f"避难所{i}", "容量": i * 20}) for i in range(1, 13)]
    make_layer(engine, "shelters", shelters, [("名称", "string"), ("容量", "integer")], department="yjglj",
               title="应急避难场所", keywords=["避难"])  # fmt: skip
    with engine.begin() as conn:
        key = create_key(conn, "yjglj").key
    with _Server(create_app(settings)) as server:
        yield server.url, key


def test_the_guide_has_tested_blocks_for_gdal_and_owslib() -> None:
    found = blocks()
    assert sum(kind == "bash" for kind, _ in found) >= 4 and any(kind == "python" for kind, _ in found)


@pytest.mark.skipif(shutil.which("ogr2ogr") is None, reason="GDAL's command-line tools are not installed")
@pytest.mark.parametrize("number", range(len(blocks())))
def test_a_tested_block_runs_as_written(number: int, served: tuple[str, str], tmp_path: Path) -> None:
    kind, code = blocks()[number]
    url, key = served
    code = code.replace(HOST, url)
    env = {**os.environ, "GEOSHARE_KEY": key, "CPL_DEBUG": "OFF", "GDAL_HTTP_TIMEOUT": "20"}
    command = ["bash", "-euo", "pipefail", "-c", code] if kind == "bash" else [sys.executable, "-c", code]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, f"{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    if kind == "python":
        assert "8 shelters of 100 or more" in done.stdout and "应急避难场所" in done.stdout
    if "big_shelters.gpkg" in code:  # the server filtered: 容量 >= 100 is 避难所5 .. 避难所12
        info = subprocess.run(["ogrinfo", "-so", "-al", "big_shelters.gpkg"], capture_output=True, text=True,
                              cwd=tmp_path, check=True).stdout  # fmt: skip
        assert "Feature Count: 8" in info, info
