"""The ASGI apps the tile and access benchmarks serve (``uvicorn benchmarks.bare_app:<name>``).

* ``bare``: a raw ASGI app answering every request with the same 20 KB body: the ceiling of HTTP
  serving alone (uvicorn, the same workers, the same load generator), with no framework at all.
  ``BARE_BODY_BYTES`` sets another size (the tile benchmark also serves the cached tiles' mean
  size, to show what the bytes alone cost).
* ``fastapi_floor`` (``--factory``): the same body from one async FastAPI route, no middleware: the
  framework's own cost, the most a cache hit served inside FastAPI could reach.
"""

from __future__ import annotations

import os
from typing import Any

SIZE = int(os.environ.get("BARE_BODY_BYTES", "20480"))
BODY = (bytes(range(256)) * (SIZE // 256 + 1))[:SIZE]  # 20,480 bytes unless told
_HEADERS = [
    (b"content-type", b"application/vnd.mapbox-vector-tile"),
    (b"content-length", str(SIZE).encode("latin-1")),
]


async def bare(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def fastapi_floor() -> Any:
    """The same 20 KB body from one ``async`` FastAPI route: what the framework alone costs."""
    from fastapi import FastAPI
    from starlette.responses import Response

    app = FastAPI()

    @app.get("/t/{n}")
    async def body(n: int) -> Response:
        return Response(BODY, media_type="application/vnd.mapbox-vector-tile")

    return app
