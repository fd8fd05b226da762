"""Batch geocoding jobs: a CSV stored in ``gs.job_file`` in, a geocoded CSV (and its unmatched rows) out.

A job runs in a daemon thread of the worker that accepted it, on that worker's address index. Why a
thread and not a task queue: the index is already in the worker's memory, and the job state is in
the database, so nothing else is needed to run, watch or serve a job. A worker that dies leaves its
jobs ``running`` with an old heartbeat; :func:`recover_stale`, called when a worker starts, marks
them failed so clients stop waiting. On a clean shutdown :func:`stop_jobs` fails them at once.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from geocode.batchcsv import geocode_csv
from geoshare.jobs import store
from geoshare.services import geocoding
from geoshare.services.coords import WGS84, from_wgs84_many
from layers.errors import LayerError

log = logging.getLogger("geoshare.jobs")

KIND = "geocode"
STALE_SECONDS = 60.0
HEARTBEAT_SECONDS = 15.0
MAX_RUNNING = 4
"""Jobs one worker runs at once; more get 503 (matching is CPU-bound: they would only share the CPU)."""
SPOOL_BYTES = 32 * 1024 * 1024
RESULT_TYPE = "text/csv; charset=utf-8"
LOST = "the worker running the job stopped before it finished; submit the file again"
FILES_KEPT_DAYS = 7.0  # uploads and results are personal data of departments: not kept for ever


class _Stopping(Exception):
    """Raised from the progress callback to end a job when its worker shuts down."""


def result_names(filename: str) -> tuple[str, str]:
    """``data.csv`` → (``data-geocoded.csv``, ``data-unmatched.csv``)."""
    stem = filename[:-4] if filename.lower().endswith(".csv") else filename
    stem = stem or "upload"
    return f"{stem}-geocoded.csv", f"{stem}-unmatched.csv"


@dataclass
class Runner:
    """A worker's running jobs (kept on ``app.state``)."""

    engine: Engine
    state: object  # app.state: where the worker's address index lives
    threads: dict[str, threading.Thread] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def running(self) -> int:
        with self.lock:
            for job_id in [j for j, t in self.threads.items() if not t.is_alive()]:
                del self.threads[job_id]
            return len(self.threads)

    def submit(self, job_id: str) -> None:
        thread = threading.Thread(
            target=self._run, args=(job_id,), name=f"geocode-job-{job_id[:8]}", daemon=True
        )
        with self.lock:
            self.threads[job_id] = thread
        thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        with self.lock:
            threads = list(self.threads.values())
        for t in threads:
            t.join(timeout)

    def _run(self, job_id: str) -> None:
        try:
            run(self.engine, self.state, job_id, self.stopping)
        finally:
            with self.lock:
                self.threads.pop(job_id, None)


def runner(state: object) -> Runner:
    """The worker's runner, created on first use like the address index holder."""
    r = getattr(state, "geocode_jobs", None)
    if r is None:
        r = Runner(state.engine, state)  # type: ignore[attr-defined]
        state.geocode_jobs = r  # type: ignore[attr-defined]
    return r


def run(engine: Engine, state: object, job_id: str, stopping: threading.Event | None = None) -> None:
    """Run one queued job to done or failed; never raises (the outcome is in ``gs.job``)."""
    try:
        with engine.begin() as conn:
            job = store.start(conn, job_id)
        if job is None:
            return
        with _heartbeat(engine, job_id):
            _geocode(engine, state, job, stopping or threading.Event())
    except _Stopping:
        _fail(engine, job_id, LOST)
    except LayerError as exc:
        where = "".join(
            [f" [field {exc.field}]" if exc.field else "", f" [line {exc.line}]" if exc.line else ""]
        )
        _fail(engine, job_id, f"{exc.detail}{where}")
    except Exception as exc:  # noqa: BLE001 - recorded on the job; the worker carries on
        log.exception("geocode job %s failed", job_id)
        _fail(engine, job_id, f"internal error ({type(exc).__name__}); the incident was logged")


@contextmanager
def _heartbeat(engine: Engine, job_id: str) -> Iterator[None]:
    """Touch the job every ``HEARTBEAT_SECONDS`` while it runs.

    A thread of its own, so the heartbeat goes on whatever the job is busy with: loading the
    index, a slow chunk, storing a large result.
    """
    done = threading.Event()

    def beat() -> None:
        while not done.wait(HEARTBEAT_SECONDS):
            try:
                with engine.begin() as conn:
                    store.touch(conn, job_id)
            except Exception:  # noqa: BLE001 - the next beat may get through
                log.warning("heartbeat of job %s failed", job_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"job-heartbeat-{job_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def _geocode(engine: Engine, state: object, job: store.Job, stopping: threading.Event) -> None:
    params: dict[str, Any] = job.params
    crs = params.get("crs") or WGS84
    writer = store.ProgressWriter(engine, job.id)

    def progress(done: int, total: int) -> None:
        if stopping.is_set():
            raise _Stopping
        writer(done, total)

    with (
        tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as src,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as flagged,
    ):
        for part in store.file_parts(engine, job.id, "input"):
            src.write(part)
        src.seek(0)
        index = geocoding.holder(state).get()
        counts = geocode_csv(
            index,
            src,  # type: ignore[arg-type]
            out,
            column=params.get("column"),
            city=params.get("city"),
            district=params.get("district"),
            crs=crs,
            crs_fn=None if crs == WGS84 else functools.partial(from_wgs84_many, crs=crs),
            encoding=params.get("encoding"),
            unmatched=flagged,
            progress=progress,
        )
        result_name, unmatched_name = result_names(params.get("filename") or "upload.csv")
        out.seek(0)
        flagged.seek(0)
        with engine.begin() as conn:
            details = {"column": counts.column, "encoding": counts.encoding, "index_version": index.version}
            if not store.finish(conn, job.id, counts.rows, counts.as_dict(), details):
                return  # declared lost meanwhile: it stays failed
            store.write_file(conn, job.id, "result", out, result_name, RESULT_TYPE)
            store.write_file(conn, job.id, "unmatched", flagged, unmatched_name, RESULT_TYPE)


def _fail(engine: Engine, job_id: str, error: str) -> None:
    try:
        with engine.begin() as conn:
            store.fail(conn, job_id, error)
    except Exception:  # noqa: BLE001 - nothing more to do than log
        log.exception("could not record the failure of job %s", job_id)


def recover_stale(engine: Engine, seconds: float = STALE_SECONDS) -> int:
    """Mark jobs whose worker went away (no heartbeat for ``seconds``) failed; call at start-up.

    Never raises: a worker must start even when the jobs table is missing (not yet migrated).
    """
    try:
        with engine.begin() as conn:
            lost = store.fail_stale(conn, seconds, LOST)
            purged = store.purge_files(conn, FILES_KEPT_DAYS)
        if purged:
            log.info("removed %d file part(s) of jobs older than %g days", purged, FILES_KEPT_DAYS)
    except Exception:  # noqa: BLE001
        log.warning("could not check for lost geocoding jobs", exc_info=True)
        return 0
    if lost:
        log.warning("%d geocoding job(s) lost their worker and were marked failed", lost)
    return lost


def stop_jobs(app: object, timeout: float = 5.0) -> None:
    """On shutdown: end this worker's running jobs as failed (call before disposing of the engine)."""
    r = getattr(app.state, "geocode_jobs", None)  # type: ignore[attr-defined]
    if r is not None:
        r.stop(timeout)
