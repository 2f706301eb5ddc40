from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from serving.auth import has_scope
from serving.deps import ERRORS, OperatorDep, ReadDep, ServiceDep
from serving.model_provider import ModelLoadError, ModelRefused
from serving.responses import ModelOut, ReloadOut
from serving.schemas import ModelReloadIn
from serving.service import ApiError
from serving.views import iso

router = APIRouter(prefix="/v1/model", tags=["model"], responses=ERRORS)


#: what a key without the operator scope reads instead of the deployment's last load error
HIDDEN_ERROR = "the last model load failed; a key with the operator scope reads why"


@router.get("", summary="The model that serves recommendations", response_model=ModelOut)
def get_model(request: Request, principal: ReadDep, service: ServiceDep) -> dict[str, Any]:
    """Every tenant reads which model serves it and its gate report. Where it was loaded from
    and why a load failed are the operator's: a folder path or a registry error (which may
    carry the tracking server's address) are not a tenant's to read."""
    described = service.engine.models.describe()
    deployment = request.app.state.deployment.describe()
    if not has_scope(principal.scopes, "operator"):
        described["source"] = None
        for part in (described, deployment):
            part["last_error"] = HIDDEN_ERROR if part["last_error"] else None
    return {**described, "loaded_at": iso(described["loaded_at"]), "deployment": deployment}


@router.post(
    "/reload",
    summary="Load a model (default: the configured URI) and swap it in for every tenant (operator)",
    response_model=ReloadOut,
)
def reload_model(
    request: Request, principal: OperatorDep, service: ServiceDep, body: ModelReloadIn | None = None
) -> dict[str, Any]:
    """The model serves every tenant of the deployment, so swapping it takes the ``operator``
    scope, which a tenant's admin key does not have (`zpd keys create --scopes operator`).

    The candidate is loaded and passed through the promotion gate while the current model keeps
    serving: coverage of the standards and items, spread of its predictions, and AUC and log-loss
    against the serving model on the store's recent answers. A candidate that fails is refused
    (409 naming each failed check) and the current model stays, unless a ``force_reason`` is given. The version loaded
    is stored, and every other worker and replica switches to it within ``[serving] sync_s``."""
    holder = service.engine.models
    uri = (body.uri if body and body.uri else None) or request.app.state.config.serving.model_uri
    assert holder.current is not None  # an engine's holder always has a model (build_engine loads one)
    previous = holder.current.version
    force_reason = body.force_reason.strip() if body is not None and body.force_reason else None
    try:
        # the other workers follow within sync_s
        loaded = request.app.state.deployment.set_model(uri, force_reason)
    except ModelLoadError as exc:
        request.app.state.metrics.reload("refused")
        hint = "; a force_reason serves it anyway (the reason stays with it)" if isinstance(exc, ModelRefused) else ""
        raise ApiError(409, "model_refused", f"{exc}; still serving {previous}{hint}", "uri") from None
    request.app.state.metrics.reload("swapped")
    described = holder.describe()
    return {"previous": previous, **described, "loaded_at": iso(described["loaded_at"]), "version": loaded.version}
