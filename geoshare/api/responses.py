"""JSON responses, serialised with orjson (numpy scalars, datetimes and dataclasses included)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

JSON = "application/json"


def json_response(
    doc: Any, status: int = 200, headers: dict[str, str] | None = None, media_type: str = JSON
) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=media_type, headers=headers)
