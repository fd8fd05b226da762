"""Batch geocoding of CSV files: the engine, jobs through the whole app, and the CLI.

Inputs are built at test time from real addresses of the small demo city, plus rows that must not
match (a door past the end of a real road, a place that does not exist, junk, blanks).
"""

from __future__ import annotations

import functools
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
import typer
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from typer.testing import CliRunner

from geocode.batchcsv import RESULT_COLUMNS, geocode_csv
from geocode.index import AddressIndex, load_index
from geoshare.api.routes.jobs import accept_csv_upload, is_csv_upload
from geoshare.cli import geocode as geocode_cli
from geoshare.jobs import geocode_job, store
from geoshare.services.coords import from_wgs84_many
from geoshare.settings import Settings
from layers.crs import wgs84_to_gcj02
from layers.errors import InvalidInput

INPUT_COLUMNS = ["编号", "名称", "注册地址", "备注"]


@pytest.fixture(scope="module")
def index(address_db: Engine) -> AddressIndex:
    with address_db.connect() as conn:
        return load_index(conn)


@pytest.fixture(scope="module")
def known(address_db: Engine) -> pd.DataFrame:
    """Real addresses (doors and buildings) with their codes and WGS84 points."""
    with address_db.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT full_address, address_code, ST_X(geom), ST_Y(geom) FROM addr.address "
                "ORDER BY md5(address_code) LIMIT 24"
            )
        ).all()
    return pd.DataFrame(rows, columns=["address", "code", "lon", "lat"])


@pytest.fixture(scope="module")
def past_the_end(address_db: Engine) -> str:
    """A door far past the last one of a road whose name is unique: found, but only as the road."""
    with address_db.connect() as conn:
        road, district, last = conn.execute(
            text(
                "SELECT a.road, a.district, max(a.door_number) FROM addr.address a "
                "WHERE a.road IN (SELECT name FROM addr.road GROUP BY name HAVING count(*) = 1) "
                "GROUP BY a.road, a.district ORDER BY a.road LIMIT 1"
            )
        ).one()
    return f"北京市{district}{road}{last + 5000}号"


@pytest.fixture(scope="module")
def table(known: pd.DataFrame, past_the_end: str) -> pd.DataFrame:
    """The input: ids with leading zeros, names with commas, quotes and a line break, some blanks."""
    addresses = [*known["address"], past_the_end, "火星市不存在路1号", "@@@###", "", known["address"][0]]
    n = len(addresses)
    return pd.DataFrame(
        {
            "编号": [f"{i:05d}" for i in range(n)],
            "名称": [f'第{i}"公司", 分部\n二楼' if i % 5 == 0 else f"单位{i}" for i in range(n)],
            "注册地址": addresses,
            "备注": ["" if i % 2 else f" 备注 {i} " for i in range(n)],
        }
    )


def _csv(frame: pd.DataFrame, encoding: str) -> bytes:
    return frame.to_csv(index=False).encode(encoding)


def _read(data: bytes) -> pd.DataFrame:
    assert data.startswith(b"\xef\xbb\xbf"), "the result is UTF-8 with a BOM"
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _run(index: AddressIndex, data: bytes, **options: object) -> tuple[bytes, bytes, object]:
    out, flagged = io.BytesIO(), io.BytesIO()
    counts = geocode_csv(index, io.BytesIO(data), out, unmatched=flagged, **options)  # type: ignore[arg-type]
    return out.getvalue(), flagged.getvalue(), counts


