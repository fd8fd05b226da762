"""Waiting for what the app learns asynchronously (a NOTIFY from another client of the database)."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient


def status_within(
    client: TestClient, path: str, headers: dict[str, str], wanted: int, seconds: float = 5.0
) -> int:
    """The status ``path`` answers once it answers ``wanted``, or the last one after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        status = client.get(path, headers=headers).status_code
        if status == wanted or time.monotonic() > deadline:
            return status
        time.sleep(0.02)
