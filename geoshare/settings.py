"""Settings read once from ``GEOSHARE_*`` environment variables, with defaults for a local set-up."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import lru_cache

DEFAULT_DATABASE_URL = "postgresql+psycopg://geoshare:geoshare@127.0.0.1:5432/geoshare"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from exc


def _list(name: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def _networks(name: str) -> tuple[str, ...]:
    """Addresses or CIDR ranges, refused at start-up when one is not (a typo must not trust nobody
    silently, or everybody)."""
    found = _list(name)
    for item in found:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError as exc:
            raise ValueError(f"{name}: {item!r} is not an address or CIDR range") from exc
    return found


_PYRAMID_TMS = ("WebMercatorQuad", "CGCS2000Quad")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    pool_size: int = 8
    items_default_limit: int = 10
    items_max_limit: int = 10_000
    upload_max_bytes: int = 2 * 1024**3
    # data one HTTP upload may hold once expanded: read whole, about three times its size in memory
    upload_data_max_bytes: int = 256 * 1024**2
    versions_kept: int = 3
    public_url: str | None = None  # base URL for links when behind a proxy
    tile_cache_bytes: int = 256 * 1024**2  # per worker; 0 turns the tile cache off
    tile_feature_limit: int = 10_000  # features per layer per tile
    # bytes per layer per tile, met by thinning (``layers.tiles.thinning``): gzip-compressed and raw
    tile_budget_gzip_bytes: int = 500_000
    tile_budget_raw_bytes: int = 2_000_000
    basemap_config: str | None = None  # TOML file; default: geoshare/config/basemap.toml
    imagery_dir: str = "data/imagery"  # Cloud-Optimized GeoTIFFs of the imagery service
    tile_store_dir: str | None = None  # shared on-disk store of base map tiles (seeded or written through)
    # dense-tile pyramids rendered after each publish: tiles with at least this many features (0: off)
    tile_pyramid_min_features: int = 1_000
    tile_pyramid_max_zoom: int = 16
    tile_pyramid_tms: tuple[str, ...] = _PYRAMID_TMS
    # FastAPI's OpenTelemetry spans and metrics: off unless asked for (its per-request check that no
    # provider is configured costs ~35 µs, a tenth of a cached tile)
    telemetry: bool = False
    # the nginx front's log of what it answered itself (``front.nginx``): ingested into the audit log
    front_log: str | None = None
    front_pid: str | None = None  # nginx's pid file: told to reopen the log once it is rotated
    # the front's gate directory (``front.gate``): what nginx may still answer from its cache
    front_gate: str | None = None
    # addresses (or CIDR ranges) of proxies in front of GeoShare whose X-Forwarded-For is believed;
    # nobody else's is (a client could name any address in it)
    trusted_proxies: tuple[str, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            database_url=os.environ.get("GEOSHARE_DATABASE_URL", DEFAULT_DATABASE_URL),
            pool_size=_int("GEOSHARE_POOL_SIZE", 8),
            items_default_limit=_int("GEOSHARE_ITEMS_DEFAULT_LIMIT", 10),
            items_max_limit=_int("GEOSHARE_ITEMS_MAX_LIMIT", 10_000),
            upload_max_bytes=_int("GEOSHARE_UPLOAD_MAX_BYTES", 2 * 1024**3),
            upload_data_max_bytes=_int("GEOSHARE_UPLOAD_DATA_MAX_BYTES", 256 * 1024**2),
            versions_kept=_int("GEOSHARE_VERSIONS_KEPT", 3),
            public_url=os.environ.get("GEOSHARE_PUBLIC_URL") or None,
            tile_cache_bytes=_int("GEOSHARE_TILE_CACHE_BYTES", 256 * 1024**2),
            tile_feature_limit=_int("GEOSHARE_TILE_FEATURE_LIMIT", 10_000),
            tile_budget_gzip_bytes=_int("GEOSHARE_TILE_BUDGET_GZIP_BYTES", 500_000),
            tile_budget_raw_bytes=_int("GEOSHARE_TILE_BUDGET_RAW_BYTES", 2_000_000),
            basemap_config=os.environ.get("GEOSHARE_BASEMAP_CONFIG") or None,
            tile_store_dir=os.environ.get("GEOSHARE_TILE_STORE") or None,
            imagery_dir=os.environ.get("GEOSHARE_IMAGERY_DIR") or "data/imagery",
            tile_pyramid_min_features=_int("GEOSHARE_TILE_PYRAMID_MIN_FEATURES", 1_000),
            tile_pyramid_max_zoom=_int("GEOSHARE_TILE_PYRAMID_MAX_ZOOM", 16),
            tile_pyramid_tms=_list("GEOSHARE_TILE_PYRAMID_TMS", _PYRAMID_TMS),
            telemetry=os.environ.get("GEOSHARE_TELEMETRY", "").strip().lower() in ("1", "true", "yes", "on"),
            front_log=os.environ.get("GEOSHARE_FRONT_LOG") or None,
            front_pid=os.environ.get("GEOSHARE_FRONT_PID") or None,
            front_gate=os.environ.get("GEOSHARE_FRONT_GATE") or None,
            trusted_proxies=_networks("GEOSHARE_TRUSTED_PROXIES"),
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings.from_env()