# -- engine --------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_result_columns_flags_and_counts(
    index: AddressIndex, table: pd.DataFrame, known: pd.DataFrame, encoding: str
) -> None:
    out, flagged, counts = _run(index, _csv(table, encoding), chunk=7)
    result = _read(out)
    assert list(result.columns) == INPUT_COLUMNS + list(RESULT_COLUMNS)
    pd.testing.assert_frame_equal(result[INPUT_COLUMNS], table)  # values and row order unchanged

    n_known = len(known)
    real = result.iloc[:n_known]
    assert (real["gs_status"] == "ok").all() and (real["gs_matched"] == "true").all()
    assert real["gs_address_code"].tolist() == known["code"].tolist()
    assert np.allclose(real["gs_lon"].astype(float), known["lon"], atol=1e-6)
    assert np.allclose(real["gs_lat"].astype(float), known["lat"], atol=1e-6)
    assert (real["gs_crs"] == "EPSG:4326").all()
    assert set(real["gs_level_code"]) <= {"door", "building"} and set(real["gs_level"]) <= {"门址", "楼栋"}
    assert (real["gs_adcode"].str.len() == 6).all() and (real["gs_towncode"].str.len() == 9).all()

    road_only, nowhere, junk, blank, repeat = (result.iloc[n_known + i] for i in range(5))
    assert road_only["gs_status"] == "partial" and road_only["gs_matched"] == "false"
    assert road_only["gs_level_code"] in ("road", "road_interpolated") and road_only["gs_lon"]
    assert road_only["gs_message"]
    assert (
        nowhere["gs_status"] == "not_found" and nowhere["gs_matched"] == "false" and nowhere["gs_lon"] == ""
    )
    assert junk["gs_status"] == blank["gs_status"] == "empty"
    assert junk["gs_message"] and junk["gs_crs"] == ""
    assert repeat[RESULT_COLUMNS[0] :].tolist() == result.iloc[0][RESULT_COLUMNS[0] :].tolist()

    statuses = result["gs_status"].value_counts()
    assert counts.as_dict() == {
        "rows": len(table),
        "matched": int(statuses.get("ok", 0)),
        "partial": int(statuses.get("partial", 0)),
        "ambiguous": int(statuses.get("ambiguous", 0)),
        "not_found": int(statuses.get("not_found", 0)),
        "empty": int(statuses.get("empty", 0)),
    }
    assert counts.matched == n_known + 1 and counts.empty == 2
    assert counts.column == "注册地址" and counts.encoding == ("gbk" if encoding == "gbk" else "utf-8")

    unmatched = _read(flagged)
    assert list(unmatched.columns) == list(result.columns)
    pd.testing.assert_frame_equal(unmatched, result[result["gs_matched"] == "false"].reset_index(drop=True))


def test_output_crs(index: AddressIndex, table: pd.DataFrame, known: pd.DataFrame) -> None:
    gcj = functools.partial(from_wgs84_many, crs="GCJ-02")
    out, _, _ = _run(index, _csv(table, "utf-8"), crs="GCJ-02", crs_fn=gcj)
    result = _read(out)
    expected = wgs84_to_gcj02(known[["lon", "lat"]].to_numpy())
    got = result.iloc[: len(known)][["gs_lon", "gs_lat"]].astype(float).to_numpy()
    assert np.allclose(got, expected, atol=1e-6)
    assert not np.allclose(got, known[["lon", "lat"]].to_numpy(), atol=1e-5)  # really shifted
    located = result["gs_lon"] != ""
    assert (result.loc[located, "gs_crs"] == "GCJ-02").all() and (result.loc[~located, "gs_crs"] == "").all()


def test_progress_is_monotonic_and_ends_at_the_row_count(index: AddressIndex, table: pd.DataFrame) -> None:
    calls: list[tuple[int, int]] = []
    _, _, counts = _run(index, _csv(table, "utf-8"), chunk=4, progress=lambda d, t: calls.append((d, t)))
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) > len(table) // 4
    assert all(t >= d for d, t in calls)
    assert calls[-1] == (counts.rows, counts.rows) == (len(table), len(table))


def test_column_detection_and_explicit_column(index: AddressIndex, table: pd.DataFrame) -> None:
    renamed = table.rename(columns={"注册地址": "Address"})
    _, _, counts = _run(index, _csv(renamed, "utf-8"))
    assert counts.column == "Address" and counts.matched > 0
    two = table.assign(地址=table["注册地址"], 注册地址="")
    _, _, counts = _run(index, _csv(two, "utf-8"), column="注册地址")
    assert counts.column == "注册地址" and counts.empty == counts.rows


def test_geocoding_a_result_again_replaces_its_columns(index: AddressIndex, table: pd.DataFrame) -> None:
    first, _, _ = _run(index, _csv(table, "utf-8"))
    second, _, _ = _run(index, first)
    assert _read(second).columns.tolist() == _read(first).columns.tolist()
    assert second == first


def test_forked_workers_write_the_same_file(index: AddressIndex, table: pd.DataFrame) -> None:
    data = _csv(pd.concat([table] * 20, ignore_index=True), "gbk")
    one, _, _ = _run(index, data, chunk=50)
    two, _, counts = _run(index, data, chunk=50, workers=2)
    assert two == one and counts.rows == len(table) * 20


