"""Shared benchmark plumbing: databases, servers in subprocesses, wrk runs, machine facts."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, make_url, text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
ADMIN_URL = os.environ.get(
    "GEOSHARE_DATABASE_URL", "postgresql+psycopg://geoshare:geoshare@127.0.0.1:5432/geoshare"
)


def ensure_database(name: str) -> str:
    """Create database ``name`` from the PostGIS template if missing; return its SQLAlchemy URL."""
    admin = create_engine(make_url(ADMIN_URL).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE geoshare_template'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(cmd: list[str], env: dict[str, str], ready_url: str, timeout: float = 60) -> Iterator[None]:
    """Run a server process for the duration of the block; wait until ``ready_url`` answers 200."""
    log = open(RESULTS / f"server-{Path(cmd[0]).name}-{int(time.time())}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited early: {' '.join(cmd)} (see {log.name})")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            if time.time() > deadline:
                raise RuntimeError(f"server not ready after {timeout}s: {ready_url}")
            time.sleep(0.3)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        Path(log.name).unlink(missing_ok=True)


def wrk(
    urls: list[str], connections: int, seconds: int, threads: int = 1, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """Drive ``urls`` round-robin with wrk (a second process), sending ``headers`` with each request,
    and return its summary."""
    sent = [arg for name, value in (headers or {}).items() for arg in ("-H", f"{name}: {value}")]
    url_file = RESULTS / f"urls-{os.getpid()}.txt"
    url_file.write_text("\n".join(urls))
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "30s",
                *sent,
                "-s",
                str(HERE / "wrk_report.lua"),
                urls[0],
            ],
            env={**os.environ, "WRK_URLS": str(url_file)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        url_file.unlink(missing_ok=True)
    line = next(ln for ln in out.splitlines() if ln.startswith("WRKJSON "))
    r = json.loads(line[len("WRKJSON ") :])
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def median_runs(runs: list[dict[str, float]]) -> dict[str, float]:
    keys = ("rps", "p50_ms", "p90_ms", "p99_ms")
    return {k: round(statistics.median(r[k] for r in runs), 2) for k in keys} | {
        "runs": len(runs),
        "errors": sum(r["errors"] + r["non2xx"] for r in runs),
    }


def machine_facts(engine_url: str) -> dict[str, str]:
    eng = create_engine(engine_url)
    with eng.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar_one()
        postgis = conn.execute(text("SELECT postgis_lib_version()")).scalar_one()
    eng.dispose()
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = "unknown"
    with contextlib.suppress(OSError, ValueError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem_gib = f"{kb / 1024 / 1024:.1f}"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "postgresql": pg,
        "postgis": postgis,
    }


def contention(load: list[float]) -> dict[str, Any]:
    """The 1-minute load averages sampled after each run: how shared the machine was."""
    return {
        "note": "machine shared with other workers' test runs; load average (1 min) sampled after each run",
        "loadavg_1m": {
            "min": round(min(load), 2),
            "median": round(statistics.median(load), 2),
            "max": round(max(load), 2),
        },
    }
