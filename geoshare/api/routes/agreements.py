"""Sharing agreements over HTTP: file, list, read, approve, reject, revoke (see ``access.agreements``)."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection
from starlette.responses import Response

from geoshare.access import agreements
from geoshare.access.identity import Principal
from geoshare.api.auth import require_authenticated
from geoshare.api.deps import get_conn
from geoshare.api.responses import json_response
from geoshare.services.layer_cache import layer_cache

router = APIRouter(tags=["sharing agreements"])


class LayerGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    layer: str = Field(examples=["market_entities"])
    fields: list[str] = Field(
        description="the fields granted (names as in the API)", examples=[["名称", "地址"]]
    )


class AgreementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: str = Field(description="the department that keeps the layers", examples=["scjgj"])
    consumer: str | None = Field(None, description="default: the caller's department")
    layers: list[LayerGrantIn]
    purpose: str = Field(examples=["应急指挥：危化品企业分布"])
    starts_on: date
    ends_on: date
    update_frequency: str | None = Field(None, examples=["daily"])
    area_code: str | None = Field(None, description="division code: rows inside it only", examples=["110105"])


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str | None = None


def _changed(request: Request, doc: Any, status: int = 200) -> Response:
    """After a committed change: this worker forgets reused principals before answering, so the
    caller's next request sees it even before the database's announcement arrives."""
    layer_cache(request.app.state).forget_principals()
    return json_response(doc, status)


@router.post("/agreements", status_code=201, summary="File a sharing agreement request (共享协议申请)")
def file_agreement(
    body: AgreementIn,
    request: Request,
    who: Principal = Depends(require_authenticated),
) -> Response:
    with request.app.state.engine.begin() as conn:  # committed before answering (see _changed)
        agreement = agreements.file(
            conn,
            who,
            consumer=body.consumer,
            provider=body.provider,
            layers=[agreements.LayerGrant(g.layer, g.fields) for g in body.layers],
            purpose=body.purpose,
            starts_on=body.starts_on,
            ends_on=body.ends_on,
            update_frequency=body.update_frequency,
            area_code=body.area_code,
        )
    return _changed(request, agreement.as_dict(), 201)


@router.get("/agreements", summary="Agreements the caller's department is party to (platform admins: all)")
def list_agreements(
    role: str | None = Query(None, description="consumer | provider"),
    status: str | None = Query(None, description="requested | approved | rejected | revoked | expired"),
    layer: str | None = None,
    who: Principal = Depends(require_authenticated),
    conn: Connection = Depends(get_conn),
) -> Response:
    found = agreements.list_for(conn, who, role=role, status=status, layer=layer)
    return json_response({"agreements": [a.as_dict() for a in found]})


@router.get("/agreements/{agreement_id}", summary="One agreement")
def get_agreement(
    agreement_id: int, who: Principal = Depends(require_authenticated), conn: Connection = Depends(get_conn)
) -> Response:
    return json_response(agreements.get(conn, who, agreement_id).as_dict())


def _decide(
    request: Request, who: Principal, agreement_id: int, body: DecisionIn | None, approve: bool
) -> Response:
    with request.app.state.engine.begin() as conn:
        done = agreements.decide(conn, who, agreement_id, approve=approve, note=body.note if body else None)
    return _changed(request, done.as_dict())


@router.post("/agreements/{agreement_id}/approve", summary="Approve a request (provider)")
def approve(
    agreement_id: int,
    request: Request,
    body: DecisionIn | None = None,
    who: Principal = Depends(require_authenticated),
) -> Response:
    return _decide(request, who, agreement_id, body, approve=True)


@router.post("/agreements/{agreement_id}/reject", summary="Reject a request (provider)")
def reject(
    agreement_id: int,
    request: Request,
    body: DecisionIn | None = None,
    who: Principal = Depends(require_authenticated),
) -> Response:
    return _decide(request, who, agreement_id, body, approve=False)


@router.post("/agreements/{agreement_id}/revoke", summary="Revoke an agreement or withdraw a request")
def revoke(
    agreement_id: int,
    request: Request,
    body: DecisionIn | None = None,
    who: Principal = Depends(require_authenticated),
) -> Response:
    note = body.note if body else None
    with request.app.state.engine.begin() as conn:
        done = agreements.revoke(conn, who, agreement_id, note)
    return _changed(request, done.as_dict())
