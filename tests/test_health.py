import pytest
from fastapi.testclient import TestClient


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/readyz").json()
    assert body["status"] == "ready"


def test_unknown_path_is_problem_json(client: TestClient) -> None:
    r = client.get("/no/such/thing")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["status"] == 404


def test_a_database_outage_is_a_503_problem_not_a_500(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database restarting or refusing connections is the client's to retry (503 with
    Retry-After), not a fault of the service (500)."""
    from sqlalchemy.exc import OperationalError

    def refused(*args: object, **kwargs: object) -> None:
        raise OperationalError("connect", {}, ConnectionRefusedError("connection refused"))

    monkeypatch.setattr(client.app.state.engine, "connect", refused)
    quiet = TestClient(client.app, raise_server_exceptions=False)
    r = quiet.get("/collections/anything/items")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "5" and "database" in r.json()["detail"]
