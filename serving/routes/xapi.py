"""The xAPI statements resource an LRS (or a platform) forwards statements to.

``POST /xapi/statements`` takes one statement or a list of any length within the body limit
(stored ``max_batch_events`` at a time), ``PUT /xapi/statements?statementId=ID`` one statement.
An ``X-Experience-API-Version`` header must say 1.0.x or 2.0.x; without one (an LRS forwarding,
as Ralph does) 1.0.3 is assumed. Authentication is HTTP Basic whose password is an API key with
the ``ingest`` scope (any user name: it is how an LRS's forwarding is configured), or the usual
Bearer key. Statement ids are unique per tenant; a statement sent again with the same content
(its LRS fields ``stored``/``authority``/``version`` aside) changes nothing. A statement without
an id gets one, as an LRS would do. Invalid statements are refused with 400, conflicting ids
with 409, as the specification says; what it allows but cannot be used whole is kept (see
``lenient`` in :func:`engine.xapi.parse_statement`).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Any

from fastapi import Body, Header, Query, Request, Response

from serving.bodies import STATEMENT as STATEMENT_BODY
from serving.bodies import STATEMENTS, documented
from serving.deps import ERRORS, IngestDep, ServiceDep, ingesting
from serving.jsonbody import api_router
from serving.routes.events import store_in_parts
from serving.service import ApiError

router = api_router(prefix="/xapi", tags=["xapi"], responses=ERRORS)

VERSIONS = ("1.0.3", "2.0.0")
_VERSION = re.compile(r"^(1\.0|2\.0)(\.\d+)?$")

STATEMENT = {
    "id": "6690e6c9-3ef0-4ed3-8b37-7f3964730bee",
    "actor": {"objectType": "Agent", "mbox": "mailto:ana@school.example"},
    "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"en-US": "answered"}},
    "object": {"objectType": "Activity", "id": "https://content.example.com/activities/q3"},
    "result": {"success": True, "score": {"scaled": 0.9}},
    "timestamp": "2026-11-24T09:15:00Z",
}


def _check_version(version: str) -> None:
    """A client states its xAPI version; an LRS forwarding may not (Ralph does not): 1.0.3 then."""
    if not _VERSION.match(version.strip()):
        raise ApiError(
            400,
            "unsupported_version",
            f"xAPI version {version!r} is not supported; send 1.0.x or 2.0.x",
            "X-Experience-API-Version",
        )


def _ingest(request: Request, service: Any, principal: Any, statements: list[Any]) -> None:
    """Store a batch of any length within the body limit (:func:`serving.routes.events.store_in_parts`):
    xAPI sets no batch size, and an LRS forwards what a platform posted in one request (a
    backfill of thousands) and drops it when it is refused."""
    if not statements:
        raise ApiError(400, "empty_batch", "send at least one statement", "body")
    for st in statements:
        if isinstance(st, dict) and st.get("id") is None:
            st["id"] = str(uuid.uuid4())  # an LRS assigns the id of a statement that has none
    store_in_parts(request, service, principal, statements, "statements")


@router.post(
    "/statements",
    summary="Store statements (as an LRS forwards them)",
    response_model=list[str],
    openapi_extra=documented(STATEMENTS, "one statement or a list of them"),
)
async def post_statements(
    request: Request,
    response: Response,
    principal: IngestDep,
    service: ServiceDep,
    body: Any = Body(..., examples=[STATEMENT, [STATEMENT]]),
    version: Annotated[str, Header(alias="X-Experience-API-Version", pattern=r"^(1\.0|2\.0)(\.\d+)?$")] = "1.0.3",
) -> list[str]:
    """The ids of the statements, in order (xAPI). Answers are folded into the learners' state,
    other statements are kept."""
    _check_version(version)
    statements = body if isinstance(body, list) else [body]
    await ingesting(request, lambda: _ingest(request, service, principal, statements))
    response.headers["X-Experience-API-Version"] = VERSIONS[0]
    return [str(st.get("id")) if isinstance(st, dict) else "" for st in statements]


@router.put(
    "/statements",
    summary="Store one statement with a given id",
    status_code=204,
    openapi_extra=documented(STATEMENT_BODY, "one statement (its id, when given, is statementId)"),
)
async def put_statement(
    request: Request,
    principal: IngestDep,
    service: ServiceDep,
    statement_id: Annotated[str, Query(alias="statementId", min_length=1, max_length=128)],
    body: Any = Body(..., examples=[STATEMENT]),
    version: Annotated[str, Header(alias="X-Experience-API-Version", pattern=r"^(1\.0|2\.0)(\.\d+)?$")] = "1.0.3",
) -> Response:
    _check_version(version)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_event", "send one statement (a JSON object)", "body")
    if body.get("id") not in (None, statement_id):
        raise ApiError(
            409, "conflicting_event", f"the statement's id {body['id']!r} is not statementId {statement_id!r}", "id"
        )
    await ingesting(request, lambda: _ingest(request, service, principal, [{**body, "id": statement_id}]))
    return Response(status_code=204, headers={"X-Experience-API-Version": VERSIONS[0]})


@router.get("/about", summary="The xAPI versions this endpoint speaks")
def about() -> dict[str, list[str]]:
    return {"version": list(VERSIONS)}
