"""A layer the reader may not see is refused exactly like an unknown id: the same 404 body, and the
same work on the way (issue 15.5: a hidden layer's cached row made its 404 0.5 ms faster than an
unknown id's database lookup, a timing oracle for the existence of restricted layers).

The work is observed, not timed (a timed test would fail on a busy machine): the statements each
refusal sends to the database are counted on the app's own engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from layer_factory import make_layer
from shapely.geometry import Point
from sqlalchemy import Engine, event

from geoshare.access.store import create_key
from geoshare.settings import Settings

HIDDEN, OWNER = "hid_secret", "HIDOWN"
PATHS = (
    "/collections/{id}",
    "/collections/{id}/items",
    "/collections/{id}/queryables",
    "/collections/{id}/tiles/WebMercatorQuad/12/1552/3372",
)


@pytest.fixture(scope="module")
def app_and_key(engine: Engine, settings: Settings) -> Iterator[tuple[Any, str]]:
    from geoshare.api.app import create_app

    make_layer(
        engine, HIDDEN, [(Point(116.4, 39.9), {"名称": "甲"})], [("名称", "string")],
        department=OWNER, sharing_class="restricted",
    )  # fmt: skip
    with engine.begin() as conn:
        key = create_key(conn, OWNER).key
    app = create_app(settings)
    app.tile_fast_path = False  # the route's own path; the fast path hands refusals to it
    yield app, key


def statements(app: Any, client: TestClient, path: str) -> tuple[int, dict[str, Any], list[str]]:
    sent: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", count)
    try:
        answer = client.get(path)
    finally:
        event.remove(app.state.engine, "before_cursor_execute", count)
    body = answer.json()
    return answer.status_code, body, [s for s in sent if "gs.layer" in s]


@pytest.mark.parametrize("template", PATHS)
def test_a_hidden_layer_costs_what_an_unknown_one_costs(
    app_and_key: tuple[Any, str], template: str
) -> None:
    app, key = app_and_key
    with TestClient(app) as client:
        owner = client.get(template.format(id=HIDDEN), headers={"X-API-Key": key})
        assert owner.status_code == 200  # the owner's read leaves the row in the worker's cache
        hidden = statements(app, client, template.format(id=HIDDEN))
        unknown = statements(app, client, template.format(id="hid_nonexistent"))
    assert hidden[0] == unknown[0] == 404
    assert {k: v for k, v in hidden[1].items() if k != "instance"} == {
        k: v.replace("hid_nonexistent", HIDDEN) if isinstance(v, str) else v
        for k, v in unknown[1].items()
        if k != "instance"
    }
    assert len(hidden[2]) == len(unknown[2]) == 1  # one lookup of gs.layer each
