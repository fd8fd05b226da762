"""Does a 404 tell a hidden layer from a missing one by its time? (``python -m benchmarks.hidden_timing``)

A restricted layer of one department is asked for with another department's key, beside an id that
does not exist, on the collection, items and tile paths: requests alternate between the two ids
(so the machine's drift hits both alike), over keep-alive connections to one uvicorn worker, and
the medians and the median of the paired differences are reported. Issue 15.5 measured 0.72–0.93
ms for the hidden layer against 1.23–1.37 ms for the missing one before the fix.
Results: ``benchmarks/results/hidden-timing-*.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import geopandas as gpd
import httpx
from shapely.geometry import Point
from sqlalchemy import create_engine, text

from benchmarks.harness import RESULTS, ROOT, ensure_database, free_port, machine_facts, server
from geoshare.access.store import create_key
from geoshare.db import migrate
from layers.model import LayerMetadata
from layers.publish import publish_frame

HIDDEN, MISSING = "bench_hidden", "bench_missing"
PATHS = (
    "/collections/{id}",
    "/collections/{id}/items",
    "/collections/{id}/tiles/WebMercatorQuad/12/1552/3372",
)


def prepare(url: str) -> str:
    engine = create_engine(url)
    frame = gpd.GeoDataFrame(
        {"名称": ["甲", "乙"]}, geometry=[Point(116.4, 39.9), Point(116.5, 39.9)], crs=4326
    )
    with engine.begin() as conn:
        for code in ("owner", "other"):
            conn.execute(
                text("INSERT INTO gs.department VALUES (:c, :c) ON CONFLICT DO NOTHING"), {"c": code}
            )
        meta = LayerMetadata(title="hidden", department="owner", sharing_class="restricted")
        publish_frame(conn, HIDDEN, frame, meta)
        key = create_key(conn, "other").key
    engine.dispose()
    return key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=150, help="per id and path")
    args = parser.parse_args()
    url = ensure_database("geoshare_bench_hidden")
    migrate.upgrade(url)
    key = prepare(url)
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "geoshare.api.app:create_app", "--factory", "--workers", "1",
           "--port", str(port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    env = {
        "GEOSHARE_DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
        "GEOSHARE_RATE_LIMIT_PER_MINUTE": "10000000",
    }
    results = {}
    with (
        server(cmd, env, f"http://127.0.0.1:{port}/healthz"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key}) as client,
    ):
        for template in PATHS:
            times: dict[str, list[float]] = {HIDDEN: [], MISSING: []}
            for n in range(args.requests + 10):
                for layer in (HIDDEN, MISSING) if n % 2 else (MISSING, HIDDEN):
                    started = time.perf_counter()
                    status = client.get(template.format(id=layer)).status_code
                    took = (time.perf_counter() - started) * 1000
                    assert status == 404, (template, layer, status)
                    if n >= 10:  # warm-up: connections, caches
                        times[layer].append(took)
            diffs = [h - m for h, m in zip(times[HIDDEN], times[MISSING], strict=True)]
            results[template] = {
                "hidden_median_ms": round(statistics.median(times[HIDDEN]), 3),
                "missing_median_ms": round(statistics.median(times[MISSING]), 3),
                "median_paired_difference_ms": round(statistics.median(diffs), 3),
                "requests_each": args.requests,
            }
    out = {"benchmark": "hidden_timing", "machine": machine_facts(url), "results": results}
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"hidden-timing-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(json.dumps(results, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
