"""HTTP publishing: 201 with id and version, problems naming the field or line, versions, changes, delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from geoshare.services.departments import ensure_department

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def api(client: TestClient, db: Engine, key_headers: Callable[..., dict[str, str]]) -> TestClient:
    """The app as a publisher of the transport bureau (every request carries its key)."""
    with db.begin() as conn:
        ensure_department(conn, "transport", "Transport Bureau")
    client.headers.update(key_headers("transport"))
    return client


def post(client: TestClient, name: str, data: bytes | None = None, **metadata: object):  # type: ignore[no-untyped-def]
    body = {"id": "stops", "title": "Bus stops", "department": "transport", "class": "public", **metadata}
    content = data if data is not None else (FIXTURES / name).read_bytes()
    return client.post("/layers", files={"file": (name, content)}, data={"metadata": json.dumps(body)})


def layer_rows(db: Engine) -> tuple[int, int]:
    with db.connect() as conn:
        layers = conn.execute(text("SELECT count(*) FROM gs.layer")).scalar_one()
        tables = conn.execute(
            text("SELECT count(*) FROM pg_tables WHERE schemaname = 'layerdata'")
        ).scalar_one()
    return layers, tables


def test_publish_versions_changes_and_delete(api: TestClient, db: Engine) -> None:
    r = post(api, "bus_stops.geojson", key_field="stop_id", keywords=["公交", "transport"])
    assert r.status_code == 201, r.text
    body = r.json()
    assert {k: body[k] for k in ("id", "version", "feature_count", "added")} == {
        "id": "stops", "version": 1, "feature_count": 4, "added": 4,
    }  # fmt: skip
    assert r.headers["location"].endswith("/collections/stops")
    assert any(link["rel"] == "changes" for link in body["links"])

    changed = json.loads((FIXTURES / "bus_stops.geojson").read_text(encoding="utf-8"))
    changed["features"] = changed["features"][1:]  # S1 removed
    changed["features"][0]["properties"]["routes"] = 99  # S2 modified
    r = post(api, "bus_stops.geojson", json.dumps(changed).encode(), key_field="stop_id")
    assert r.status_code == 201, r.text
    assert [r.json()[k] for k in ("version", "added", "removed", "modified")] == [2, 0, 1, 1]

    versions = api.get("/layers/stops/versions").json()["versions"]
    assert [(v["version"], v["feature_count"], v["current"]) for v in versions] == [
        (2, 3, True),
        (1, 4, False),
    ]
    assert all(v["created_by"].startswith("key:") for v in versions)  # who published: the key (15.14)

    feed = api.get("/layers/stops/changes", params={"since": 1}).json()
    assert feed["current_version"] == 2
    assert [(c["id"], c["change"]) for c in feed["changes"]] == [("S1", "removed"), ("S2", "modified")]
    assert feed["changes"][1]["feature"]["properties"]["routes"] == 99

    page = api.get("/layers/stops/changes", params={"since": 0, "limit": 2}).json()
    assert len(page["changes"]) == 2
    follow = next(link["href"] for link in page["links"] if link["rel"] == "next")
    rest = api.get(follow.replace("http://testserver", "")).json()
    assert [c["id"] for c in rest["changes"]] == ["S4"]

    bad = api.get("/layers/stops/changes", params={"since": 5})
    assert bad.status_code == 400 and bad.json()["field"] == "since"
    assert api.get("/layers/stops/changes", params={"since": "x"}).status_code == 400

    assert api.delete("/layers/stops").status_code == 204
    assert layer_rows(db) == (0, 0)
    for path in ("/layers/stops/versions", "/layers/stops/changes?since=0"):
        missing = api.get(path)
        assert missing.status_code == 404 and missing.headers["content-type"].startswith(
            "application/problem+json"
        )
    assert api.delete("/layers/stops").status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "options", "field", "line"),
    [
        ("hospitals_bad_lat_line7.csv", None, {}, "纬度", 7),
        ("schools_no_prj.zip", None, {}, "source_crs", None),
        ("schools_gbk_4490.zip", None, {"encoding": "utf-8"}, "encoding", None),  # Chinese field names
        ("empty.geojson", b"", {}, "file", None),
        ("truncated.zip", (FIXTURES / "parks_utf8.zip").read_bytes()[:400], {}, "file", None),
        ("bus_stops.geojson", None, {"department": "nobody"}, "metadata.department", None),  # not ours
        ("bus_stops.geojson", None, {"id": "Not OK"}, "id", None),
        ("bus_stops.geojson", None, {"class": "secret"}, "class", None),
        ("bus_stops.geojson", None, {"key_field": "name_typo"}, "key_field", None),
        ("bus_stops.geojson", None, {"colour": "red"}, "metadata.colour", None),
    ],
)
def test_bad_uploads_are_problems_and_leave_nothing(
    api: TestClient, db: Engine, name: str, data: bytes | None, options: dict, field: str, line: int | None
) -> None:
    r = post(api, name, data, **options)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    problem = r.json()
    assert problem["field"] == field and problem.get("line") == line, problem
    assert layer_rows(db) == (0, 0)


def test_repairs_are_reported_and_crs_override_form_field(api: TestClient) -> None:
    r = post(api, "bowtie.geojson", id="zones")
    assert r.status_code == 201 and r.json()["repaired"] == 1
    r = api.post(
        "/layers",
        files={"file": ("schools.zip", (FIXTURES / "schools_no_prj.zip").read_bytes())},
        data={
            "metadata": json.dumps({"id": "schools", "title": "学校", "department": "transport"}),
            "source_crs": "EPSG:4490",
        },
    )
    assert r.status_code == 201, r.text


def test_upload_size_cap(api: TestClient) -> None:
    api.app.state.settings = type(api.app.state.settings)(  # type: ignore[attr-defined]
        database_url=api.app.state.settings.database_url,
        upload_max_bytes=100,  # type: ignore[attr-defined]
    )
    r = post(api, "bus_stops.geojson")
    assert r.status_code == 413 and r.json()["field"] == "file"
