"""Batch geocoding of CSV files as jobs: ``POST /jobs/geocode``, ``GET /jobs/{id}`` and its files.

An upload is checked before it becomes a job (encoding, header, address column, CRS), so mistakes
come back at once as 4xx problems naming the field; only a file that can be geocoded is stored and
queued. ``POST /geocode/batch`` hands CSV bodies here through :func:`accept_csv_upload`.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import IO, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from geocode.batchcsv import inspect_csv
from geoshare.access.identity import Principal
from geoshare.api.auth import principal
from geoshare.api.deps import base_url
from geoshare.api.problems import Problem
from geoshare.api.responses import json_response
from geoshare.jobs import geocode_job, store
from geoshare.services.coords import geocode_crs
from layers.errors import NotFound

router = APIRouter(tags=["jobs"])

OPTIONS = ("column", "city", "district", "crs", "encoding")
CSV_TYPES = ("text/csv", "application/csv", "text/plain", "application/vnd.ms-excel")
SPOOL_BYTES = 8 * 1024 * 1024
_OPTION_DOCS = {
    "column": "the address column (default: the first of 地址, 详细地址, 注册地址, address …)",
    "city": "admin context for every row, e.g. 北京",
    "district": "admin context for every row, e.g. 朝阳区",
    "crs": "coordinates out: EPSG:4326 (default), EPSG:4490, GCJ-02 or BD-09",
    "encoding": "the file's text encoding (default: detected; UTF-8, GBK, GB18030)",
}
_UPLOAD_DOCS: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}, "description": doc}
        for name, doc in {**_OPTION_DOCS, "filename": "name of a raw text/csv upload"}.items()
    ],
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        **{
                            name: {"type": "string", "description": doc} for name, doc in _OPTION_DOCS.items()
                        },
                    },
                }
            },
            "text/csv": {"schema": {"type": "string"}},
        },
    },
}


def _clean_filename(value: str | None) -> str:
    name = PurePosixPath((value or "").replace("\\", "/")).name.strip()
    name = re.sub(r"[\x00-\x1f\x7f\"]", "", name)[:200]
    return name or "upload.csv"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the real (often Chinese) name per RFC 6266/5987."""
    fallback = re.sub(r"[^A-Za-z0-9._-]", "_", filename) or "result.csv"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def _spool_body(request: Request, limit: int) -> IO[bytes]:
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 - handed to the caller
    written = 0
    async for chunk in request.stream():
        written += len(chunk)
        if written > limit:
            spool.close()
            raise Problem(413, f"the file is larger than the {limit} byte limit", field="file")
        spool.write(chunk)
    spool.seek(0)
    return spool


