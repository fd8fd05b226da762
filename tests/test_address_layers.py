"""Layers built from address-bearing records: ``POST /layers`` with ``address_column`` and the CLI."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geoshare.services.departments import ensure_department

JUNK = ["琉璃星光大道8号", "", "hello"]


@pytest.fixture
def records(address_db: Engine, tmp_path: Path) -> tuple[Path, list[str]]:
    with address_db.connect() as conn:
        full = conn.execute(
            text("SELECT full_address FROM addr.address WHERE level = 'door' ORDER BY address_code LIMIT 30")
        ).scalars().all()  # fmt: skip
    rows = [(f"店{i}", a) for i, a in enumerate(full)] + [(f"无{i}", a) for i, a in enumerate(JUNK)]
    path = tmp_path / "shops.csv"
    with path.open("w", encoding="gbk", newline="") as fh:  # departments' exports are often GBK
        w = csv.writer(fh)
        w.writerow(["名称", "注册地址"])
        w.writerows(rows)
    return path, full


def _meta(layer_id: str) -> str:
    return json.dumps({"id": layer_id, "title": "商铺", "department": "scjgj", "class": "shared"})


def test_publish_by_address_column(
    client: TestClient,
    address_db: Engine,
    records: tuple[Path, list[str]],
    key_headers: Callable[..., dict[str, str]],
) -> None:
    path, full = records
    with address_db.begin() as conn:
        ensure_department(conn, "scjgj", "市场监管局")
    client.headers.update(key_headers("scjgj"))  # a shared layer: its publisher publishes and reads
    r = client.post(
        "/layers",
        files={"file": ("shops.csv", path.read_bytes(), "text/csv")},
        data={"metadata": _meta("shops"), "address_column": "注册地址"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    geo = body["geocoding"]
    assert body["feature_count"] == geo["matched"] == len(full)
    assert geo["rows"] == len(full) + len(JUNK) and geo["unmatched"] == len(JUNK)
    items = client.get("/collections/shops/items", params={"limit": 100}).json()["features"]
    assert {f["properties"]["标准地址"] for f in items} == set(full)
    assert all(f["properties"]["匹配级别"] == "门址" for f in items)

    versions = client.get("/layers/shops/versions").json()["versions"]
    summary = versions[0]["report"]["geocoding"]
    assert "unmatched_rows" not in summary and summary["match_rate"] == pytest.approx(
        len(full) / geo["rows"], 1e-3
    )
    unmatched = client.get(summary["unmatched_href"].replace("http://testserver", ""))
    assert unmatched.status_code == 200 and unmatched.headers["content-type"].startswith("text/csv")
    listed = list(csv.DictReader(io.StringIO(unmatched.content.decode("utf-8-sig"))))
    first_junk_line = len(full) + 2  # header is line 1
    assert [int(x["line"]) for x in listed] == [first_junk_line, first_junk_line + 1, first_junk_line + 2]
    assert listed[0]["address"] == JUNK[0]


def test_wrong_address_column_publishes_nothing(
    client: TestClient,
    address_db: Engine,
    records: tuple[Path, list[str]],
    key_headers: Callable[..., dict[str, str]],
) -> None:
    path, _ = records
    with address_db.begin() as conn:
        ensure_department(conn, "scjgj", "市场监管局")
    client.headers.update(key_headers("scjgj"))
    r = client.post(
        "/layers",
        files={"file": ("shops.csv", path.read_bytes(), "text/csv")},
        data={"metadata": _meta("shops2"), "address_column": "地址"},
    )
    assert r.status_code == 422 and r.json()["field"] == "address_column"
    assert "注册地址" in r.json()["detail"]
    assert client.get("/collections/shops2").status_code == 404
    assert client.get("/layers/shops2/versions/1/unmatched").status_code == 404


def test_cli_publish_by_address_column(
    db: Engine, address_db: Engine, records: tuple[Path, list[str]]
) -> None:
    from geoshare.cli.main import app

    path, full = records
    with address_db.begin() as conn:
        ensure_department(conn, "scjgj", "市场监管局")
    args = ["layer", "publish", str(path), "--id", "shops3", "--title", "商铺", "--department", "scjgj"]
    result = CliRunner().invoke(app, [*args, "--address-column", "注册地址"])
    assert result.exit_code == 0, result.output
    assert f"{len(full)} matched" in result.output
    out = CliRunner().invoke(app, ["layer", "unmatched", "shops3", "1"])
    assert out.exit_code == 0 and JUNK[0] in out.output