def test_header_only_gives_a_header_only_result(index: AddressIndex) -> None:
    out, _, counts = _run(index, "编号,地址\n".encode())
    assert counts.rows == 0 and _read(out).columns.tolist() == ["编号", "地址", *RESULT_COLUMNS]


@pytest.mark.parametrize(
    ("data", "options", "field", "says"),
    [
        (b"", {}, "file", "empty"),
        (b"\r\n\r\n", {}, "file", "empty"),
        (b"PK\x03\x04\x14\x00\x06\x00", {}, "file", "Excel"),
        (b"id,addr\x00\x01\x02\n", {}, "file", "binary"),
        (",,\n1,2,3\n", {}, "file", "header"),
        ("编号,名称\n1,某单位\n", {}, "column", "'名称'"),
        ("编号,地址\n1,某路1号\n", {"column": "注册地址"}, "column", "'编号', '地址'"),
        ("编号,地址\n1,某路1号\n", {"encoding": "ascii"}, "encoding", "line 1"),
        ("编号,地址\n1,某路1号\n", {"encoding": "klingon"}, "encoding", "klingon"),
    ],
)
def test_bad_files_name_the_field(
    index: AddressIndex, data: str | bytes, options: dict, field: str, says: str
) -> None:
    raw = data.encode() if isinstance(data, str) else data
    out = io.BytesIO()
    with pytest.raises(InvalidInput) as caught:
        geocode_csv(index, io.BytesIO(raw), out, **options)
    assert caught.value.field == field and says in caught.value.detail
    assert out.getvalue() == b""  # nothing written before the file is known good


