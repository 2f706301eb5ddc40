"""The IMS Caliper endpoint a Caliper sensor sends its envelopes to.

``POST /caliper/events`` takes one envelope (Caliper 1.0-1.2: ``sensor``, ``sendTime``,
``dataVersion``, ``data``) of any length within the body limit. Authentication is the Bearer API
key with the ``ingest`` scope, as the Caliper Sensor API asks (``Authorization: Bearer KEY``).
The events that are learning evidence (:mod:`engine.caliper`: grades, and answers as exposures)
are stored as ``POST /v1/events`` stores events, ids unique per tenant, a resend a duplicate;
every other entry of ``data`` (navigation, sessions, entities a sensor describes) is skipped and
counted in the answer with why. An envelope or an event that cannot be read is refused with 400
naming the field (``data[3].object.assignee``), a conflicting id with 409, as for xAPI; a 503 asks
for the envelope again.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Body, Request

from engine.caliper import ENTITY, read_envelope, skipped
from engine.xapi import StatementError
from serving.bodies import CALIPER_ENVELOPE, documented
from serving.deps import ERRORS, IngestDep, ServiceDep, ingesting
from serving.jsonbody import NOT_TEXT, api_router, read_json
from serving.responses import ErrorOut
from serving.routes.events import store_in_parts
from serving.schemas import CaliperAccepted
from serving.service import ApiError

router = api_router(
    prefix="/caliper",
    tags=["caliper"],
    responses={**ERRORS, 415: {"model": ErrorOut, "description": "a body that is not JSON (application/json)"}},
)

_ITEM = "https://content.example.com/items/q1"
_ATTEMPT = _ITEM + "/users/554433/attempts/1"
ENVELOPE = {
    "sensor": "https://content.example.com/sensors/1",
    "sendTime": "2026-11-24T09:15:02.000Z",
    "dataVersion": "http://purl.imsglobal.org/ctx/caliper/v1p1",
    "data": [
        {
            "@context": "http://purl.imsglobal.org/ctx/caliper/v1p1",
            "id": "urn:uuid:a50ca17f-5971-47bb-8fca-4e6e6879001d",
            "type": "GradeEvent",
            "actor": {"id": "https://content.example.com/autograder", "type": "SoftwareApplication"},
            "action": "Graded",
            "object": {
                "id": _ATTEMPT,
                "type": "Attempt",
                "assignee": {"id": "https://content.example.com/users/554433", "type": "Person"},
                "assignable": {
                    "id": _ITEM,
                    "type": "AssessmentItem",
                    "learningObjectives": [
                        {
                            "id": "https://content.example.com/objectives/3.NF.A.1",
                            "type": "LearningObjective",
                            "name": "3.NF.A.1",
                        }
                    ],
                },
                "count": 1,
            },
            "eventTime": "2026-11-24T09:15:00.000Z",
            "generated": {
                "id": _ATTEMPT + "/score",
                "type": "Score",
                "attempt": _ATTEMPT,
                "scoreGiven": 1.0,
                "maxScore": 1.0,
            },
        }
    ],
}


def _json(request: Request, body: Any) -> Any:
    """The body as JSON: FastAPI decodes a JSON content type (``application/json``, Caliper's
    ``application/ld+json``); a body without a content type is read as JSON when it is JSON, as
    a sensor that leaves the header out means it; any other content type is a 415."""
    if not isinstance(body, (bytes, bytearray, str)):
        return body
    kind = request.headers.get("content-type", "").strip()
    if kind:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the envelope as JSON (application/json), not {kind[:80]!r}",
            "Content-Type",
        )
    try:
        return read_json(bytes(body, "utf-8") if isinstance(body, str) else bytes(body))
    except ValueError as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) and exc.msg.startswith(NOT_TEXT) else "is not JSON"
        raise ApiError(400, "invalid_envelope", f"body: {why}; expected a Caliper envelope", "body") from None


@router.post(
    "/events",
    summary="Store a Caliper envelope's learning events (as a sensor sends them)",
    response_model=CaliperAccepted,
    openapi_extra=documented(CALIPER_ENVELOPE, "a Caliper envelope (sensor, sendTime, dataVersion, data)"),
)
async def post_caliper_events(
    request: Request, principal: IngestDep, service: ServiceDep, body: Any = Body(..., examples=[ENVELOPE])
) -> dict[str, Any]:
    """Grades are answers, folded into the learners' state; answers without a grade are kept,
    not evidence; the rest of ``data`` is listed in ``skipped``. The answer comes once the
    events are durable in the store (stored in the worker's ingestion threads, as ``POST
    /v1/events``)."""
    body = _json(request, body)
    try:
        data = read_envelope(body)
    except StatementError as exc:
        raise ApiError(400, "invalid_envelope", str(exc), exc.field) from None
    if not data:
        raise ApiError(400, "empty_batch", "send at least one event in data", "body.data")
    actions = service.caliper.actions
    places: list[int] = []
    reasons: dict[str, list[int]] = {}
    for j, entry in enumerate(data):
        why = skipped(entry, actions)
        if why is None:
            places.append(j)
        else:
            reasons.setdefault(why, []).append(j)
    result: dict[str, Any] = {"accepted": 0, "duplicates": 0, "unaligned": 0, "not_evidence": 0, "warnings": []}
    if places:
        events = [data[j] for j in places]
        result = await ingesting(
            request, lambda: store_in_parts(request, service, principal, events, "events", places.__getitem__, "data")
        )
    for why, where in reasons.items():
        request.app.state.metrics.caliper_skip("entity" if why.startswith(ENTITY) else "not_evidence", len(where))
    return {
        "received": len(data),
        **result,
        "skipped": [{"reason": why, "count": len(where), "data": where} for why, where in reasons.items()],
    }
