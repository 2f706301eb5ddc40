from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Body, Request

from serving.bodies import EVENTS, documented
from serving.deps import ERRORS, IngestDep, ServiceDep, ingesting
from serving.jsonbody import api_router
from serving.schemas import EventsAccepted
from serving.service import ApiError

router = api_router(prefix="/v1", tags=["events"], responses=ERRORS)

EXAMPLE = {
    "id": "7f0c2c52-0001",
    "learner_id": "s-104",
    "item_id": "gen-3.NF.A.1-practice-1",
    "correct": True,
    "timestamp": "2026-11-24T09:15:00Z",
}


@router.post(
    "/events",
    response_model=EventsAccepted,
    summary="Ingest one event or a batch (native or xAPI)",
    openapi_extra=documented(EVENTS, "one event or a list of them: native events or xAPI statements, mixed at will"),
)
async def post_events(
    request: Request, principal: IngestDep, service: ServiceDep, body: Any = Body(..., examples=[EXAMPLE, [EXAMPLE]])
) -> dict[str, int]:
    """Each event is a native object (``id``, ``learner_id``, ``item_id``, ``correct`` or ``score``,
    ``timestamp``; or ``kind: exposure`` for an activity done without an answer) or an xAPI
    statement. A repeated id with identical content is acknowledged and
    changes nothing; with different content the whole request is refused with 409. The answer
    comes once the events are durable in the store.

    The batch is stored in the worker's ingestion threads (:func:`serving.deps.ingesting`), so
    a burst of batches never holds up the worker's other routes."""
    events = body if isinstance(body, list) else [body]
    limit = request.app.state.config.serving.max_batch_events
    if len(events) > limit:
        raise ApiError(413, "batch_too_large", f"a batch holds at most {limit} events, got {len(events)}", "body")
    if not events:
        raise ApiError(422, "empty_batch", "send at least one event", "body")
    result = await ingesting(request, lambda: service.ingest(principal.tenant, events, service.scope_of(principal)))
    request.app.state.metrics.ingested(result["accepted"], result["duplicates"])
    return result


def store_in_parts(
    request: Request,
    service: Any,
    principal: Any,
    events: list[Any],
    noun: str = "events",
    place: Callable[[int], int] = int,
    prefix: str = "events",
) -> dict[str, Any]:
    """Store a batch of any length within the body limit, as the xAPI statements resource and
    the Caliper endpoint take them: xAPI and Caliper set no batch size, and an LRS or a sensor
    drops what is refused. It is stored ``[serving] max_batch_events`` at a time, each part
    durable before the next; a part refused leaves the parts before it stored (named in the
    error), so a corrected batch sent again makes them duplicates. Errors and warnings name the
    ``i``-th event ``{prefix}[{place(i)}]``, its place in the body. A learner left busy is a 503:
    send the batch again. Returns the parts' counts added up and their warnings. It runs in an
    ingestion thread (:func:`serving.deps.ingesting`)."""
    size = request.app.state.config.serving.max_batch_events
    total: dict[str, Any] = {"accepted": 0, "duplicates": 0, "unaligned": 0, "not_evidence": 0, "warnings": []}
    for start in range(0, len(events), size):
        try:
            result = service.ingest(
                principal.tenant,
                events[start : start + size],
                service.scope_of(principal),
                lambda i, start=start: f"{prefix}[{place(start + i)}]",
            )
        except ApiError as exc:
            # xAPI and Caliper answer what an endpoint cannot accept with 400
            status = 400 if exc.status == 422 else exc.status
            stored = f" ({noun} {place(0)}-{place(start - 1)} were stored)" if start else ""
            raise ApiError(status, exc.code, exc.message + stored, exc.field) from None
        request.app.state.metrics.ingested(result["accepted"], result["duplicates"])
        if result["retry"]:
            raise ApiError(
                503,
                "busy",
                f"{noun} {', '.join(result['retry'][:5])} were not stored (their learners were busy); send them again",
                "id",
            )
        for key in ("accepted", "duplicates", "unaligned", "not_evidence"):
            total[key] += result[key]
        total["warnings"].extend(result["warnings"])
    return total
