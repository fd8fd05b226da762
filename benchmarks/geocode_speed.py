"""Geocoding speed through HTTP: forward, reverse and batch, plus each worker's memory.

    .venv/bin/python -m benchmarks.geocode_speed [--database geoshare] [--workers 2] [--seconds 10]
        [--rounds 3] [--batch-seconds 20] [--batch-gzip]

Starts GeoShare (uvicorn, N workers) on the given database and, once every worker answers from
its address index, drives it from a second process with wrk:

- ``GET /geocode?address=…`` over 2,000 distinct noisy queries (``geocode.evaluation.noise``), at 2
  and 8 connections;
- ``GET /geocode/reverse?lon=&lat=`` over 2,000 points within ~30 m of random addresses, at 2 and 8;
- ``POST /geocode/batch`` with 1,000 addresses a request from 2 concurrent httpx clients for
  ``--batch-seconds`` (wrk cannot vary bodies), reported as addresses per second.

Medians of ``--rounds`` rounds. The resident memory (VmRSS, and the peak VmHWM) of every worker
process is read from /proc after warm-up and at the end. An endpoint that answers 404 is reported
as missing and skipped. Results: benchmarks/results/geocode-speed-<timestamp>.json and
geocode-speed-latest.json, with the machine's facts.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
from sqlalchemy import create_engine, make_url

from benchmarks.harness import ADMIN_URL, RESULTS, ROOT, free_port, machine_facts, median_runs, server, wrk
from geocode.evaluation.noise import make_cases, read_known, read_rows

TARGETS = {
    # (scenario, figure, comparison, bound) as the acceptance criteria state them
    "forward p50 ≤ 5 ms": ("geocode@2", "p50_ms", "<=", 5.0),
    "forward ≥ 1,000 req/s at 8 connections": ("geocode@8", "rps", ">=", 1000.0),
    "reverse p50 ≤ 3 ms": ("reverse@2", "p50_ms", "<=", 3.0),
    "batch ≥ 15,000 addresses/s": ("batch", "addresses_per_s", ">=", 15_000.0),
}
WORKER_RSS_LIMIT_MIB = 3 * 1024
METRES_PER_DEGREE = 111_195.0


def make_inputs(
    url: str, seed: int
) -> tuple[list[str], list[tuple[float, float]], list[tuple[bytes, int]], int]:
    """Noisy queries, points near addresses and batch bodies, all from the database."""
    eng = create_engine(url)
    with eng.connect() as conn:
        rows, known = read_rows(conn), read_known(conn)
    eng.dispose()
    if rows.empty:
        raise SystemExit("the database has no addresses: run `geoshare demo load` first")
    rng = np.random.default_rng(seed)
    queries = [c.query for c in make_cases(rows, rng, 2000, known=known)]
    pick = rng.choice(len(rows), 2000, replace=len(rows) < 2000)
    lat = rows["lat"].to_numpy()[pick] + rng.normal(0, 30, 2000) / METRES_PER_DEGREE
    lon = rows["lon"].to_numpy()[pick] + rng.normal(0, 30, 2000) / (
        METRES_PER_DEGREE * np.cos(np.radians(rows["lat"].to_numpy()[pick]))
    )
    points = [(round(float(x), 6), round(float(y), 6)) for x, y in zip(lon, lat, strict=True)]
    batch_queries = [c.query for c in make_cases(rows, rng, 4000, known=known)]
    bodies = [
        (json.dumps({"addresses": batch_queries[i : i + 1000]}, ensure_ascii=False).encode(), 1000)
        for i in range(0, 4000, 1000)
    ]
    return queries, points, bodies, len(rows)


def check_ready(base: str) -> None:
    """``/readyz`` says why the service cannot serve (an unmigrated database, …): say it plainly."""
    r = httpx.get(f"{base}/readyz", timeout=30)
    if r.status_code != 200:
        detail = (
            r.json().get("detail", r.text) if r.headers.get("content-type", "").endswith("json") else r.text
        )
        raise SystemExit(f"the service is not ready: {detail}")


def wait_for_index(base: str, timeout: float, workers: int) -> None:
    """Every worker builds its own index after start: wait until answers stop being 503."""
    deadline = time.time() + timeout
    ok_in_a_row = 0
    while ok_in_a_row < 4 * workers:
        if time.time() > deadline:
            raise SystemExit(f"the address index was not ready after {timeout:.0f} s")
        status = httpx.get(f"{base}/geocode", params={"address": "北京市东城区"}, timeout=30).status_code
        if status == 404:
            return  # no forward endpoint: nothing to wait for
        ok_in_a_row = ok_in_a_row + 1 if status == 200 else 0
        if status != 200:
            time.sleep(0.5)


def probe(base: str) -> dict[str, str]:
    """Which endpoints answer: 'ok' or why not (a 404 means the endpoint is not there yet)."""
    checks = {
        "geocode": lambda: httpx.get(f"{base}/geocode", params={"address": "北京市东城区"}, timeout=30),
        "reverse": lambda: httpx.get(
            f"{base}/geocode/reverse", params={"lon": 116.4, "lat": 39.9}, timeout=30
        ),
        "batch": lambda: httpx.post(
            f"{base}/geocode/batch", json={"addresses": ["北京市东城区"]}, timeout=30
        ),
    }
    out = {}
    for name, call in checks.items():
        r = call()
        if r.status_code == 200:
            out[name] = "ok"
        elif r.status_code == 404:
            out[name] = "missing: answered 404 (endpoint not there yet)"
        else:
            out[name] = f"failing: answered {r.status_code}: {r.text[:200]}"
    return out


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def server_pid(port: int) -> int | None:
    """The uvicorn process listening on ``port`` (the harness does not hand out its pid)."""
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        line = _cmdline(int(cmd.parent.name))
        if "uvicorn" in line and f"--port {port} " in line + " ":
            return int(cmd.parent.name)
    return None


def worker_memory(port: int) -> list[dict[str, float]]:
    """VmRSS and VmHWM (MiB) of each worker process (the server itself when it runs one worker)."""
    pid = server_pid(port)
    if pid is None:
        return []
    workers = [c for c in _children(pid) if "resource_tracker" not in _cmdline(c)] or [pid]
    out = []
    for w in workers:
        try:
            status = Path(f"/proc/{w}/status").read_text()
        except OSError:
            continue
        values = {
            k: int(v.split()[0]) / 1024
            for k, v in (ln.split(":", 1) for ln in status.splitlines())
            if k in ("VmRSS", "VmHWM")
        }
        out.append(
            {
                "pid": w,
                "rss_mib": round(values.get("VmRSS", 0.0), 1),
                "peak_mib": round(values.get("VmHWM", 0.0), 1),
            }
        )
    return out


def batch_round(
    base: str, bodies: list[tuple[bytes, int]], seconds: float, clients: int = 2, gzip: bool = False
) -> dict[str, float]:
    """Addresses per second posted by ``clients`` concurrent clients for ``seconds``.

    The clients share the machine's cores with the server, so they do as little as possible: no
    parsing of the answer beyond its status, and no gzip unless asked (it costs the server more
    than the geocoding; ``--batch-gzip`` measures what a default HTTP client gets).
    """
    done = [0] * clients
    failed = [0] * clients
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds
    headers = {"content-type": "application/json", "accept-encoding": "gzip" if gzip else "identity"}

    def run(i: int) -> None:
        with httpx.Client(timeout=120) as client:
            k = i
            while time.perf_counter() < stop:
                body, count = bodies[k % len(bodies)]
                k += 1
                t0 = time.perf_counter()
                r = client.post(f"{base}/geocode/batch", content=body, headers=headers)
                latencies[i].append((time.perf_counter() - t0) * 1000)
                if r.status_code == 200:
                    done[i] += count
                else:
                    failed[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    lat = sorted(x for per in latencies for x in per) or [0.0]
    return {
        "addresses_per_s": sum(done) / elapsed,
        "requests": len(lat),
        "errors": sum(failed),
        "p50_ms": statistics.median(lat),
    }


def check_targets(results: dict[str, Any], memory: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for label, (scenario, figure, op, bound) in TARGETS.items():
        value = results.get(scenario, {}).get(figure)
        met = None if value is None else (value <= bound if op == "<=" else value >= bound)
        out[label] = {"value": value, "bound": bound, "met": met}
    if memory:
        worst = max(m["peak_mib"] for m in memory)
        out["worker memory ≤ 3 GiB"] = {
            "value": worst,
            "bound": WORKER_RSS_LIMIT_MIB,
            "met": worst <= WORKER_RSS_LIMIT_MIB,
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--database", default="geoshare")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    ap.add_argument("--batch-seconds", type=float, default=20.0)
    ap.add_argument("--batch-gzip", action="store_true", help="batch clients accept gzip-compressed answers")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--index-timeout", type=float, default=900.0, help="seconds to wait for the index")
    args = ap.parse_args()

    RESULTS.mkdir(exist_ok=True)
    url = make_url(ADMIN_URL).set(database=args.database).render_as_string(hide_password=False)
    queries, points, bodies, n_addresses = make_inputs(url, args.seed)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    urls = {
        "geocode": [f"{base}/geocode?address={quote(q)}" for q in queries],
        "reverse": [f"{base}/geocode/reverse?lon={x}&lat={y}" for x, y in points],
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "geoshare.api.app:create_app",
        "--factory",
        "--port",
        str(port),
        "--workers",
        str(args.workers),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    # the per-address limits would refuse a load test from one address: measured is the engine
    env = {
        "GEOSHARE_DATABASE_URL": url,
        "GEOSHARE_POOL_SIZE": "4",
        "GEOSHARE_RATE_LIMIT_ANONYMOUS_PER_MINUTE": str(10**9),
        "GEOSHARE_RATE_LIMIT_PER_MINUTE": str(10**9),
    }
    os.chdir(ROOT)

    runs: dict[str, list[dict[str, float]]] = {}
    batches: list[dict[str, float]] = []
    memory: dict[str, list[dict[str, float]]] = {}
    with server(cmd, env, f"{base}/healthz"):
        check_ready(base)
        started = time.perf_counter()
        wait_for_index(base, args.index_timeout, args.workers)
        index_wait = time.perf_counter() - started
        endpoints = probe(base)
        for name, state in endpoints.items():
            print(f"{name:8s} {state}", flush=True)
        live = [name for name in ("geocode", "reverse") if endpoints[name] == "ok"]
        for name in live:  # warm-up: every worker touches its index and code paths
            wrk(urls[name], 2, 2)
        if endpoints["batch"] == "ok":
            batch_round(base, bodies, 2.0)
        memory["after_warmup"] = worker_memory(port)
        for rnd in range(args.rounds):
            for name in live:
                for conns in (2, 8):
                    r = wrk(urls[name], conns, args.seconds)
                    runs.setdefault(f"{name}@{conns}", []).append(r)
                    print(
                        f"round {rnd + 1} {name:8s} c={conns}: {r['rps']:8.1f} req/s  "
                        f"p50 {r['p50_ms']:6.2f} ms  p99 {r['p99_ms']:6.2f} ms  "
                        f"errors {r['errors'] + r['non2xx']}",
                        flush=True,
                    )
            if endpoints["batch"] == "ok":
                b = batch_round(base, bodies, args.batch_seconds, gzip=args.batch_gzip)
                batches.append(b)
                print(
                    f"round {rnd + 1} batch    2 clients: {b['addresses_per_s']:8.0f} addresses/s  "
                    f"p50 {b['p50_ms']:.0f} ms a request  errors {b['errors']}",
                    flush=True,
                )
        memory["end"] = worker_memory(port)

    results: dict[str, Any] = {key: median_runs(rs) for key, rs in runs.items()}
    if batches:
        results["batch"] = {
            "addresses_per_s": round(statistics.median(b["addresses_per_s"] for b in batches), 1),
            "p50_ms_per_request": round(statistics.median(b["p50_ms"] for b in batches), 1),
            "runs": len(batches),
            "errors": sum(int(b["errors"]) for b in batches),
        }
    report = {
        "benchmark": "geocoding speed (HTTP)",
        "database": args.database,
        "addresses": n_addresses,
        "workers": args.workers,
        "seconds_per_run": args.seconds,
        "batch_seconds": args.batch_seconds,
        "batch_gzip": args.batch_gzip,
        "rounds": args.rounds,
        "index_ready_s": round(index_wait, 1),
        "endpoints": endpoints,
        "machine": machine_facts(url),
        "results": results,
        "memory": memory,
        "targets": check_targets(results, memory.get("end", [])),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = RESULTS / f"geocode-speed-{stamp}.json"
    body = json.dumps(report, ensure_ascii=False, indent=2)
    out.write_text(body)
    (RESULTS / "geocode-speed-latest.json").write_text(body)
    print(
        json.dumps(
            {"results": results, "memory": memory, "targets": report["targets"]}, ensure_ascii=False, indent=2
        )
    )
    missing = [name for name, state in endpoints.items() if state != "ok"]
    if missing:
        print(f"NOT MEASURED: {', '.join(missing)} (see 'endpoints' above)")
    print(f"written to {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
