"""Errors the engine raises; the HTTP layer maps them to RFC 7807 problems."""

from __future__ import annotations


class LayerError(Exception):
    """Base class. ``field`` names the offending parameter/field, ``line`` the feature or row (1-based)."""

    status = 400

    def __init__(self, detail: str, *, field: str | None = None, line: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.line = line


class InvalidInput(LayerError):
    """The request or uploaded file is wrong (400/422)."""

    status = 422


class BadParameter(LayerError):
    """A query parameter is malformed or unsupported (400)."""

    status = 400


class NotFound(LayerError):
    status = 404


class Conflict(LayerError):
    status = 409
