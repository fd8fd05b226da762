"""The app's cross-origin and compression policy, in one place.

``api.app`` configures Starlette's CORS and GZip middlewares from these values, and the tile fast
path, which answers before those middlewares, puts the same headers and encoding on its answers
(``tests/test_tile_fastpath.py`` holds the two to byte-equal responses).
"""

from __future__ import annotations

# embeds and the SDK on departments' own sites read tiles and geocode across origins; keys travel in
# X-API-Key or ?key=, never cookies, so no credentials are allowed
CORS_ALLOW_ORIGINS = ("*",)
CORS_ALLOW_METHODS = ("GET", "HEAD")
CORS_ALLOW_HEADERS = ("X-API-Key", "X-GeoShare-Embed")
CORS_EXPOSE_HEADERS = ("ETag", "Retry-After")

# level 9 (the default) costs ~4x the CPU of level 4 for a few percent smaller JSON
GZIP_MINIMUM_SIZE = 2048
GZIP_LEVEL = 4
#: bodies at least this large are compressed in a worker thread, not on the event loop
GZIP_THREAD_MINIMUM_SIZE = 128 * 1024
