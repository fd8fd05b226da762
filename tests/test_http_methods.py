"""A method the path does not take: 405 problem+json with ``Allow`` naming every method it does take."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

PROBLEM = "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/collections", "GET"),
        ("POST", "/conformance", "GET"),
        ("PUT", "/collections/anything/items", "GET"),
        ("POST", "/collections/x/tiles/WebMercatorQuad/1/0/0", "GET, HEAD"),  # two routes
        ("PATCH", "/imagery/some-image", "DELETE, GET, PUT"),  # three routes on one path
        ("DELETE", "/admin/departments", "GET, POST"),
        ("POST", "/wmts", "GET"),
    ],
)
def test_405_says_what_is_allowed(client: TestClient, method: str, path: str, allow: str) -> None:
    r = client.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    assert r.json()["status"] == 405
    assert r.headers["allow"] == allow


def test_static_files_405_keeps_its_allow(client: TestClient) -> None:
    r = client.post("/static/js/portal.js")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"


def test_allowed_methods_are_not_refused(client: TestClient) -> None:
    assert client.get("/conformance").status_code == 200
    assert client.head("/collections/x/tiles/WebMercatorQuad/1/0/0").status_code == 404
