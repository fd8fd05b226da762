"""OGC API Features read benchmark: GeoShare beside tipg on the same database and data.

    .venv/bin/python -m benchmarks.features [--features 1000000] [--seconds 10] [--rounds 3]

Publishes a point layer through the real publish path (once), serves it with GeoShare and with
tipg (installed in its own venv, benchmarks/.venv-tipg), drives both with wrk from a second
process at 2 and 8 connections, alternating rounds, and writes medians to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import shapely
from sqlalchemy import create_engine, text

from benchmarks.harness import (
    RESULTS,
    ROOT,
    ensure_database,
    free_port,
    machine_facts,
    median_runs,
    server,
    wrk,
)

LAYER = "bench_points"
BEIJING = (115.5, 39.5, 117.4, 41.0)
LAYER_ROW = text("SELECT table_name, feature_count, attributes FROM gs.layer WHERE id = :id")
TIPG_VENV = Path(__file__).resolve().parent / ".venv-tipg"


def make_points(n: int, seed: int = 7) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(seed)
    # Clustered like a city: most points near a few centres, the rest uniform.
    centres = rng.uniform([116.2, 39.8], [116.6, 40.1], size=(40, 2))
    k = int(n * 0.8)
    idx = rng.integers(0, len(centres), k)
    clustered = centres[idx] + rng.normal(0, 0.03, size=(k, 2))
    uniform = rng.uniform(BEIJING[:2], BEIJING[2:], size=(n - k, 2))
    xy = np.clip(np.vstack([clustered, uniform]), BEIJING[:2], BEIJING[2:])
    kinds = np.array(["餐饮", "零售", "制造", "物流", "科技", "教育", "医疗", "金融"])
    frame = pd.DataFrame(
        {
            "编号": np.arange(1, n + 1),
            "名称": [f"企业{i:07d}" for i in range(1, n + 1)],
            "类型": kinds[rng.integers(0, len(kinds), n)],
            "数值": rng.integers(0, 10_000, n),
            "金额": np.round(rng.gamma(2.0, 5000.0, n), 2),
        }
    )
    return gpd.GeoDataFrame(frame, geometry=shapely.points(xy), crs="EPSG:4326")


def ensure_layer(url: str, n: int) -> tuple[str, list[str]]:
    """Publish the benchmark layer unless a layer of that size is already there."""
    from geoshare.services.departments import ensure_department
    from layers.model import LayerMetadata
    from layers.publish import publish_frame

    eng = create_engine(url)
    with eng.connect() as conn:
        row = conn.execute(LAYER_ROW, {"id": LAYER}).first()
    if row is None or row.feature_count != n:
        t0 = time.perf_counter()
        frame = make_points(n)
        with eng.begin() as conn:
            ensure_department(conn, "bench", "基准测试")
            publish_frame(
                conn, LAYER, frame,
                LayerMetadata(
                    title="基准点图层", department="bench", sharing_class="public", key_field="编号"
                ),
                actor="benchmark",
            )
        print(f"published {n} features in {time.perf_counter() - t0:.1f}s", flush=True)
        with eng.connect() as conn:
            row = conn.execute(LAYER_ROW, {"id": LAYER}).first()
        with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'VACUUM ANALYZE layerdata."{row.table_name}"'))
    eng.dispose()
    columns = [a["column"] for a in row.attributes]
    return row.table_name, columns


def ensure_tipg() -> Path:
    python = TIPG_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TIPG_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "tipg", "uvicorn"], check=True)
    return python


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--features", type=int, default=1_000_000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database", default="geoshare_bench")
    args = ap.parse_args()

    RESULTS.mkdir(exist_ok=True)
    url = ensure_database(args.database)
    from geoshare.db import migrate

    migrate.upgrade(url)
    table, columns = ensure_layer(url, args.features)
    tipg_python = ensure_tipg()

    ours_port, tipg_port = free_port(), free_port()
    ours_env = {
        "GEOSHARE_DATABASE_URL": url,
        "GEOSHARE_POOL_SIZE": "8",
        "GEOSHARE_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "1000000000",  # measure serving, not refusing
        "GEOSHARE_RATE_LIMIT_PER_MINUTE": "1000000000",
    }
    pg_url = url.replace("postgresql+psycopg://", "postgresql://")
    tipg_env = {
        "DATABASE_URL": pg_url,
        "TIPG_DB_SCHEMAS": '["layerdata"]',
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
        "TIPG_DB_MAX_CONN_SIZE": "8",
    }
    ours_cmd = [sys.executable, "-m", "uvicorn", "geoshare.api.app:create_app", "--factory",
                "--port", str(ours_port), "--workers", str(args.workers), "--no-access-log",
                "--log-level", "warning"]
    tipg_cmd = [str(tipg_python), "-m", "uvicorn", "tipg.main:app", "--port", str(tipg_port),
                "--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]

    ours_base = f"http://127.0.0.1:{ours_port}/collections/{LAYER}/items"
    tipg_base = f"http://127.0.0.1:{tipg_port}/collections/layerdata.{table}/items"
    tipg_props = "&properties=" + ",".join(columns)
    rng = np.random.default_rng(11)
    bboxes = [
        (float(x), float(y)) for x, y in zip(rng.uniform(116.1, 116.7, 200), rng.uniform(39.7, 40.2, 200),
                                              strict=True)
    ]

    def scenario_urls(base: str, suffix: str) -> dict[str, list[str]]:
        return {
            "items_limit1000": [f"{base}?limit=1000{suffix}"],
            "bbox_limit1000": [
                f"{base}?bbox={x:.5f},{y:.5f},{x + 0.03:.5f},{y + 0.02:.5f}&limit=1000{suffix}"
                for x, y in bboxes
            ],
        }

    ours_urls = scenario_urls(ours_base, "")
    tipg_urls = scenario_urls(tipg_base, tipg_props)

    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    checks: dict[str, object] = {}
    os.chdir(ROOT)
    for rnd in range(args.rounds):
        for name, cmd, env, urls, ready in (
            ("geoshare", ours_cmd, ours_env, ours_urls, f"http://127.0.0.1:{ours_port}/readyz"),
            ("tipg", tipg_cmd, tipg_env, tipg_urls, f"http://127.0.0.1:{tipg_port}/healthz"),
        ):
            with server(cmd, env, ready):
                if rnd == 0:  # same answers, or the comparison does not count
                    for scen, lst in urls.items():
                        body = httpx.get(lst[0], timeout=60).json()
                        checks[f"{name}.{scen}.numberReturned"] = len(body["features"])
                for scen, lst in urls.items():
                    wrk(lst, 2, 2)  # warm-up
                    for conns in (2, 8):
                        r = wrk(lst, conns, args.seconds)
                        results.setdefault(f"{scen}@{conns}", {}).setdefault(name, []).append(r)
                        print(f"round {rnd + 1} {name:9s} {scen:16s} c={conns}: {r['rps']:8.1f} req/s "
                              f"p50 {r['p50_ms']:7.1f} ms p99 {r['p99_ms']:7.1f} ms", flush=True)

    summary = {
        key: {name: median_runs(runs) for name, runs in per.items()} for key, per in results.items()
    }
    for per in summary.values():
        per["ratio_rps"] = round(per["geoshare"]["rps"] / max(per["tipg"]["rps"], 1e-9), 2)
    tipg_version = subprocess.run(
        [str(tipg_python), "-c", "import tipg; print(tipg.__version__)"], capture_output=True, text=True
    ).stdout.strip()
    report = {
        "benchmark": "ogc-api-features items",
        "features": args.features,
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "workers_each": args.workers,
        "machine": machine_facts(url) | {"tipg": tipg_version},
        "checks": checks,
        "results": summary,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"features-{stamp}.json"
    out.write_text(json.dumps(report, ensure_ascii=False, indent=2))
    (RESULTS / "features-latest.json").write_text(json.dumps(report, ensure_ascii=False, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
