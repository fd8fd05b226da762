"""What auditing costs the hot path: ``GET /collections/{id}/items?limit=10`` with the audit
middleware absent, present with auditing off (rate limiting only), and present with auditing on.

    .venv/bin/python -m benchmarks.audit_overhead [--features 1000] [--seconds 3] [--rounds 8]

Runs on its own database (``gs_bench_h11``, created from the PostGIS template, with a small layer
published through the real publish path) because auditing writes: the demo database is left alone.
The three configurations run side by side as uvicorn servers (2 workers each); wrk, a second
process, drives them back to back in rotating order at 2 and 8 connections, anonymous and keyed
(``?key=``), so each round compares runs taken seconds apart. Reported: medians per configuration
and the median of the per-round ratios (robust to a shared machine's drifting load), plus the
in-process CPU cost of the middleware per request and of the writer per record, which no other
load can blur. Results go to ``benchmarks/results/audit-overhead-*.json`` with the machine's facts.
Rate limits are raised out of the way. The target: auditing on costs ≤ 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
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

CONFIGS = {  # name → environment of the server
    "none": {"BENCH_AUDIT_MIDDLEWARE": "0"},
    "off": {"BENCH_AUDIT_MIDDLEWARE": "1", "GEOSHARE_AUDIT_ENABLED": "0"},
    "on": {"BENCH_AUDIT_MIDDLEWARE": "1", "GEOSHARE_AUDIT_ENABLED": "1"},
}
NO_LIMITS = {
    "GEOSHARE_RATE_LIMIT_PER_MINUTE": str(10**9),
    "GEOSHARE_RATE_LIMIT_ANONYMOUS_PER_MINUTE": str(10**9),
}
BENCH_DEPARTMENT = "bench"


def create_app() -> FastAPI:
    """The app as configured by ``BENCH_AUDIT_MIDDLEWARE``: with the audit middleware (installed here
    if app.py does not yet) or without it (removed if app.py installs it)."""
    from geoshare.api.app import create_app as make
    from geoshare.api.audit_middleware import AuditMiddleware, install

    app = make()
    present = any(m.cls is AuditMiddleware for m in app.user_middleware)
    wanted = os.environ.get("BENCH_AUDIT_MIDDLEWARE", "1") == "1"
    if wanted and not present:
        install(app)
    elif present and not wanted:
        app.user_middleware = [m for m in app.user_middleware if m.cls is not AuditMiddleware]
    return app


def bench_key(url: str) -> str:
    """A fresh consumer key of the benchmark department (a keyed request costs one key probe)."""
    from geoshare.access.store import create_key

    eng = create_engine(url)
    with eng.begin() as conn:
        key = create_key(conn, BENCH_DEPARTMENT, "consumer", label="audit benchmark").key
    eng.dispose()
    return key


def audit_rows(url: str) -> int:
    eng = create_engine(url)
    with eng.connect() as conn:
        n = conn.execute(text("SELECT count(*) FROM gs.audit_log")).scalar_one()
    eng.dispose()
    return int(n)


async def _probe_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A stand-in endpoint: what any endpoint does that the middleware looks at."""
    scope.setdefault("state", {})["audit_count"] = 10
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b"x" * 3000})