def _media(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_csv_upload(request: Request) -> bool:
    """Whether the body is a CSV upload (multipart form or raw CSV) for :func:`accept_csv_upload`."""
    media = _media(request)
    return media == "multipart/form-data" or media in CSV_TYPES


async def _read_upload(request: Request) -> tuple[IO[bytes], str, dict[str, str]]:
    """(seekable file, its name, raw options) from a multipart form or a raw CSV body."""
    media = _media(request)
    limit = request.app.state.settings.upload_max_bytes
    options = {k: v for k, v in request.query_params.items() if k in OPTIONS}
    if media == "multipart/form-data":
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Problem(422, "the form needs the CSV file in a file field named 'file'", field="file")
        if upload.size is not None and upload.size > limit:
            raise Problem(413, f"the file is larger than the {limit} byte limit", field="file")
        for key in OPTIONS:
            value = form.get(key)
            if isinstance(value, str):
                options[key] = value
        return upload.file, _clean_filename(upload.filename), options
    if media in CSV_TYPES:
        return (
            await _spool_body(request, limit),
            _clean_filename(request.query_params.get("filename")),
            options,
        )
    raise Problem(
        415,
        "send the CSV as multipart/form-data (field 'file') or as a text/csv body, "
        f"not {media or 'no content type'}",
        field="content-type",
    )


def _params(options: dict[str, str], filename: str) -> dict[str, Any]:
    given = {k: v.strip() for k, v in options.items() if v is not None and v.strip()}
    given["crs"] = geocode_crs(given.get("crs"))
    return {"filename": filename, **{k: given.get(k) for k in OPTIONS}}


def _store(request: Request, src: IO[bytes], params: dict[str, Any]) -> store.Job:
    inspect_csv(src, params["column"], params["encoding"])  # type: ignore[arg-type]
    src.seek(0)
    with request.app.state.engine.begin() as conn:
        job = store.create(conn, geocode_job.KIND, params)
        store.write_file(conn, job.id, "input", src, params["filename"], "text/csv")  # type: ignore[arg-type]
    return job


async def accept_csv_upload(request: Request) -> Response:
    """A CSV upload (multipart field ``file`` or a ``text/csv`` body) → 202 and a geocoding job.

    Options (``column``, ``city``, ``district``, ``crs``, ``encoding``) come from the query string or
    from form fields. Also the answer of ``POST /geocode/batch`` to CSV bodies.
    """
    jobs = geocode_job.runner(request.app.state)
    if jobs.running() >= geocode_job.MAX_RUNNING:
        raise Problem(503, "this worker is busy with other geocoding jobs; retry shortly", retry_after=30)
    who = await principal(request)
    src, filename, options = await _read_upload(request)
    try:
        params = {**_params(options, filename), "owner": who.department}
        job = await run_in_threadpool(_store, request, src, params)
    finally:
        src.close()
    jobs.submit(job.id)
    href = f"{base_url(request)}/jobs/{job.id}"
    return json_response(job.as_json(base_url(request)), 202, {"Location": href})


@router.post(
    "/jobs/geocode",
    status_code=202,
    summary="Geocode a CSV file of any size (a job)",
    openapi_extra=_UPLOAD_DOCS,
)
async def create_geocode_job(request: Request) -> Response:
    return await accept_csv_upload(request)


def _job_id(value: str) -> str:
    job_id = store.parse_id(value)
    if job_id is None:
        raise NotFound(f"no job {value!r}", field="id")
    return job_id


def _may_read(job: store.Job, who: Principal) -> bool:
    """A job filed with a key is its department's (and platform admins'); an anonymous job is
    reachable by whoever holds its id, a random UUID nobody can guess."""
    owner = job.params.get("owner")
    return owner is None or who.is_platform_admin or who.is_member_of(owner)


@router.get("/jobs/{job_id}", summary="A job's status, progress and counts")
def job_status(request: Request, job_id: str, who: Principal = Depends(principal)) -> Response:
    canonical = _job_id(job_id)
    with request.app.state.engine.connect() as conn:
        job = store.get(conn, canonical)
    if job is None or not _may_read(job, who):
        raise NotFound(f"no job {job_id!r}", field="id")
    return json_response(job.as_json(base_url(request)))


def _file(request: Request, job_id: str, role: str, who: Principal) -> Response:
    canonical = _job_id(job_id)
    engine = request.app.state.engine
    with engine.connect() as conn:
        head = store.file_head(conn, canonical, role)
    if head is None or not _may_read(head.job, who):
        raise NotFound(f"no job {job_id!r}", field="id")
    if head.job.status == "done" and head.first is None:
        raise Problem(
            410,
            f"the files of job {canonical} were removed {geocode_job.FILES_KEPT_DAYS:g} days after it ended",
        )
    if head.job.status != "done":
        detail = f"job {canonical} is {head.job.status}; its files are ready when the status is done"
        if head.job.error:
            detail += f" (error: {head.job.error})"
        raise Problem(409, detail, job_status=head.job.status)
    headers = {"Content-Disposition": content_disposition(head.filename or f"{role}.csv")}
    media = head.content_type or geocode_job.RESULT_TYPE
    if head.parts <= 1:
        return Response(head.first, media_type=media, headers=headers)

    def stream() -> Iterator[bytes]:
        yield head.first  # type: ignore[misc]
        yield from store.file_parts(engine, canonical, role, start=1, end=head.parts)

    return StreamingResponse(stream(), media_type=media, headers=headers)


@router.get("/jobs/{job_id}/result", summary="The geocoded CSV: input columns plus gs_* match columns")
def job_result(request: Request, job_id: str, who: Principal = Depends(principal)) -> Response:
    return _file(request, job_id, "result", who)


@router.get("/jobs/{job_id}/unmatched", summary="Only the rows that were not matched with confidence")
def job_unmatched(request: Request, job_id: str, who: Principal = Depends(principal)) -> Response:
    return _file(request, job_id, "unmatched", who)
