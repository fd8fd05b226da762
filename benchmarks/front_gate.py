"""What the front cache's gate costs: cached tiles through nginx with the gate against the same
nginx configuration without it (``python -m benchmarks.front_gate [--seconds 8 --rounds 3]``).

The gate (``geoshare.front.gate``) makes nginx ``stat`` one file per tile request before it answers
from its cache, so a reclassified or deleted layer's kept copies are unreachable at once. The peer
is the configuration before the gate: the same file, with the check replaced by an open gate. Both
fronts sit before one app, hold the same 1,000 versioned tiles of a 20,000-point public layer in
their caches, and are driven by wrk in turn (8 and 2 connections, uncompressed and gzip), rounds
alternating which goes first. Results: ``benchmarks/results/front-gate-*.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import httpx
import morecantile
from shapely.geometry import Point
from sqlalchemy import create_engine, text

from benchmarks.harness import RESULTS, ROOT, ensure_database, free_port, machine_facts, server, wrk
from geoshare.db import migrate
from geoshare.front import nginx
from layers.model import LayerMetadata
from layers.publish import publish_frame

LAYER = "bench_gate"
CENTRE = (116.40, 39.91)


def publish(url: str) -> None:
    rng = random.Random(7)
    points = [Point(CENTRE[0] + rng.gauss(0, 0.05), CENTRE[1] + rng.gauss(0, 0.04)) for _ in range(20_000)]
    frame = gpd.GeoDataFrame({"名称": [f"点{i}" for i in range(len(points))]}, geometry=points, crs=4326)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO gs.department (code, name) VALUES ('bench', '基准') ON CONFLICT DO NOTHING")
        )
        meta = LayerMetadata(title="gate", department="bench", sharing_class="public")
        publish_frame(conn, LAYER, frame, meta)
    engine.dispose()


def tile_urls(base: str, version: int, count: int) -> list[str]:
    tms = morecantile.tms.get("WebMercatorQuad")
    urls: list[str] = []
    for z in (14, 15, 16):
        for t in tms.tiles(CENTRE[0] - 0.03, CENTRE[1] - 0.02, CENTRE[0] + 0.03, CENTRE[1] + 0.02, [z]):
            urls.append(f"{base}/collections/{LAYER}/tiles/WebMercatorQuad/{z}/{t.y}/{t.x}?v={version}")
    return urls[:count]


def ungated(conf: str) -> str:
    """The configuration without the gate: every kept copy answered, as before issue 15.1."""
    start = conf.index("        set $gs_gated 1;")
    end = conf.index("}", conf.index("if (-f", start)) + 1
    return conf[:start] + '        set $gs_gated "";' + conf[end:]


def start_front(root: Path, upstream: str, gated: bool) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    cfg = nginx.FrontConfig("127.0.0.1", port, upstream, root, workers=1, anonymous_per_minute=0)
    nginx.write(cfg)
    if not gated:
        cfg.conf_path.write_text(ungated(cfg.conf_path.read_text()))
    binary = nginx.nginx_binary()
    assert binary, "nginx is not installed"
    nginx.check(cfg, binary)
    proc = subprocess.Popen([binary, "-p", str(root), "-c", str(cfg.conf_path), "-g", "daemon off;"])
    time.sleep(0.5)
    return proc, port


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    url = ensure_database("geoshare_bench_gate")
    migrate.upgrade(url)
    publish(url)
    work = Path(tempfile.mkdtemp(prefix="gs-gate-"))
    gate_dir = work / "gated" / nginx.GATE_DIR
    api_port = free_port()
    env = {"GEOSHARE_DATABASE_URL": url, "GEOSHARE_FRONT_GATE": str(gate_dir), "GEOSHARE_AUDIT_ENABLED": "0"}
    cmd = [sys.executable, "-m", "uvicorn", "geoshare.api.app:create_app", "--factory", "--workers", "1",
           "--port", str(api_port), "--log-level", "warning", "--no-access-log"]  # fmt: skip
    results: dict[str, list[dict[str, float]]] = {}
    load: list[float] = []
    with server(cmd, {**env, "PYTHONPATH": str(ROOT)}, f"http://127.0.0.1:{api_port}/healthz"):
        fronts = {name: start_front(work / name, f"127.0.0.1:{api_port}", name == "gated") for name in
                  ("gated", "ungated")}  # fmt: skip
        try:
            engine = create_engine(url)
            with engine.connect() as conn:
                version = conn.execute(
                    text("SELECT current_version FROM gs.layer WHERE id = :l"), {"l": LAYER}
                ).scalar_one()
            engine.dispose()
            urls = {n: tile_urls(f"http://127.0.0.1:{p}", version, 1000) for n, (_, p) in fronts.items()}
            for name, listed in urls.items():  # fill both caches, then check that they answer by themselves
                for u in listed:
                    for encoding in ("identity", "gzip"):
                        httpx.get(u, headers={"Accept-Encoding": encoding})
                hit = httpx.get(listed[0], headers={"Accept-Encoding": "identity"}).headers.get("x-cache")
                assert hit == "HIT", f"{name} front does not answer from its cache: {hit}"
            for rnd in range(args.rounds):
                order = ["gated", "ungated"] if rnd % 2 == 0 else ["ungated", "gated"]
                for conns in (8, 2):
                    for encoding in ("identity", "gzip"):
                        for name in order:
                            r = wrk(urls[name], conns, args.seconds, headers={"Accept-Encoding": encoding})
                            results.setdefault(f"{name} c={conns} {encoding}", []).append(r)
                            load.append(os.getloadavg()[0])
        finally:
            for proc, _ in fronts.values():
                proc.terminate()
                proc.wait(10)
    summary: dict[str, dict[str, float]] = {}
    for label, runs in results.items():
        summary[label] = {
            "rps": round(statistics.median(r["rps"] for r in runs), 1),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 3),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 3),
            "errors": sum(r["errors"] + r["non2xx"] for r in runs),
        }
    ratios = {
        label.removeprefix("gated "): round(summary[label]["rps"] / summary["un" + label]["rps"], 3)
        for label in summary
        if label.startswith("gated ")
    }
    out = {
        "benchmark": "front_gate",
        "machine": machine_facts(url),
        "nginx": subprocess.run(
            [nginx.nginx_binary() or "nginx", "-v"], capture_output=True, text=True, check=False
        ).stderr.strip(),
        "method": f"{args.rounds} alternating rounds of {args.seconds} s a cell, 1,000 cached tiles, wrk",
        "loadavg_1m": {"min": min(load), "median": statistics.median(load), "max": max(load)},
        "results": summary,
        "gated_over_ungated_rps": ratios,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"front-gate-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2, ensure_ascii=False))
    print(json.dumps(out["gated_over_ungated_rps"], indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
