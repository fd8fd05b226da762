"""Vector tile (MVT) benchmark: GeoShare beside tipg on the same database and data, with ceilings.

    .venv/bin/python -m benchmarks.tiles [--seconds 10 --rounds 3]    # full run, ~11 minutes
    .venv/bin/python -m benchmarks.tiles --quick                       # smoke run, ~2 minutes

Three layers published through the real publish path (1,000,000 points, 200,000 street-like lines,
300,000 building-like polygons over Beijing), a fixed list of ~2,000 distinct tiles at z10–16 that
hold data, and five things driven with the same list at 2 and 8 connections, alternating per round
(each target's figure right beside the ceiling it is divided by, so the machine's drifting load
falls on both):

* GeoShare uncached (tile cache off; storage as deployed, so the dense tiles come from each version's
  pre-rendered tile pyramid and the rest are cut per request) and tipg, 2 uvicorn workers each, wrk
  from a second process;
* GeoShare cached (one server for all rounds, every tile put in both workers' caches first), asked
  as wrk asks by default (no Accept-Encoding: every tile goes out whole) and as browsers ask
  (``Accept-Encoding: gzip``: each worker compresses a tile once and keeps it);
* a bare uvicorn app returning a fixed 20 KB body: the HTTP ceiling (and, for reference, the same
  app returning the cached tiles' mean size, and the 20 KB body from one async FastAPI route: what
  the bytes alone and the framework alone cost);
* GeoShare's tile SQL (the very statements its endpoint sends, ``numbered_statement``) and tipg's
  (captured from tipg's own code) driven directly with asyncpg: the database ceilings of the two
  designs.

Both servers are asked for the same attributes and the same feature limit (10,000), with the same MVT
buffer (tipg's ``TIPG_TILE_BUFFER`` set to GeoShare's 64), on a database with the production
database's settings (``jit=off``; GeoShare's connections also set
``max_parallel_workers_per_gather=0``, in its ceiling too); a sample of tiles from both is decoded
and compared feature by feature, and the verdict is part of the results. GeoShare runs as deployed
(auditing on), with rate limits raised so that one client address is never refused.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from sqlalchemy import Engine, create_engine, make_url, text

from benchmarks.harness import (
    RESULTS,
    ROOT,
    contention,
    ensure_database,
    free_port,
    machine_facts,
    median_runs,
    server,
    wrk,
)
from geoshare.db.engine import SESSION_SETTINGS
from geoshare.front.nginx import FrontConfig, NginxFront

TMS = "WebMercatorQuad"
GZIP = {"Accept-Encoding": "gzip"}
GZIP_ALONGSIDE = 1.6  # a cached tile's bytes with its compressed copy (MVT gzips to ~0.5-0.6)
ZOOMS = range(10, 17)
FEATURE_LIMIT = 10_000  # GeoShare's DEFAULT_FEATURE_LIMIT and tipg's TIPG_MAX_FEATURES_PER_TILE
MVT_BUFFER = 64  # GeoShare's layers.tiles.mvt.BUFFER
LAYER_SHARES = {"points": 0.4, "lines": 0.3, "polygons": 0.3}
TIPG_VENV = Path(__file__).resolve().parent / ".venv-tipg"
DEMO_DB = "geoshare"
BASEMAP_Z10_LIMIT = 500 * 1024


@dataclass(frozen=True)
class TileRef:
    kind: str
    z: int
    x: int
    y: int


def pyramid_summary(eng: Engine, layer_id: str) -> dict[str, Any] | None:
    """The layer's dense-tile pyramid as deployed (rendered after publishing; see
    ``layers.tiles.pyramid``): which tiles were pre-rendered, their size and the rendering time."""
    with eng.connect() as conn:
        sql = text("SELECT tile_pyramid FROM gs.layer WHERE id = :id")
        return conn.execute(sql, {"id": layer_id}).scalar()


# --- the tile list -----------------------------------------------------------------------------


def lonlat_to_tile(lon: np.ndarray, lat: np.ndarray, z: int) -> tuple[np.ndarray, np.ndarray]:
    """WebMercatorQuad column and row of each point at zoom ``z``."""
    n = 2**z
    x = np.floor((lon + 180.0) / 360.0 * n).astype(np.int64)
    lat_r = np.radians(lat)
    y = np.floor((1.0 - np.arcsinh(np.tan(lat_r)) / math.pi) / 2.0 * n).astype(np.int64)
    return np.clip(x, 0, n - 1), np.clip(y, 0, n - 1)


def _sample_points(eng: Engine, table: str, count: int, wanted: int = 20_000) -> np.ndarray:
    step = max(1, count // wanted)
    sql = text(
        f'SELECT ST_X(c), ST_Y(c) FROM (SELECT fid, ST_PointOnSurface(geom) AS c FROM layerdata."{table}"'
        " WHERE fid % :m = 0) s ORDER BY fid"
    )
    with eng.connect() as conn:
        return np.array(conn.execute(sql, {"m": step}).all(), dtype=float)


def build_tile_list(eng: Engine, layers: dict[str, Any], n_tiles: int, seed: int = 2024) -> list[TileRef]:
    """About ``n_tiles`` distinct tiles z10–16 holding data, chosen where the data is (a tile is
    drawn with the probability of a feature falling in it), the same for a given seed and data.

    Each (layer, zoom) group gets an equal share (a zoom with fewer tiles than its share passes the
    rest on to the deeper zooms, evenly), and the list is ordered so that every stretch of it holds the groups
    in proportion: a server that gets through only part of the list in a run still sees the mix."""
    rng = np.random.default_rng(seed)
    keyed: list[tuple[float, TileRef]] = []
    for kind, share in LAYER_SHARES.items():
        layer = layers[kind]
        pts = _sample_points(eng, layer.table, layer.count)
        quota = round(n_tiles * share)
        zooms = list(ZOOMS)
        left = quota
        for i, z in enumerate(zooms):
            want = round(left / (len(zooms) - i))
            x, y = lonlat_to_tile(pts[:, 0], pts[:, 1], z)
            cells, weights = np.unique(np.stack([x, y], axis=1), axis=0, return_counts=True)
            take = min(want, len(cells))
            left -= take
            chosen = rng.choice(len(cells), size=take, replace=False, p=weights / weights.sum())
            order = rng.permutation(take)
            for rank, idx in zip(order, chosen, strict=True):
                key = (rank + rng.random()) / take
                keyed.append((key, TileRef(kind, z, int(cells[idx, 0]), int(cells[idx, 1]))))
    keyed.sort(key=lambda kv: kv[0])
    return [t for _, t in keyed]


def tile_urls_ours(
    base: str,
    layers: dict[str, Any],
    tiles: Sequence[TileRef],
    query: str = "",
    names: Sequence[str] | None = None,
    versions: dict[str, int] | None = None,
) -> list[str]:
    """GeoShare tile URLs asking for ``names`` (default: every attribute of the tile's layer); with
    ``versions`` (layer kind -> current version), the versioned URLs of the tile set documents."""
    out = []
    for t in tiles:
        layer = layers[t.kind]
        props = quote(",".join(names or layer.columns), safe=",")
        v = f"&v={versions[t.kind]}" if versions else ""
        out.append(
            f"{base}/collections/{layer.id}/tiles/{TMS}/{t.z}/{t.y}/{t.x}?properties={props}{v}{query}"
        )
    return out


def layer_versions(eng: Engine, layers: dict[str, Any]) -> dict[str, int]:
    with eng.connect() as conn:
        return {
            kind: conn.execute(
                text("SELECT current_version FROM gs.layer WHERE id = :id"), {"id": layer.id}
            ).scalar_one()
            for kind, layer in layers.items()
        }


def tile_urls_tipg(base: str, layers: dict[str, Any], tiles: Sequence[TileRef]) -> list[str]:
    out = []
    for t in tiles:
        layer = layers[t.kind]
        props = ",".join(layer.columns.values())
        # tipg's path is z/x/y, OGC's (GeoShare's) z/row/col = z/y/x
        out.append(
            f"{base}/collections/layerdata.{layer.table}/tiles/{TMS}/{t.z}/{t.x}/{t.y}?properties={props}"
        )
    return out


# --- SQL ceilings ------------------------------------------------------------------------------


def ours_statements(
    url: str, layers: dict[str, Any], tiles: Sequence[TileRef]
) -> list[tuple[str, list[Any]]]:
    """GeoShare's statement for each tile, exactly as the tile endpoint sends it on its asyncpg pool
    (``numbered_statement``: compiled once per layer shape, the tile's numbers as arguments)."""
    from layers.registry import get_layer
    from layers.tiles.mvt import TileRequest, numbered_statement

    eng = create_engine(url)
    with eng.connect() as conn:
        infos = {kind: get_layer(conn, layer.id) for kind, layer in layers.items()}
    eng.dispose()
    out = []
    for t in tiles:
        names = tuple(layers[t.kind].columns)
        tile = TileRequest(TMS, t.z, t.x, t.y, properties=names)
        out.append(numbered_statement(infos[t.kind], tile, feature_limit=FEATURE_LIMIT))
    return out


_TIPG_CAPTURE = r"""
import asyncio, json, sys
import asyncpg, morecantile
from tipg.collections import pg_get_collection_index
from tipg.database import connection_factory
from tipg.settings import DatabaseSettings

class Capture:
    def __init__(self):
        self.calls = []
    async def fetchval(self, sql, *params):
        self.calls.append([sql, list(params)])
        return b""

async def main():
    job = json.load(sys.stdin)
    conn = await asyncpg.connect(job["dsn"])
    await connection_factory(["layerdata"], "pg_temp")(conn)
    settings = DatabaseSettings(schemas=["layerdata"])
    collections = {c.id: c for c in await pg_get_collection_index(conn, settings)}
    tms = morecantile.tms.get(job["tms"])
    cap = Capture()
    for cid, z, x, y, props in job["tiles"]:
        tile = morecantile.Tile(x, y, z)
        await collections[cid].get_tile(cap, tms=tms, tile=tile, properties=props)
    await conn.close()
    json.dump(cap.calls, sys.stdout)

asyncio.run(main())
"""


def tipg_statements(
    tipg_python: Path, dsn: str, env: dict[str, str], layers: dict[str, Any], tiles: Sequence[TileRef]
) -> list[tuple[str, list[Any]]]:
    """tipg's statement for each tile, built by tipg's own ``Collection.get_tile`` (run in tipg's
    venv with tipg's settings) with the database call captured instead of made."""
    job = {
        "dsn": dsn,
        "tms": TMS,
        "tiles": [
            [f"layerdata.{layers[t.kind].table}", t.z, t.x, t.y, list(layers[t.kind].columns.values())]
            for t in tiles
        ],
    }
    out = subprocess.run(
        [str(tipg_python), "-c", _TIPG_CAPTURE],
        input=json.dumps(job),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [(sql, params) for sql, params in json.loads(out)]


def _percentiles(lat_ms: list[float]) -> dict[str, float]:
    a = np.asarray(lat_ms) if lat_ms else np.zeros(1)
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50_ms": float(p50), "p90_ms": float(p90), "p99_ms": float(p99), "mean_ms": float(a.mean())}


async def _drive_sql(
    dsn: str,
    statements: Sequence[tuple[str, list[Any]]],
    concurrency: int,
    seconds: float,
    server_settings: dict[str, str],
    start: int = 0,
) -> tuple[dict[str, float], dict[int, tuple[float, int]]]:
    import asyncpg

    pool = await asyncpg.create_pool(
        dsn, min_size=concurrency, max_size=concurrency, server_settings=server_settings
    )
    counter = iter(range(start, 10**12))
    lat_ms: list[float] = []
    per_tile: dict[int, tuple[float, int]] = {}
    errors = 0
    nbytes = 0
    t_start = time.perf_counter()
    deadline = t_start + seconds

    async def worker() -> None:
        nonlocal errors, nbytes
        async with pool.acquire() as conn:
            while time.perf_counter() < deadline:
                i = next(counter) % len(statements)
                sql, args = statements[i]
                t0 = time.perf_counter()
                try:
                    data = await conn.fetchval(sql, *args)
                except Exception:  # noqa: BLE001 — counted, as wrk counts non-2xx
                    errors += 1
                    continue
                ms = (time.perf_counter() - t0) * 1000
                lat_ms.append(ms)
                size = len(data or b"")
                nbytes += size
                per_tile[i] = (ms, size)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - t_start
    await pool.close()
    summary = {"requests": len(lat_ms), "rps": len(lat_ms) / elapsed, "errors": errors, "non2xx": 0}
    summary |= _percentiles(lat_ms) | {"bytes": nbytes}
    return summary, per_tile


def drive_sql(
    dsn: str,
    statements: Sequence[tuple[str, list[Any]]],
    concurrency: int,
    seconds: float,
    server_settings: dict[str, str],
    start: int = 0,
) -> dict[str, float]:
    """Run the statements round-robin on ``concurrency`` connections for ``seconds``."""
    return asyncio.run(_drive_sql(dsn, statements, concurrency, seconds, server_settings, start))[0]


def one_pass(
    dsn: str,
    statements: Sequence[tuple[str, list[Any]]],
    server_settings: dict[str, str],
    concurrency: int = 2,
) -> list[tuple[float, int]]:
    """Every statement once (ms, bytes), in list order: tile sizes, per-tile cost, and a warm cache."""

    async def run() -> list[tuple[float, int]]:
        import asyncpg

        pool = await asyncpg.create_pool(
            dsn, min_size=concurrency, max_size=concurrency, server_settings=server_settings
        )
        out: list[tuple[float, int]] = [(0.0, 0)] * len(statements)
        todo = iter(range(len(statements)))

        async def worker() -> None:
            async with pool.acquire() as conn:
                for i in todo:
                    t0 = time.perf_counter()
                    data = await conn.fetchval(statements[i][0], *statements[i][1])
                    out[i] = ((time.perf_counter() - t0) * 1000, len(data or b""))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        await pool.close()
        return out

    return asyncio.run(run())


# --- feature-by-feature comparison -------------------------------------------------------------


def _decode(data: bytes) -> list[dict[str, Any]]:
    import mapbox_vector_tile

    layers = mapbox_vector_tile.decode(data) if data else {}
    if len(layers) > 1:
        raise AssertionError(f"expected one MVT layer, got {list(layers)}")
    return next(iter(layers.values()))["features"] if layers else []


def _sub_grid_unit(geometry: dict[str, Any]) -> bool:
    """A shape of at most ~2 MVT grid units (area for polygons, length for lines): below what a tile
    can draw, and what GeoShare's thinning before ``ST_AsMVTGeom`` lets it drop."""
    import shapely.geometry

    g = shapely.geometry.shape(geometry)
    if g.geom_type in ("Polygon", "MultiPolygon"):
        return g.area <= 2.0
    if g.geom_type in ("LineString", "MultiLineString"):
        return g.length <= 2.0
    return False


def tile_bounds_lonlat(t: TileRef) -> tuple[float, float, float, float]:
    n = 2**t.z

    def lat(y: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * y / n))))

    return (t.x / n * 360 - 180, lat(t.y + 1), (t.x + 1) / n * 360 - 180, lat(t.y))


