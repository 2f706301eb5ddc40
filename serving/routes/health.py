from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from serving.metrics import CONTENT_TYPE
from serving.responses import ReadyOut
from serving.stores.base import StoreUnavailable

router = APIRouter(tags=["health"])


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
def readyz(request: Request) -> Any:
    from fastapi.responses import JSONResponse

    service = request.app.state.service
    try:
        service.store.ping()
    except StoreUnavailable:
        return JSONResponse({"status": "unavailable", "store": service.store.url.split(":", 1)[0]}, status_code=503)
    model = service.engine.models.current
    return {"status": "ready", "store": service.store.url.split(":", 1)[0], "model_version": model.version}


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    """The Prometheus text exposition (summed over the server's workers)."""
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)
