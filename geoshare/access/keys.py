"""API keys: shown once, stored as a SHA-256 digest, recognised by a short public prefix.

A key looks like ``gsk_<prefix>_<secret>``: the prefix (8 characters) is stored in clear so
keys can be listed and revoked by it and appear in audit logs; the secret never is. Keys are
high-entropy random strings, so an unsalted fast hash is safe here (unlike passwords).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

KEY_PATTERN = re.compile(r"^gsk_([a-z0-9]{8})_([A-Za-z0-9_-]{32,64})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class NewKey:
    key: str  # the full secret, to show once
    prefix: str
    digest: str


def generate() -> NewKey:
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    key = f"gsk_{prefix}_{secrets.token_urlsafe(32)}"
    return NewKey(key=key, prefix=prefix, digest=digest(key))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_prefix(key: str) -> str | None:
    """The public prefix of a well-formed key, or None (malformed keys need no database look-up)."""
    m = KEY_PATTERN.match(key)
    return m.group(1) if m else None


def matches(key: str, stored_digest: str) -> bool:
    return hmac.compare_digest(digest(key), stored_digest)


def redact(key: str | None) -> str | None:
    """What may appear in logs: the prefix only."""
    if not key:
        return None
    prefix = parse_prefix(key)
    return f"gsk_{prefix}_…" if prefix else "malformed"
