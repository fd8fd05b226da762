"""Opaque keyset cursors for ``next`` links.

A cursor carries the sort-key values of the last feature on a page (ending with ``fid``) and a
fingerprint of the ordering it belongs to, so deep pages cost the same as the first one and a
cursor reused with a different ``sortby`` is refused instead of silently skipping rows. It also
carries the layer version its pages come from: after a publish, a next link from the old version is
a 409 saying the layer changed, never a silent switch to the new version's rows mid-walk.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import orjson

from layers.errors import BadParameter, Conflict

_MAX_TOKEN = 8192


def ordering_fingerprint(sort_spec: str) -> str:
    return hashlib.blake2s(sort_spec.encode(), digest_size=4).hexdigest()


def encode_cursor(keys: list[Any], sort_spec: str, version: int | None = None) -> str:
    payload = orjson.dumps({"o": ordering_fingerprint(sort_spec), "k": keys, "v": version})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(token: str, sort_spec: str, n_keys: int, version: int | None = None) -> list[Any]:
    """The key values in a cursor; a tampered, truncated or foreign cursor is a 400 on ``cursor``,
    one from another version of the layer a 409."""
    bad = BadParameter("invalid or expired cursor; restart from the first page", field="cursor")
    if not token or len(token) > _MAX_TOKEN:
        raise bad
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise bad from None
    if not isinstance(payload, dict) or payload.get("o") != ordering_fingerprint(sort_spec):
        raise bad
    made_for = payload.get("v")
    if version is not None and made_for != version:
        raise Conflict(
            f"the layer changed since this cursor was made (version {made_for} is now {version}); "
            "restart from the first page",
            field="cursor",
        )
    keys = payload.get("k")
    if not isinstance(keys, list) or len(keys) != n_keys or not isinstance(keys[-1], int):
        raise bad
    for k in keys:
        if k is not None and not isinstance(k, str | int | float | bool):
            raise bad
    return keys