@pytest.mark.parametrize(
    ("data", "field", "says"),
    [
        ("编号,地址\n1,某路1号\n2,某路2号,多余\n".encode(), "file", "line 3"),
        (
            "编号,地址\n".encode() + "1,某路1号\n".encode() * 100_000 + "2,北京\n".encode("gbk"),
            "encoding",
            "utf-8",
        ),
    ],
)
def test_files_broken_past_the_sample_fail_naming_the_field(
    index: AddressIndex, data: bytes, field: str, says: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        geocode_csv(index, io.BytesIO(data), io.BytesIO())
    assert caught.value.field == field and says in caught.value.detail


def test_excel_unicode_text_export(index: AddressIndex, table: pd.DataFrame) -> None:
    """Excel's "Unicode text": UTF-16 with a byte-order mark, tab-separated."""
    out, _, counts = _run(index, table.to_csv(index=False, sep="\t").encode("utf-16"))
    assert counts.encoding == "utf-16" and counts.matched > 0
    pd.testing.assert_frame_equal(_read(out)[INPUT_COLUMNS], table)


# -- jobs through the app ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(address_db: Engine, settings: Settings) -> Iterator[TestClient]:
    from geoshare.api.app import create_app

    with TestClient(create_app(settings)) as c:
        yield c


def _wait(api: TestClient, location: str, seconds: float = 60.0) -> dict:
    deadline = time.monotonic() + seconds
    seen: list[float] = []
    while True:
        body = api.get(location).json()
        seen.append(body["progress"])
        assert 0.0 <= body["progress"] <= 1.0 and seen == sorted(seen)
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_job_end_to_end(api: TestClient, index: AddressIndex, table: pd.DataFrame) -> None:
    data = _csv(table, "gbk")
    r = api.post(
        "/jobs/geocode", files={"file": ("企业名录.csv", data, "text/csv")}, data={"column": "注册地址"}
    )
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["location"].endswith(f"/jobs/{job['id']}")
    assert job["kind"] == "geocode" and job["status"] in ("queued", "running", "done")
    assert job["params"]["filename"] == "企业名录.csv" and job["params"]["crs"] == "EPSG:4326"

    body = _wait(api, r.headers["location"])
    expected, expected_flagged, counts = _run(index, data, column="注册地址")
    assert body["status"] == "done", body
    assert body["progress"] == 1.0 and body["total"] == body["processed"] == len(table)
    assert body["counts"] == counts.as_dict()
    assert body["params"]["column"] == "注册地址" and body["params"]["encoding"] == "gbk"
    assert body["started_at"] and body["finished_at"] and body["error"] is None
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert links["result"].endswith(f"/jobs/{job['id']}/result")

    result = api.get(f"/jobs/{job['id']}/result")
    assert result.status_code == 200 and result.headers["content-type"] == "text/csv; charset=utf-8"
    assert quote("企业名录-geocoded.csv") in result.headers["content-disposition"]
    assert result.content == expected

    unmatched = api.get(links["unmatched"])
    assert unmatched.status_code == 200 and unmatched.content == expected_flagged
    assert (_read(unmatched.content)["gs_matched"] == "false").all()


def test_files_of_many_parts_round_trip(
    api: TestClient, index: AddressIndex, table: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "PART_BYTES", 1000)  # input and result stored as several parts
    data = _csv(table, "utf-8")
    r = api.post("/jobs/geocode", files={"file": ("parts.csv", data, "text/csv")})
    body = _wait(api, r.headers["location"])
    assert body["status"] == "done", body
    with api.app.state.engine.connect() as conn:  # type: ignore[attr-defined]
        parts = dict(
            conn.execute(
                text("SELECT role, count(*) FROM gs.job_file WHERE job_id = :id GROUP BY role"),
                {"id": body["id"]},
            ).all()
        )
    assert parts["input"] == -(-len(data) // 1000) and parts["result"] > 2
    expected, flagged, _ = _run(index, data)
    assert api.get(f"/jobs/{body['id']}/result").content == expected
    assert api.get(f"/jobs/{body['id']}/unmatched").content == flagged


def test_a_stopping_worker_fails_its_job(api: TestClient, table: pd.DataFrame) -> None:
    engine = api.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as conn:
        job = store.create(conn, "geocode", {"filename": "x.csv"})
        store.write_file(conn, job.id, "input", io.BytesIO(_csv(table, "utf-8")), "x.csv", "text/csv")
    stopping = threading.Event()
    stopping.set()
    geocode_job.run(engine, api.app.state, job.id, stopping)  # type: ignore[attr-defined]
    body = api.get(f"/jobs/{job.id}").json()
    assert body["status"] == "failed" and body["error"] == geocode_job.LOST


def test_geocode_batch_can_hand_csv_bodies_over(api: TestClient, table: pd.DataFrame) -> None:
    """What ``POST /geocode/batch`` does with CSV: the same job (mounted here on a test path)."""

    async def batch(request: Request) -> object:
        assert is_csv_upload(request)
        return await accept_csv_upload(request)

    api.app.add_api_route("/test-h4/batch", batch, methods=["POST"])  # type: ignore[attr-defined]
    r = api.post(
        "/test-h4/batch", content=_csv(table, "gbk"), headers={"content-type": "text/csv; charset=gbk"}
    )
    assert r.status_code == 202 and _wait(api, r.headers["location"])["status"] == "done"


def test_openapi_documents_the_upload(api: TestClient) -> None:
    spec = api.get("/api").json()
    body = spec["paths"]["/jobs/geocode"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"] and "text/csv" in body


def test_raw_csv_body_with_query_options(api: TestClient, table: pd.DataFrame) -> None:
    r = api.post(
        "/jobs/geocode",
        params={"crs": "gcj02", "filename": "list.csv"},
        content=_csv(table, "utf-8"),
        headers={"content-type": "text/csv"},
    )
    assert r.status_code == 202, r.text
    body = _wait(api, r.headers["location"])
    assert body["status"] == "done" and body["params"]["crs"] == "GCJ-02"
    result = api.get(f"/jobs/{body['id']}/result")
    assert 'filename="list-geocoded.csv"' in result.headers["content-disposition"]
    frame = _read(result.content)
    assert set(frame.loc[frame["gs_lon"] != "", "gs_crs"]) == {"GCJ-02"}


def test_a_file_broken_past_its_header_fails_the_job(api: TestClient) -> None:
    data = "编号,地址\n1,某路1号\n2,某路2号,多余\n".encode()
    r = api.post("/jobs/geocode", files={"file": ("broken.csv", data, "text/csv")})
    assert r.status_code == 202
    body = _wait(api, r.headers["location"])
    assert body["status"] == "failed" and "line 3" in body["error"] and body["finished_at"]
    late = api.get(f"/jobs/{body['id']}/result")
    assert late.status_code == 409 and "failed" in late.json()["detail"]


@pytest.mark.parametrize(
    ("kwargs", "status", "field"),
    [
        ({"files": {"file": ("e.csv", b"", "text/csv")}}, 422, "file"),
        ({"content": b"", "headers": {"content-type": "text/csv"}}, 422, "file"),
        ({"data": {"column": "地址"}, "files": {"other": ("x.csv", b"a\n1\n", "text/csv")}}, 422, "file"),
        ({"files": {"file": ("n.csv", "编号,名称\n1,甲\n".encode(), "text/csv")}}, 422, "column"),
        (
            {"files": {"file": ("c.csv", b"id,addr\n1,x\n", "text/csv")}, "data": {"column": "地址"}},
            422,
            "column",
        ),
        (
            {"files": {"file": ("c.csv", b"id,addr\n1,x\n", "text/csv")}, "params": {"crs": "EPSG:3857"}},
            400,
            "crs",
        ),
        ({"content": b'{"a": 1}', "headers": {"content-type": "application/json"}}, 415, "content-type"),
    ],
)
def test_bad_uploads_are_problems_naming_the_field(
    api: TestClient, kwargs: dict, status: int, field: str
) -> None:
    before = api.app.state.engine  # type: ignore[attr-defined]
    with before.connect() as conn:
        jobs_before = conn.execute(text("SELECT count(*) FROM gs.job")).scalar_one()
    r = api.post("/jobs/geocode", **kwargs)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["field"] == field and r.json()["detail"]
    with before.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM gs.job")).scalar_one() == jobs_before  # no job made


@pytest.mark.parametrize("path", ["/jobs/{id}", "/jobs/{id}/result", "/jobs/{id}/unmatched"])
@pytest.mark.parametrize("job_id", [str(uuid.uuid4()), "not-a-uuid", "1' OR '1'='1"])
def test_unknown_jobs_are_404(api: TestClient, path: str, job_id: str) -> None:
    r = api.get(path.replace("{id}", quote(job_id)))
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_result_of_an_unfinished_job_is_409(api: TestClient, address_db: Engine) -> None:
    with address_db.begin() as conn:
        job = store.create(conn, "geocode", {"filename": "x.csv"})
    r = api.get(f"/jobs/{job.id}/result")
    assert r.status_code == 409 and r.json()["job_status"] == "queued"
    body = api.get(f"/jobs/{job.id}").json()
    assert (
        body["status"] == "queued" and body["progress"] == 0 and [x["rel"] for x in body["links"]] == ["self"]
    )


def test_jobs_of_a_dead_worker_are_failed_at_start_up(address_db: Engine) -> None:
    with address_db.begin() as conn:
        lost = store.create(conn, "geocode", {})
        alive = store.create(conn, "geocode", {})
        store.start(conn, lost.id)
        store.start(conn, alive.id)
        conn.execute(
            text("UPDATE gs.job SET heartbeat_at = now() - interval '2 minutes' WHERE id = :id"),
            {"id": lost.id},
        )
    assert geocode_job.recover_stale(address_db) >= 1
    with address_db.connect() as conn:
        lost_now, alive_now = store.get(conn, lost.id), store.get(conn, alive.id)
    assert (
        lost_now is not None
        and lost_now.status == "failed"
        and "submit the file again" in (lost_now.error or "")
    )
    assert alive_now is not None and alive_now.status == "running"
    with address_db.begin() as conn:  # a thread waking up late cannot revive it
        assert not store.finish(conn, lost.id, 1, {}, {})
        store.fail(conn, alive.id, "test over")


# -- CLI -----------------------------------------------------------------------------------------


@pytest.fixture
def cli(address_db: Engine) -> Iterator[typer.Typer]:
    from geoshare.db.engine import get_engine
    from geoshare.settings import get_settings

    get_settings.cache_clear()  # the test database's URL is in the environment now
    get_engine.cache_clear()
    app = typer.Typer()
    app.command("geocode")(geocode_cli.geocode_cmd)
    app.command("geocode-batch")(geocode_cli.geocode_batch_cmd)
    yield app


def test_cli_geocode_batch(
    cli: typer.Typer, index: AddressIndex, table: pd.DataFrame, tmp_path: Path
) -> None:
    data = _csv(table, "gbk")
    src = tmp_path / "名录.csv"
    src.write_bytes(data)
    out = tmp_path / "out.csv"
    r = CliRunner().invoke(
        cli, ["geocode-batch", str(src), "--column", "注册地址", "-o", str(out), "--unmatched",
              str(tmp_path / "un.csv"), "--workers", "1"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    expected, flagged, counts = _run(index, data, column="注册地址")
    assert out.read_bytes() == expected and (tmp_path / "un.csv").read_bytes() == flagged
    assert f"{counts.matched:,}" in r.output and "rows/s" in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "out.csv",
        "un.csv",
        "名录.csv",
    ]  # no temp files left

    default = CliRunner().invoke(cli, ["geocode-batch", str(src), "--crs", "BD-09", "--workers", "1"])
    assert default.exit_code == 0, default.output
    assert set(_read((tmp_path / "名录-geocoded.csv").read_bytes())["gs_crs"]) == {"BD-09", ""}


def test_cli_geocode_batch_bad_column(cli: typer.Typer, table: pd.DataFrame, tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    src.write_bytes(_csv(table, "utf-8"))
    r = CliRunner().invoke(
        cli, ["geocode-batch", str(src), "--column", "地点", "-o", str(tmp_path / "o.csv")]
    )
    assert r.exit_code == 2 and "error:" in r.output and "地点" in r.output and "Traceback" not in r.output
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


def test_cli_geocode(cli: typer.Typer, known: pd.DataFrame) -> None:
    import orjson

    address, code = known["address"][0], known["code"][0]
    r = CliRunner().invoke(cli, ["geocode", address, "--json", "--limit", "2"])
    assert r.exit_code == 0, r.output
    body = orjson.loads(r.output)
    assert body["status"] == "ok" and body["candidates"][0]["address_code"] == code
    assert len(body["candidates"]) <= 2
    shown = CliRunner().invoke(cli, ["geocode", address])
    assert shown.exit_code == 0 and "→ ok" in shown.output
    blank = CliRunner().invoke(cli, ["geocode", "  "])
    assert blank.exit_code == 2 and "address" in blank.output


def test_files_of_old_jobs_are_removed_at_start_up(
    api: TestClient, address_db: Engine, table: pd.DataFrame
) -> None:
    from geoshare.jobs import geocode_job

    r = api.post("/jobs/geocode", files={"file": ("old.csv", _csv(table.head(5), "utf-8"), "text/csv")})
    job = _wait(api, r.headers["location"])
    assert job["status"] == "done"
    with address_db.begin() as conn:
        conn.execute(
            text("UPDATE gs.job SET finished_at = now() - interval '8 days' WHERE id = CAST(:id AS uuid)"),
            {"id": job["id"]},
        )
    geocode_job.recover_stale(address_db)
    gone = api.get(f"/jobs/{job['id']}/result")
    assert gone.status_code == 410 and "removed" in gone.json()["detail"]
    still = api.get(f"/jobs/{job['id']}").json()
    assert still["status"] == "done" and still["counts"] == job["counts"]


def test_a_keyed_job_belongs_to_its_department(
    api: TestClient, address_db: Engine, table: pd.DataFrame
) -> None:
    """Status and files of a job filed with a key: its department and platform admins only; anyone
    else is told the job does not exist, exactly as for an unknown id."""
    from geoshare.access.store import create_key

    with address_db.begin() as conn:
        for code in ("JOBA", "JOBB", "JOBIT"):
            conn.execute(
                text("INSERT INTO gs.department (code, name) VALUES (:c, :c) ON CONFLICT DO NOTHING"),
                {"c": code},
            )
        keys = {
            "mine": create_key(conn, "JOBA", "consumer").key,
            "other": create_key(conn, "JOBB", "consumer").key,
            "admin": create_key(conn, "JOBIT", "platform_admin").key,
        }
    data = _csv(table.head(20), "utf-8")
    r = api.post(
        "/jobs/geocode",
        files={"file": ("a.csv", data, "text/csv")},
        data={"column": "注册地址"},
        headers={"X-API-Key": keys["mine"]},
    )
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    body = _wait(api, r.headers["location"] + f"?key={keys['mine']}")
    assert body["status"] == "done"
    ghost = "00000000-0000-4000-8000-000000000000"
    for suffix in ("", "/result", "/unmatched"):
        for who in (None, "other"):
            headers = {"X-API-Key": keys[who]} if who else {}
            denied = api.get(f"/jobs/{job_id}{suffix}", headers=headers)
            unknown = api.get(f"/jobs/{ghost}{suffix}", headers=headers)
            assert denied.status_code == unknown.status_code == 404, (suffix, who)
            assert denied.json() == json.loads(unknown.text.replace(ghost, job_id))
        for who in ("mine", "admin"):
            assert api.get(f"/jobs/{job_id}{suffix}", headers={"X-API-Key": keys[who]}).status_code == 200
