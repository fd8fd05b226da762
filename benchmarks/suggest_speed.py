"""Suggest (as-you-type) speed over HTTP: ``GET /suggest?q=…&near=…`` at 2 and 8 connections.

    .venv/bin/python -m benchmarks.suggest_speed [--database geoshare_bench_places] [--scale 200000]
        [--workers 2] [--seconds 8] [--rounds 3]

Loads the demo city at ``--scale`` addresses with its place names into ``--database`` when it has
no addresses yet (the 5,000,000-address database is ``--scale 5000000``, which takes a while),
starts GeoShare with N workers and drives it from a second process with wrk over 2,000 distinct
queries: the first 1–4 characters of random road, compound and place names, half of them with a
``near=`` point. Medians of the rounds, with the machine's facts, go to
benchmarks/results/suggest-speed-<timestamp>.json and suggest-speed-latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from urllib.parse import quote

import httpx
import numpy as np
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

TARGET_P50_MS = 5.0


def _prepare(url: str, scale: int) -> int:
    engine = create_engine(url)
    from geoshare.db import migrate

    migrate.upgrade(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT count(*) FROM addr.address")).scalar_one()
    if count == 0:
        from geoshare.demo.load import load_demo

        print(f"loading the demo city at {scale:,} addresses …", flush=True)
        load_demo(engine, scale, 42, publish=False)
        with engine.connect() as conn:
            count = conn.execute(text("SELECT count(*) FROM addr.address")).scalar_one()
    engine.dispose()
    return int(count)


def _queries(url: str, n: int, seed: int) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as conn:
        names = [r[0] for r in conn.execute(text(
            "(SELECT name FROM addr.road ORDER BY random() LIMIT 800) UNION ALL "
            "(SELECT name FROM addr.compound ORDER BY random() LIMIT 800) UNION ALL "
            "(SELECT name FROM addr.place ORDER BY random() LIMIT 400)"
        ))]  # fmt: skip
    engine.dispose()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        name = names[int(rng.integers(len(names)))]
        typed = name[: int(rng.integers(1, min(4, len(name)) + 1))]
        q = f"q={quote(typed)}"
        if i % 2:
            q += f"&near={116.2 + rng.random() * 0.4:.5f},{39.8 + rng.random() * 0.25:.5f}"
        out.append(q)
    return out


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--database", default="geoshare_bench_places")
    parser.add_argument("--scale", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    url = ensure_database(args.database)
    addresses = _prepare(url, args.scale)
    queries = _queries(url, 2000, 7)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    urls = [f"{base}/suggest?{q}" for q in queries]
    cmd = [sys.executable, "-m", "uvicorn", "geoshare.api.app:create_app", "--factory", "--port", str(port),
           "--workers", str(args.workers), "--no-access-log", "--log-level", "warning"]  # fmt: skip
    unlimited = {"GEOSHARE_RATE_LIMIT_ANONYMOUS_PER_MINUTE": "100000000"}
    env = {"GEOSHARE_DATABASE_URL": url, "GEOSHARE_POOL_SIZE": "4", **unlimited}
    os.chdir(ROOT)
    runs: dict[str, list[dict[str, float]]] = {"suggest@2": [], "suggest@8": []}
    with server(cmd, env, f"{base}/healthz", timeout=600):
        deadline = time.time() + 600
        while time.time() < deadline:  # every worker has built its indexes
            if all(httpx.get(u, timeout=60).status_code == 200 for u in urls[:20]):
                break
            time.sleep(1)
        wrk(urls, 2, 3)
        for _ in range(args.rounds):
            for conns in (2, 8):
                runs[f"suggest@{conns}"].append(wrk(urls, conns, args.seconds))
    results = {name: median_runs(r) for name, r in runs.items()}
    p50_8 = results["suggest@8"]["p50_ms"]
    report = {
        "benchmark": "suggest_speed",
        "database": args.database,
        "addresses": addresses,
        "workers": args.workers,
        "results": results,
        "targets": {"suggest p50 ≤ 5 ms at 8 connections": {"value": p50_8, "met": p50_8 <= TARGET_P50_MS}},
        "machine": machine_facts(url),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for name in (f"suggest-speed-{stamp}.json", "suggest-speed-latest.json"):
        (RESULTS / name).write_text(json.dumps(report, ensure_ascii=False, indent=2))
    for name, r in results.items():
        print(f"{name:10s} {r['rps']:8.1f} req/s  p50 {r['p50_ms']:.2f} ms  p99 {r['p99_ms']:.2f} ms")
    print(f"addresses: {addresses:,}; p50 at 8 connections {p50_8:.2f} ms (target ≤ {TARGET_P50_MS} ms)")


if __name__ == "__main__":
    main()
