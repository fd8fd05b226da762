"""The demo city as OGC clients' own conformance tools see it, through the nginx front as
``scripts/demo.sh`` serves it (issue 15.22):

* ``ogctests`` 0.1.15, the OGC API – Features black-box suite: every core test passes;
* schemathesis 4 over the OpenAPI document, GET operations, a bounded number of generated
  examples per operation: no 5xx and no response that contradicts the document.

Both run from ``.venv-clients`` (``scripts/setup.sh --test`` makes it: their pins are not the app's)
in a subprocess, as a user runs them.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from geoshare.front.nginx import FrontConfig, NginxFront, nginx_binary

from .conftest import _free_port

TOOLS = Path(__file__).resolve().parents[2] / ".venv-clients" / "bin"


@pytest.fixture(scope="module")
def front(service: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    if not (TOOLS / "st").exists():
        pytest.skip("no .venv-clients: run scripts/setup.sh --test")
    upstream = service.removeprefix("http://")
    nginx = NginxFront(FrontConfig("127.0.0.1", _free_port(), upstream, tmp_path_factory.mktemp("front")))
    nginx.start()
    try:
        yield f"http://127.0.0.1:{nginx.cfg.listen_port}"
    finally:
        nginx.stop()


def test_ogctests_features_core_passes_every_test(front: str, tmp_path: Path) -> None:
    # the suite is pytest, which finds this repository's configuration above .venv-clients: not ours
    alone = {**os.environ, "PYTEST_ADDOPTS": "-o addopts= -p no:cacheprovider"}
    run = subprocess.run(
        [str(TOOLS / "python"), "-m", "ogctests", "features/core", "-i", front, "-v", "True"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path, env=alone,
    )  # fmt: skip
    out = run.stdout + run.stderr
    summary = re.search(r"=+ (.*) in [\d.]+s", out)
    assert summary, out[-3000:]
    counts = dict((kind, int(n)) for n, kind in re.findall(r"(\d+) (\w+)", summary.group(1)))
    assert counts.get("passed", 0) >= 29 and not counts.get("failed") and not counts.get("error"), out[-3000:]


def test_schemathesis_finds_no_server_error_and_no_schema_violation(front: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [
            str(TOOLS / "st"), "run", f"{front}/api", "--include-method", "GET",
            "--phases", "examples,fuzzing", "--max-examples", "10", "--seed", "1",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance",
            "--request-timeout", "30", "--no-color",
        ],
        capture_output=True, text=True, timeout=900, check=False, cwd=tmp_path,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert "Tested:" in out, out[-3000:]
    assert run.returncode == 0, out[-6000:]