def in_process(url: str, n: int = 50_000) -> dict[str, float]:
    """CPU cost of the middleware per request (auditing on and off) and of the writer per record,
    measured in one process: unlike wrk runs on a shared machine, these do not depend on the load."""
    from benchmarks.features import LAYER
    from geoshare.access.audit import write_batch
    from geoshare.api.audit_middleware import AuditMiddleware, Runtime
    from geoshare.db.engine import make_engine
    from geoshare.settings import Settings

    async def noop_send(message: Any) -> None:
        return None

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def run(app: Any, fake: Any) -> float:
        started = time.perf_counter()
        for _ in range(n):
            scope = {
                "type": "http", "path": f"/collections/{LAYER}/items", "method": "GET",
                "headers": [(b"host", b"bench"), (b"accept", b"*/*")], "query_string": b"limit=10",
                "client": ("127.0.0.1", 50000), "app": fake, "path_params": {"collection_id": LAYER},
            }  # fmt: skip
            await app(scope, receive, noop_send)
        return (time.perf_counter() - started) / n * 1e6

    out: dict[str, float] = {}
    saved = {k: os.environ.get(k) for k in ("GEOSHARE_AUDIT_ENABLED", *NO_LIMITS)}
    os.environ.update(NO_LIMITS)
    try:
        for enabled in ("0", "1"):
            os.environ["GEOSHARE_AUDIT_ENABLED"] = enabled
            fake = SimpleNamespace(state=SimpleNamespace(settings=Settings(database_url=url)))
            fake.state.engine = make_engine(url, 2)
            fake.state.audit = rt = Runtime(fake)  # type: ignore[arg-type]  (writer not started)
            middleware = AuditMiddleware(_probe_app)
            bare = asyncio.run(run(_probe_app, fake))
            wrapped = asyncio.run(run(middleware, fake))
            name = "on" if enabled == "1" else "off"
            out[f"middleware_us_per_request_{name}"] = round(wrapped - bare, 2)
            if enabled == "1":
                rows = [rt.writer._buffer.popleft() for _ in range(min(n, 2000))]
                timings = []
                for _ in range(3):
                    cpu, wall = time.process_time(), time.perf_counter()
                    with fake.state.engine.begin() as conn:
                        write_batch(conn, rows, rt.config.timezone)
                    timings.append((time.process_time() - cpu, time.perf_counter() - wall))
                out["flush_python_cpu_us_per_record"] = round(min(t[0] for t in timings) / len(rows) * 1e6, 2)
                out["flush_wall_us_per_record"] = round(min(t[1] for t in timings) / len(rows) * 1e6, 2)
            fake.state.engine.dispose()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--features", type=int, default=1000)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--database", default="gs_bench_h11")
    args = ap.parse_args()

    from benchmarks.features import LAYER, ensure_layer
    from geoshare.db import migrate

    RESULTS.mkdir(exist_ok=True)
    url = ensure_database(args.database)
    migrate.upgrade(url)
    ensure_layer(url, args.features)
    key = bench_key(url)
    costs = in_process(url)
    print(f"in process: {costs}", flush=True)

    ports = {name: free_port() for name in CONFIGS}
    bases = {
        name: f"http://127.0.0.1:{port}/collections/{LAYER}/items?limit=10" for name, port in ports.items()
    }
    scenarios = {"anonymous": "", "keyed": f"&key={key}"}

    def cmd(port: int) -> list[str]:
        return [
            *(sys.executable, "-m", "uvicorn", "benchmarks.audit_overhead:create_app", "--factory"),
            *(
                "--port",
                str(port),
                "--workers",
                str(args.workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ),
        ]

    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    ratios: dict[str, dict[str, list[float]]] = {}
    served = 0
    before = audit_rows(url)
    os.chdir(ROOT)
    # All three servers run side by side (idle ones cost nothing) and every round measures them back
    # to back in rotating order: on a shared machine the load drifts, and pairing runs taken seconds
    # apart is what keeps that drift out of the comparison.
    with contextlib.ExitStack() as stack:
        for name, port in ports.items():
            env = {"GEOSHARE_DATABASE_URL": url, "GEOSHARE_POOL_SIZE": "8", **NO_LIMITS, **CONFIGS[name]}
            stack.enter_context(server(cmd(port), env, f"http://127.0.0.1:{port}/readyz"))
        for name in CONFIGS:  # warm-up
            for suffix in scenarios.values():
                warm = wrk([bases[name] + suffix], 2, 1)
                served += int(warm["requests"]) if name == "on" else 0
        for rnd in range(args.rounds):
            shift = rnd % len(CONFIGS)
            order = list(CONFIGS)[shift:] + list(CONFIGS)[:shift]
            for scen, suffix in scenarios.items():
                for conns in (2, 8):
                    label = f"{scen}@{conns}"
                    got = {}
                    for name in order:
                        got[name] = r = wrk([bases[name] + suffix], conns, args.seconds)
                        results.setdefault(label, {}).setdefault(name, []).append(r)
                        served += int(r["requests"]) if name == "on" else 0
                    per = ratios.setdefault(label, {"on/none": [], "on/off": [], "off/none": []})
                    per["on/none"].append(got["on"]["rps"] / got["none"]["rps"])
                    per["on/off"].append(got["on"]["rps"] / got["off"]["rps"])
                    per["off/none"].append(got["off"]["rps"] / got["none"]["rps"])
                    print(
                        f"round {rnd + 1} {label:12s} "
                        + "  ".join(f"{n} {got[n]['rps']:7.1f} req/s" for n in CONFIGS),
                        flush=True,
                    )
    # the servers flushed on shutdown: every request "on" served is in the log (rows ≥ requests:
    # wrk does not count the requests still in flight when it stops)
    audited = {"requests_on": served, "rows": audit_rows(url) - before}

    summary: dict[str, dict[str, object]] = {
        key_: {name: median_runs(runs) for name, runs in per.items()} for key_, per in results.items()
    }
    for label, per in summary.items():
        for pair, values in ratios[label].items():
            a, b = pair.split("/")
            per[f"loss_{a}_vs_{b}_pct_median_of_pairs"] = round(100 * (1 - statistics.median(values)), 1)
        # the load-independent estimate: CPU added per request against the time a request takes
        added_us = costs["middleware_us_per_request_on"] + costs["flush_wall_us_per_record"]
        p50_none = per["none"]["p50_ms"]  # type: ignore[index]
        per["estimated_loss_on_vs_none_pct"] = round(100 * added_us / (p50_none * 1000), 2)
    report = {
        "benchmark": "audit overhead on GET /collections/{id}/items?limit=10",
        "features": args.features,
        "seconds_per_run": args.seconds,
        "rounds": args.rounds,
        "workers_each": args.workers,
        "configs": {
            "none": "no audit middleware",
            "off": "middleware, auditing off (rate limits only)",
            "on": "middleware, auditing on",
        },
        "machine": machine_facts(url),
        "audit_rows_written": audited,
        "in_process": costs,
        "results": summary,
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"audit-overhead-{stamp}.json"
    text_ = json.dumps(report, ensure_ascii=False, indent=2)
    out.write_text(text_)
    (RESULTS / "audit-overhead-latest.json").write_text(text_)
    print(json.dumps({"results": summary, "audit_rows_written": audited, "in_process": costs}, indent=2))
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