def compare_tiles(
    eng: Engine,
    layers: dict[str, Any],
    tiles: Sequence[TileRef],
    ours: dict[int, bytes],
    theirs: dict[int, bytes],
) -> dict[str, Any]:
    """Decode the same tiles from both servers and compare them feature by feature (by the key
    attribute 编号, stored as column a1): the same features and the same attribute values.

    GeoShare also sends features that touch only the MVT buffer around the tile (its index search
    covers the buffer, so points and lines just outside an edge are drawn across it); tipg selects
    features intersecting the tile itself. Such extras are checked against the database: each must
    lie outside the tile proper. Tiles cut at the 10,000-feature limit carry different subsets
    (tipg takes the lowest ids, GeoShare the first rows the index finds): for those, the counts and
    the values of the features both carry are compared; GeoShare may carry one or two fewer there
    (rows its limit counted that fall just outside the clip box), counted apart. So are polygons and
    lines of at most ~2 grid units (a 9 m building at z10) that tipg keeps and GeoShare's thinning
    drops."""
    tally = {
        "tiles_compared": 0,
        "identical_feature_sets": 0,
        "ours_plus_buffer_only_features": 0,
        "truncated_at_limit_both": 0,
        "count_mismatch": 0,
        "truncated_ours_short_by_clipped_rows": 0,
        "missing_in_ours": 0,
        "missing_in_ours_sub_grid_unit": 0,
        "extra_inside_tile": 0,
        "value_mismatches": 0,
        "features_compared": 0,
        "extra_buffer_features": 0,
    }
    problems: list[str] = []
    for i in sorted(ours.keys() & theirs.keys()):
        t = tiles[i]
        layer = layers[t.kind]
        to_col = layer.columns  # API name -> column
        mine = {}
        for f in _decode(ours[i]):
            props = {to_col[k]: v for k, v in f["properties"].items()}
            mine[props["a1"]] = props
        other_features = {f["properties"]["a1"]: f for f in _decode(theirs[i])}
        other = {k: f["properties"] for k, f in other_features.items()}
        tally["tiles_compared"] += 1
        common = mine.keys() & other.keys()
        tally["features_compared"] += len(common)
        bad = sum(1 for k in common if mine[k] != other[k])
        tally["value_mismatches"] += bad
        if bad:
            problems.append(f"{t}: {bad} features with different attribute values")
        if len(other) >= FEATURE_LIMIT or len(mine) >= FEATURE_LIMIT:
            tally["truncated_at_limit_both"] += int(len(other) == len(mine) == FEATURE_LIMIT)
            short = len(other) - len(mine)
            if 0 < short <= FEATURE_LIMIT // 1000:
                # GeoShare's LIMIT counts rows found in the padded lon/lat search box; the odd row there
                # falls outside the Mercator clip box and is dropped after the limit was applied
                tally["truncated_ours_short_by_clipped_rows"] += short
            elif short:
                tally["count_mismatch"] += 1
                problems.append(f"{t}: truncated tile with {len(mine)} vs {len(other)} features")
            continue
        missing = other.keys() - mine.keys()
        tiny = sum(1 for k in missing if _sub_grid_unit(other_features[k]["geometry"]))
        tally["missing_in_ours_sub_grid_unit"] += tiny
        tally["missing_in_ours"] += len(missing) - tiny
        if len(missing) > tiny:
            problems.append(f"{t}: {len(missing) - tiny} of tipg's features missing from GeoShare's tile")
        extra = sorted(mine.keys() - other.keys())
        if not extra:
            tally["identical_feature_sets"] += int(not missing)
            continue
        west, south, east, north = tile_bounds_lonlat(t)
        with eng.connect() as conn:
            inside = conn.execute(
                text(
                    f'SELECT count(*) FROM layerdata."{layer.table}" WHERE a1 = ANY(:ids)'
                    " AND ST_Intersects(geom, ST_MakeEnvelope(:w, :s, :e, :n, 4326))"
                ),
                {"ids": extra, "w": west, "s": south, "e": east, "n": north},
            ).scalar_one()
        tally["extra_inside_tile"] += inside
        tally["extra_buffer_features"] += len(extra)
        tally["ours_plus_buffer_only_features"] += int(inside == 0)
        if inside:
            problems.append(f"{t}: {inside} extra features inside the tile proper")
    same = not (tally["extra_inside_tile"] or tally["value_mismatches"] or tally["count_mismatch"])
    strict = same and not (
        tally["missing_in_ours"]
        or tally["missing_in_ours_sub_grid_unit"]
        or tally["truncated_ours_short_by_clipped_rows"]
    )
    verdict = {
        "same_features_and_attributes": strict,
        "same_except_sub_grid_unit_shapes_and_clipped_rows": same and not tally["missing_in_ours"],
    }
    return tally | verdict | {"problems": problems[:20]}


