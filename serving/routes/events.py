from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request

from serving.bodies import EVENTS, documented
from serving.deps import ERRORS, IngestDep, ServiceDep, ingesting
from serving.schemas import EventsAccepted
from serving.service import ApiError

router = APIRouter(prefix="/v1", tags=["events"], responses=ERRORS)

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
    ``timestamp``) or an xAPI statement. A repeated id with identical content is acknowledged and
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
