from __future__ import annotations

from typing import Any

import anyio.to_thread
from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from serving.jsonbody import api_router
from serving.metrics import CONTENT_TYPE
from serving.responses import ReadyOut
from serving.stores.base import StoreUnavailable

router = api_router(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    """Answered on the event loop: a liveness probe must not wait for one of the
    ``[serving] request_threads`` that long requests (event batches, rotations) hold, or an
    orchestrator restarts a worker that is only busy."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The store answers and a model is loaded",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "the store does not answer"}},
)
async def readyz(request: Request) -> Any:
    """The store is asked in a thread of the probes' own (``app.state.probe_threads``): a worker
    whose request threads are all taken is busy, not unready."""
    service = request.app.state.service
    store = service.store.url.split(":", 1)[0]
    try:
        await anyio.to_thread.run_sync(service.store.ping, limiter=request.app.state.probe_threads)
    except StoreUnavailable:
        return JSONResponse({"status": "unavailable", "store": store}, status_code=503)
    model = service.engine.models.current
    return {"status": "ready", "store": store, "model_version": model.version}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
async def metrics(request: Request) -> Response:
    """The Prometheus text exposition (summed over the server's workers), read in a thread of the
    probes' own: a scrape is not queued behind the requests' threads."""
    text = await anyio.to_thread.run_sync(request.app.state.metrics.render, limiter=request.app.state.probe_threads)
    return Response(text, media_type=CONTENT_TYPE)