# --- servers -----------------------------------------------------------------------------------


def ensure_tipg() -> Path:
    """tipg in its own venv, with the same HTTP stack as GeoShare's (uvloop, httptools)."""
    python = TIPG_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import tipg, uvicorn, uvloop, httptools"], capture_output=True
    )
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "tipg", "uvicorn", "uvloop", "httptools"], check=True
        )
    return python


@dataclass
class Served:
    """One HTTP server configuration of the benchmark."""

    name: str
    cmd: list[str]
    env: dict[str, str]
    ready: str
    urls: list[str]
    headers: dict[str, str] = field(default_factory=dict)  # sent by wrk with every request
    shares: str | None = None  # the name of the server whose process this one reuses


def uvicorn_cmd(python: str, target: str, port: int, workers: int, factory: bool = False) -> list[str]:
    cmd = [python, "-m", "uvicorn", target, "--port", str(port), "--workers", str(workers)]
    cmd += ["--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return cmd + (["--factory"] if factory else [])


#: one client address sends everything: rate limits so high they never refuse (their code still runs)
NO_LIMITS = {
    "GEOSHARE_RATE_LIMIT_ANONYMOUS_PER_MINUTE": str(10**9),
    "GEOSHARE_RATE_LIMIT_PER_MINUTE": str(10**9),
}


def geoshare_env(url: str, cache: bool, cache_mb: int = 256) -> dict[str, str]:
    """GeoShare as deployed (auditing as configured by default), minus refusals from the rate limiter;
    the tile cache off (a zero budget) or given ``cache_mb`` per worker."""
    return {
        "GEOSHARE_DATABASE_URL": url,
        "GEOSHARE_POOL_SIZE": "8",
        "GEOSHARE_TILE_CACHE_BYTES": str(cache_mb * 1024**2 if cache else 0),
        "GEOSHARE_TILE_FEATURE_LIMIT": str(FEATURE_LIMIT),
        **NO_LIMITS,
    }


def tipg_env(url: str) -> dict[str, str]:
    return {
        "DATABASE_URL": url.replace("postgresql+psycopg://", "postgresql://"),
        "TIPG_DB_SCHEMAS": '["layerdata"]',
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
        "TIPG_MAX_FEATURES_PER_TILE": str(FEATURE_LIMIT),
        "TIPG_TILE_BUFFER": str(MVT_BUFFER),
        "TIPG_DB_MAX_CONN_SIZE": "8",
    }


def warm_cache(
    urls: list[str], passes: int = 6, threads: int = 8, variants: Sequence[dict[str, str]] = ({},)
) -> dict[str, Any]:
    """Put every tile of the list in every worker's cache before a cached run is measured.

    Each request comes on a new connection, which the kernel hands to whichever worker accepts it,
    so after ``passes`` shuffled passes a tile is missing from a worker with odds of about
    1 in 2**passes; wrk then serves the list with each of the header ``variants`` (e.g. gzip, whose
    compressed copies a worker makes once) until throughput stops rising (the rest fills in)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    local = threading.local()

    def get(u: str) -> int:
        if not hasattr(local, "client"):  # one client per thread: httpx clients are not shared safely
            local.client = httpx.Client(timeout=120, headers={"Connection": "close"})
        return local.client.get(u).status_code

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(passes):
            statuses = list(pool.map(get, [urls[i] for i in rng.permutation(len(urls))]))
            if any(st != 200 for st in statuses):
                raise RuntimeError(f"warming the cache: statuses {sorted(set(statuses))}")
    steady: list[list[float]] = []
    for headers in variants:
        runs: list[float] = []
        for _ in range(6):
            runs.append(round(wrk(urls, 8, 4, headers=headers)["rps"], 1))
            if len(runs) >= 2 and runs[-1] < runs[-2] * 1.05:
                break
        steady.append(runs)
    return {"fresh_connection_passes": passes, "seconds": round(time.perf_counter() - t0), "then_rps": steady}


def fetch_sample(urls: list[str], indices: Sequence[int]) -> dict[int, bytes]:
    out = {}
    with httpx.Client(timeout=120) as client:
        for i in indices:
            r = client.get(urls[i])
            r.raise_for_status()
            out[i] = r.content
    return out


# --- base map ----------------------------------------------------------------------------------


def basemap_z10(demo_url: str) -> dict[str, Any]:
    """Sizes of the base map's z10 tiles over the demo city, if the base map endpoint exists.

    Served in-process against the demo database through a read-only engine (any write fails), with
    no lifespan (no start-up jobs), so the demo database is only read."""
    from fastapi.testclient import TestClient

    from geoshare.api.app import create_app
    from geoshare.settings import Settings

    app = create_app(Settings(database_url=demo_url, pool_size=2))
    paths = app.openapi()["paths"]  # routers are nested: the schema lists every path
    if "/basemap/tiles/{tms_id}/{tile_matrix}/{tile_row}/{tile_col}" not in paths:
        app.state.engine.dispose()
        return {"available": False, "note": "no /basemap/tiles/{tms}/{z}/{y}/{x} route in the app yet"}
    app.state.engine.dispose()
    app.state.engine = create_engine(
        demo_url, connect_args={"options": "-c jit=off -c default_transaction_read_only=on"}
    )
    with app.state.engine.connect() as conn:
        w, s, e, n = conn.execute(
            text(
                "SELECT ST_XMin(g), ST_YMin(g), ST_XMax(g), ST_YMax(g) FROM (SELECT ST_Extent(geom) g"
                " FROM addr.division WHERE level = 1) q"
            )
        ).one()
    x0, y1 = lonlat_to_tile(np.array([w]), np.array([s]), 10)
    x1, y0 = lonlat_to_tile(np.array([e]), np.array([n]), 10)
    sizes = {}
    client = TestClient(app)
    # the demo database may predate the usage tables the rate limiter reads: it then logs and goes on
    logging.getLogger("geoshare.audit").setLevel(logging.CRITICAL)
    for x in range(int(x0[0]), int(x1[0]) + 1):
        for y in range(int(y0[0]), int(y1[0]) + 1):
            r = client.get(f"/basemap/tiles/{TMS}/10/{y}/{x}")
            if r.status_code == 200:
                sizes[f"10/{y}/{x}"] = len(r.content)
    app.state.engine.dispose()
    values = sorted(sizes.values())
    return {
        "available": True,
        "tiles": len(values),
        "max_bytes": max(values, default=0),
        "median_bytes": statistics.median(values) if values else 0,
        "non_empty": sum(v > 0 for v in values),
        "over_500KB": sum(v > BASEMAP_Z10_LIMIT for v in values),
        "meets_target": bool(values) and max(values) <= BASEMAP_Z10_LIMIT,
        "sizes": sizes,
    }


def audit_state(url: str) -> dict[str, Any]:
    """Whether the app installs an audit middleware, and whether auditing is switched on."""
    from geoshare.api.app import create_app
    from geoshare.settings import Settings

    app = create_app(Settings(database_url=url, pool_size=1))
    names = [getattr(m.cls, "__name__", str(m.cls)) for m in app.user_middleware]
    if getattr(app, "tile_fast_path", False):
        names.insert(0, "TileFastPath (in front of the whole stack; audits tiles itself)")
    app.state.engine.dispose()
    state: dict[str, Any] = {
        "middleware": names,
        "audit_middleware": any("audit" in n.lower() for n in names),
    }
    try:
        from geoshare.access.audit import AuditConfig

        state["audit_enabled_setting"] = AuditConfig.from_settings(app.state.settings).enabled
    except ImportError:
        state["audit_enabled_setting"] = None
    state["auditing_on"] = bool(state["audit_middleware"] and state["audit_enabled_setting"])
    return state


# --- run ---------------------------------------------------------------------------------------


def versions(tipg_python: Path) -> dict[str, str]:
    import importlib.metadata as md

    ours = {
        f"{p} (geoshare venv)": md.version(p)
        for p in ("fastapi", "uvicorn", "sqlalchemy", "psycopg", "asyncpg")
    }
    code = (
        "import importlib.metadata as md, json;"
        "print(json.dumps({p: md.version(p) for p in ('tipg', 'fastapi', 'uvicorn', 'asyncpg')}))"
    )
    theirs = json.loads(subprocess.run([str(tipg_python), "-c", code], capture_output=True, text=True).stdout)
    return ours | {f"{k} (tipg venv)": v for k, v in theirs.items()}


def pg_settings(eng: Engine) -> dict[str, str]:
    names = ("jit", "max_parallel_workers_per_gather", "shared_buffers", "work_mem", "plan_cache_mode")
    with eng.connect() as conn:
        return {n: conn.execute(text(f"SHOW {n}")).scalar_one() for n in names}


def prewarm(eng: Engine, layers: dict[str, Any]) -> None:
    """Read each table and index once, so the first server measured does not pay for a cold cache."""
    with eng.connect() as conn:
        for layer in layers.values():
            conn.execute(text(f'SELECT count(*), sum(length(a2)) FROM layerdata."{layer.table}"'))
            conn.execute(
                text(
                    f'SELECT count(*) FROM layerdata."{layer.table}"'
                    " WHERE geom && ST_MakeEnvelope(115, 39, 118, 42, 4326)"
                )
            )


def settings_like_template(url: str) -> list[str]:
    """Give the benchmark database the per-database settings of ``geoshare_template`` (and so of the
    production database: ``jit=off``), which CREATE DATABASE ... TEMPLATE does not copy. Both
    servers then run on the same configuration; GeoShare's engine sets jit=off itself anyway."""
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        config = conn.execute(
            text(
                "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase"
                " WHERE d.datname = 'geoshare_template' AND s.setrole = 0"
            )
        ).scalar()
        for item in config or []:
            key, _, value = item.partition("=")
            if re.fullmatch(r"[a-z_]+", key) and re.fullmatch(r"[A-Za-z0-9_.]+", value):
                conn.execute(text(f"ALTER DATABASE \"{name}\" SET {key} = '{value}'"))
    admin.dispose()
    return list(config or [])


def per_zoom(tiles: Sequence[TileRef], costs: Sequence[tuple[float, int]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for kind in LAYER_SHARES:
        for z in ZOOMS:
            sel = [c for t, c in zip(tiles, costs, strict=True) if t.kind == kind and t.z == z]
            if sel:
                out[f"{kind}@z{z}"] = {
                    "tiles": len(sel),
                    "median_ms": round(statistics.median(c[0] for c in sel), 2),
                    "median_kb": round(statistics.median(c[1] for c in sel) / 1024, 1),
                    "max_kb": round(max(c[1] for c in sel) / 1024, 1),
                }
    return out


def explain_slowest(dsn: str, statement: tuple[str, list[Any]], settings: dict[str, str]) -> list[str]:
    async def run() -> list[str]:
        import asyncpg

        conn = await asyncpg.connect(dsn, server_settings=settings)
        rows = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + statement[0], *statement[1])
        await conn.close()
        return [r[0] for r in rows]

    return asyncio.run(run())


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def main() -> None:  # noqa: C901, PLR0915 — one linear script, read top to bottom
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiles", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--check", type=int, default=60, help="tiles decoded and compared between the servers")
    ap.add_argument("--database", default="geoshare_bench_tiles")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5%% of the data, 300 tiles, 1 round")
    args = ap.parse_args()
    scale, suffix = 1.0, ""
    if args.quick:
        scale, suffix = 0.05, "_quick"
        args.seconds, args.rounds, args.tiles, args.check = 4, 1, 300, 15

    from benchmarks.tiles_data import audit_log_rows, ensure_layers
    from geoshare.db import migrate

    t_begin = time.time()
    RESULTS.mkdir(exist_ok=True)
    os.chdir(ROOT)
    url = ensure_database(args.database)
    db_settings = settings_like_template(url)
    migrate.upgrade(url)
    layers = ensure_layers(url, scale, suffix)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    eng = create_engine(url)
    audit_before = audit_log_rows(eng)
    tipg_python = ensure_tipg()
    prewarm(eng, layers)

    tiles = build_tile_list(eng, layers, args.tiles)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    prefix = "tiles-quick" if args.quick else "tiles"
    list_file = RESULTS / f"{prefix}-list-{stamp}.txt"
    list_file.write_text(
        "# layer_id tileMatrixSet z y x (OGC order: zoom, row, column); the order wrk cycles through\n"
        + "".join(f"{layers[t.kind].id} {TMS} {t.z} {t.y} {t.x}\n" for t in tiles)
    )
    print(f"{len(tiles)} tiles listed in {list_file.relative_to(ROOT)}", flush=True)

    ours_settings = dict(SESSION_SETTINGS)  # what GeoShare sets on each of its connections
    ours_sql = ours_statements(url, layers, tiles)
    tipg_sql = tipg_statements(tipg_python, dsn, tipg_env(url), layers, tiles)
    print("one pass over the list with each design's SQL (sizes, per-tile cost, warm cache)", flush=True)
    ours_pass = one_pass(dsn, ours_sql, ours_settings)
    tipg_pass = one_pass(dsn, tipg_sql, {})
    working_set = sum(b for _, b in ours_pass)
    # every tile of the list must fit in each worker's cache, or LRU over a cycled list never hits:
    # whole and, for the gzip rounds, compressed (about half the size), with room to spare
    cache_mb = max(256, math.ceil(working_set * GZIP_ALONGSIDE * 1.3 / 1024**2))
    slowest = max(range(len(tiles)), key=lambda i: ours_pass[i][0])
    slowest_tipg = max(range(len(tiles)), key=lambda i: tipg_pass[i][0])

    ports = {k: free_port() for k in ("uncached", "cached", "tipg", "bare", "bare_tile", "fastapi", "front")}
    # the nginx front (``geoshare serve --front nginx``) before the cached server, with its hit log
    # ingested into the audit log by that server, as deployed
    front_cfg = FrontConfig(
        "127.0.0.1",
        ports["front"],
        f"127.0.0.1:{ports['cached']}",
        Path(tempfile.mkdtemp(prefix="geoshare-front-")),
        anonymous_per_minute=0,  # rate limits never refusing, as for the app (NO_LIMITS)
    )
    front_env = {  # the cached server keeps the front's gate, as ``geoshare serve`` has it do
        "GEOSHARE_FRONT_LOG": str(front_cfg.hit_log),
        "GEOSHARE_FRONT_PID": str(front_cfg.pid_file),
        "GEOSHARE_FRONT_GATE": str(front_cfg.gate_dir),
    }
    current = layer_versions(eng, layers)
    mean_tile_bytes = round(working_set / len(tiles))
    py = sys.executable
    gs_target = "geoshare.api.app:create_app"
    servers = {
        "geoshare_uncached": Served(
            "geoshare_uncached",
            uvicorn_cmd(py, gs_target, ports["uncached"], args.workers, factory=True),
            geoshare_env(url, cache=False),
            f"http://127.0.0.1:{ports['uncached']}/readyz",
            tile_urls_ours(f"http://127.0.0.1:{ports['uncached']}", layers, tiles),
        ),
        "tipg": Served(
            "tipg",
            uvicorn_cmd(str(tipg_python), "tipg.main:app", ports["tipg"], args.workers),
            tipg_env(url),
            f"http://127.0.0.1:{ports['tipg']}/healthz",
            tile_urls_tipg(f"http://127.0.0.1:{ports['tipg']}", layers, tiles),
        ),
        "geoshare_cached": Served(
            "geoshare_cached",
            uvicorn_cmd(py, gs_target, ports["cached"], args.workers, factory=True),
            geoshare_env(url, cache=True, cache_mb=cache_mb) | front_env,
            f"http://127.0.0.1:{ports['cached']}/readyz",
            tile_urls_ours(f"http://127.0.0.1:{ports['cached']}", layers, tiles),
        ),
        "geoshare_cached_gzip": Served(
            "geoshare_cached_gzip",
            [],
            {},
            "",
            tile_urls_ours(f"http://127.0.0.1:{ports['cached']}", layers, tiles),
            headers=GZIP,
            shares="geoshare_cached",
        ),
        "geoshare_front": Served(
            "geoshare_front",
            [],
            {},
            "",
            tile_urls_ours(f"http://127.0.0.1:{ports['front']}", layers, tiles, versions=current),
            shares="geoshare_cached",
        ),
        "geoshare_front_gzip": Served(
            "geoshare_front_gzip",
            [],
            {},
            "",
            tile_urls_ours(f"http://127.0.0.1:{ports['front']}", layers, tiles, versions=current),
            headers=GZIP,
            shares="geoshare_cached",
        ),
        "bare_uvicorn_tile_bytes": Served(
            "bare_uvicorn_tile_bytes",
            uvicorn_cmd(py, "benchmarks.bare_app:bare", ports["bare_tile"], args.workers),
            {"BARE_BODY_BYTES": str(mean_tile_bytes)},
            f"http://127.0.0.1:{ports['bare_tile']}/",
            [f"http://127.0.0.1:{ports['bare_tile']}/t/{i}" for i in range(len(tiles))],
        ),
        "bare_uvicorn_20KB": Served(
            "bare_uvicorn_20KB",
            uvicorn_cmd(py, "benchmarks.bare_app:bare", ports["bare"], args.workers),
            {},
            f"http://127.0.0.1:{ports['bare']}/",
            [f"http://127.0.0.1:{ports['bare']}/t/{i}" for i in range(len(tiles))],
        ),
        "fastapi_floor_20KB": Served(
            "fastapi_floor_20KB",
            uvicorn_cmd(
                py, "benchmarks.bare_app:fastapi_floor", ports["fastapi"], args.workers, factory=True
            ),
            {},
            f"http://127.0.0.1:{ports['fastapi']}/t/0",
            [f"http://127.0.0.1:{ports['fastapi']}/t/{i}" for i in range(len(tiles))],
        ),
    }
    sql_runs: dict[str, Callable[[int], dict[str, float]]] = {
        "sql_ceiling_geoshare": lambda c: drive_sql(dsn, ours_sql, c, args.seconds, ours_settings),
        "sql_ceiling_tipg": lambda c: drive_sql(dsn, tipg_sql, c, args.seconds, {}),
    }
    sample = sorted(set(np.linspace(0, len(tiles) - 1, args.check).astype(int).tolist()))
    samples: dict[str, dict[int, bytes]] = {}
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    warm_log: list[dict[str, Any]] = []
    load: list[float] = []

    def record(name: str, conns: int, r: dict[str, float], rnd: int) -> None:
        results.setdefault(f"c{conns}", {}).setdefault(name, []).append(r)
        load.append(os.getloadavg()[0])
        kb = r["bytes"] / max(r["requests"], 1) / 1024
        print(
            f"round {rnd + 1} {name:20s} c={conns}: {r['rps']:8.1f} req/s  p50 {r['p50_ms']:8.1f} ms"
            f"  p99 {r['p99_ms']:8.1f} ms  {kb:6.1f} KB/resp  errors {r['errors'] + r['non2xx']}",
            flush=True,
        )

    # each target's figures measured one right after the other: uncached beside its SQL ceiling, the
    # front beside bare uvicorn (the machine's load drifts over a round); the groups, not the
    # figures, take turns at going first
    groups = [
        ["geoshare_uncached", "sql_ceiling_geoshare"],
        ["tipg", "sql_ceiling_tipg"],
        ["geoshare_cached", "geoshare_cached_gzip", "fastapi_floor_20KB"],
        ["geoshare_front", "geoshare_front_gzip", "bare_uvicorn_20KB", "bare_uvicorn_tile_bytes"],
    ]
    assert sorted(n for g in groups for n in g) == sorted([*servers, *sql_runs])
    with contextlib.ExitStack() as keep:
        # the cached server stays up across rounds: its workers' caches are warmed once
        cached = servers["geoshare_cached"]
        keep.enter_context(server(cached.cmd, cached.env, cached.ready, timeout=120))
        warm_log.append(warm_cache(cached.urls, variants=({}, GZIP)))
        front = NginxFront(front_cfg)
        keep.callback(shutil.rmtree, front_cfg.root, ignore_errors=True)  # its cache and hit logs
        front.start()
        keep.callback(front.stop)
        front_urls = servers["geoshare_front"].urls
        warm_log.append({"nginx_front": warm_cache(front_urls, passes=1, variants=({}, GZIP))})
        for rnd in range(args.rounds):
            shift = rnd % len(groups)
            for name in [n for g in groups[shift:] + groups[:shift] for n in g]:
                if name in sql_runs:
                    for conns in (2, 8):
                        record(name, conns, sql_runs[name](conns), rnd)
                    continue
                s = servers[name]
                with contextlib.ExitStack() as running:
                    if name != "geoshare_cached" and s.shares is None:
                        running.enter_context(server(s.cmd, s.env, s.ready, timeout=120))
                    if rnd == 0 and name in ("geoshare_uncached", "tipg"):
                        samples[name] = fetch_sample(s.urls, sample)
                    wrk(s.urls, 2, 2, headers=s.headers)  # warm-up: connections, pools, plan caches
                    if name.startswith("geoshare_front"):  # the front must answer from its cache
                        seen = httpx.get(s.urls[0], headers=s.headers).headers.get("x-cache")
                        assert seen == "HIT", f"{name} does not answer from its cache (X-Cache: {seen})"
                    for conns in (2, 8):
                        record(name, conns, wrk(s.urls, conns, args.seconds, headers=s.headers), rnd)

    check = compare_tiles(eng, layers, tiles, samples["geoshare_uncached"], samples["tipg"])
    summary = {
        key: {
            name: median_runs(runs)
            | {
                "kb_per_response": round(
                    statistics.median(r["bytes"] / max(r["requests"], 1) for r in runs) / 1024, 1
                )
            }
            for name, runs in per.items()
        }
        for key, per in results.items()
    }
    ratios: dict[str, dict[str, float]] = {}
    targets: dict[str, dict[str, Any]] = {}
    for key, per in summary.items():
        ours, tipg = per["geoshare_uncached"], per["tipg"]
        ratios[key] = {
            "uncached_rps_ours_over_tipg": ratio(ours["rps"], tipg["rps"]),
            "uncached_rps_ours_over_own_sql_ceiling": ratio(ours["rps"], per["sql_ceiling_geoshare"]["rps"]),
            "uncached_p99_ours_over_tipg": ratio(ours["p99_ms"], tipg["p99_ms"]),
            "cached_rps_over_fastapi_floor": ratio(
                per["geoshare_cached"]["rps"], per["fastapi_floor_20KB"]["rps"]
            ),
            "cached_rps_over_bare_uvicorn": ratio(
                per["geoshare_cached"]["rps"], per["bare_uvicorn_20KB"]["rps"]
            ),
            "cached_gzip_rps_over_bare_uvicorn": ratio(
                per["geoshare_cached_gzip"]["rps"], per["bare_uvicorn_20KB"]["rps"]
            ),
            "front_rps_over_bare_uvicorn": ratio(
                per["geoshare_front"]["rps"], per["bare_uvicorn_20KB"]["rps"]
            ),
            "front_gzip_rps_over_bare_uvicorn": ratio(
                per["geoshare_front_gzip"]["rps"], per["bare_uvicorn_20KB"]["rps"]
            ),
            "front_rps_over_bare_uvicorn_tile_bytes": ratio(
                per["geoshare_front"]["rps"], per["bare_uvicorn_tile_bytes"]["rps"]
            ),
            "cached_rps_over_bare_uvicorn_tile_bytes": ratio(
                per["geoshare_cached"]["rps"], per["bare_uvicorn_tile_bytes"]["rps"]
            ),
            "bare_uvicorn_tile_bytes_over_20KB": ratio(
                per["bare_uvicorn_tile_bytes"]["rps"], per["bare_uvicorn_20KB"]["rps"]
            ),
            "tipg_rps_over_its_sql_ceiling": ratio(tipg["rps"], per["sql_ceiling_tipg"]["rps"]),
            "own_sql_ceiling_over_tipg_sql_ceiling": ratio(
                per["sql_ceiling_geoshare"]["rps"], per["sql_ceiling_tipg"]["rps"]
            ),
        }
        r = ratios[key]
        targets[key] = {
            "uncached >= 3x tipg": r["uncached_rps_ours_over_tipg"] >= 3,
            "uncached >= 80% of own SQL ceiling": r["uncached_rps_ours_over_own_sql_ceiling"] >= 0.8,
            "uncached p99 <= half of tipg's": r["uncached_p99_ours_over_tipg"] <= 0.5,
            "cached >= 70% of bare uvicorn (gzip, as browsers fetch tiles)": r[
                "cached_gzip_rps_over_bare_uvicorn"
            ]
            >= 0.7,
            "cached >= 70% of bare uvicorn (identity, no Accept-Encoding)": r["cached_rps_over_bare_uvicorn"]
            >= 0.7,
            "cached behind the nginx front >= 70% of bare uvicorn (gzip)": r[
                "front_gzip_rps_over_bare_uvicorn"
            ]
            >= 0.7,
            "cached behind the nginx front >= 70% of bare uvicorn (identity)": r[
                "front_rps_over_bare_uvicorn"
            ]
            >= 0.7,
        }
    try:
        basemap = basemap_z10(make_demo_url(url))
    except Exception as exc:  # noqa: BLE001 — the base map is someone else's work in progress
        basemap = {"available": False, "note": f"checking the base map failed: {exc!r}"}

    report = {
        "benchmark": "ogc-api-tiles vector tiles (MVT)",
        "quick": args.quick,
        "data": {
            k: {
                "layer": v.id,
                "table": f"layerdata.{v.table}",
                "features": v.count,
                "attributes": v.columns,
                "tile_pyramid": pyramid_summary(eng, v.id),
            }
            for k, v in layers.items()
        },
        "tile_list": {
            "file": str(list_file.relative_to(ROOT)),
            "tiles": len(tiles),
            "by_layer_and_zoom": {
                f"{k}@z{z}": sum(1 for t in tiles if t.kind == k and t.z == z)
                for k in LAYER_SHARES
                for z in ZOOMS
            },
            "working_set_mb": round(working_set / 1024**2, 1),
        },
        "method": {
            "seconds_per_run": args.seconds,
            "rounds": args.rounds,
            "workers_each": args.workers,
            "connections": [2, 8],
            "load_generator": "wrk, 1 thread, in its own process; the list cycled in order",
            "same_request": "all attributes of each layer (properties=...), feature limit 10,000 in both, "
            "MVT extent 4096 and buffer 64 in both (TIPG_TILE_BUFFER=64), no compression (wrk sends no "
            "Accept-Encoding)",
            "geoshare_uncached": "tile cache off (GEOSHARE_TILE_CACHE_BYTES=0); storage as deployed: tiles"
            " holding >= 1,000 features read from the version's dense-tile pyramid (rendered after"
            " publishing, see data.*.tile_pyramid), the rest cut per request",
            "geoshare_cached": f"tile cache on with {cache_mb} MB per worker (the list's working set, plus "
            f"its compressed copies, x1.3), "
            "one server kept up across rounds, every tile put in both workers' caches first (cache_warm); "
            "wrk sends no Accept-Encoding, so every tile goes out whole",
            "geoshare_cached_gzip": "the same server and list, wrk sending Accept-Encoding: gzip as browsers "
            "(and MapLibre's fetches in them) do: each worker compresses a tile once and keeps it",
            "geoshare_front": "nginx (geoshare.front.nginx, `geoshare serve --front nginx`, workers: auto) "
            "in front of the cached server, asked for the versioned tile URLs clients build from the tile "
            "set documents (v=<current version>: public, immutable, so nginx keeps them); every tile put in "
            "its cache first; what it answers itself goes to its hit log, which the cached server's workers "
            "ingest into the audit log while the runs go on",
            "geoshare_front_gzip": "the same, wrk sending Accept-Encoding: gzip",
            "bare_uvicorn_tile_bytes": f"the bare app with a {mean_tile_bytes:,}-byte body, the cached "
            "list's mean tile size: what HTTP serving of these bytes costs with no application at all",
            "cache_warm": warm_log,
            "sql_ceilings": "each design's own statements for the same tiles, asyncpg, same list order; "
            "GeoShare's are the very statements and arguments its tile endpoint sends on its asyncpg pool "
            f"(layers.tiles.mvt.numbered_statement), with its session settings {SESSION_SETTINGS}",
        },
        "auditing": audit_state(url) | {"audit_log_rows_written": audit_log_rows(eng) - audit_before},
        "rate_limits": f"on, never refusing: {NO_LIMITS}",
        "machine": machine_facts(url) | versions(tipg_python),
        "postgresql_settings": pg_settings(eng) | {"database_level": db_settings},
        "contention": contention(load),
        "check_same_features": check,
        "results": summary,
        "ratios": ratios,
        "targets_met": targets,
        "sql_one_pass_per_zoom": {"geoshare": per_zoom(tiles, ours_pass), "tipg": per_zoom(tiles, tipg_pass)},
        "slowest_tile": {
            "geoshare": {
                "tile": f"{layers[tiles[slowest].kind].id} {tiles[slowest]}",
                "ms": round(ours_pass[slowest][0], 1),
                "explain_analyze": explain_slowest(dsn, ours_sql[slowest], ours_settings),
            },
            "tipg": {
                "tile": f"layerdata.{layers[tiles[slowest_tipg].kind].table} {tiles[slowest_tipg]}",
                "ms": round(tipg_pass[slowest_tipg][0], 1),
                "explain_analyze": explain_slowest(dsn, tipg_sql[slowest_tipg], {}),
            },
        },
        "basemap_z10": basemap,
        "runtime_s": round(time.time() - t_begin),
    }
    out = RESULTS / f"{prefix}-{stamp}.json"
    body = json.dumps(report, ensure_ascii=False, indent=2, default=str)
    out.write_text(body)
    (RESULTS / f"{prefix}-latest.json").write_text(body)
    print(
        json.dumps({"ratios": ratios, "targets_met": targets, "check": check}, indent=2, ensure_ascii=False)
    )
    print(f"written to {out.relative_to(ROOT)}")
    eng.dispose()


def make_demo_url(url: str) -> str:
    return make_url(url).set(database=DEMO_DB).render_as_string(hide_password=False)


if __name__ == "__main__":
    main()
