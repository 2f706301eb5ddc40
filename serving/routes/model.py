from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import Request

from serving.auth import has_scope
from serving.deps import ERRORS, AdminDep, OperatorDep, ReadDep, ServiceDep, admin_work
from serving.jsonbody import api_router
from serving.model_provider import ModelLoadError, ModelNotRegistered, ModelRefused
from serving.responses import ModelOut, ReloadOut
from serving.schemas import ModelReloadIn, TenantModelIn
from serving.service import ApiError
from serving.views import iso

router = api_router(prefix="/v1/model", tags=["model"], responses=ERRORS)
log = logging.getLogger("zpd.model")


#: what a key without the operator scope reads instead of the deployment's last load error
HIDDEN_ERROR = "the last model load failed; a key with the operator scope reads why"


@router.get("", summary="The model that serves the tenant's recommendations", response_model=ModelOut)
def get_model(request: Request, principal: ReadDep, service: ServiceDep) -> dict[str, Any]:
    """Every tenant reads which model serves it and its gate report: the deployment's, or the
    tenant's own (``scope``). Where it was loaded from
    and why a load failed are the operator's: a folder path or a registry error (which may
    carry the tracking server's address) are not a tenant's to read."""
    return _described(request, principal, service)


@router.post(
    "/reload",
    summary="Load a model (default: the configured URI) and swap it in for every tenant (operator)",
    response_model=ReloadOut,
)
@admin_work
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


@router.put(
    "/tenant",
    summary="Serve this tenant a model of its own, a version of its registered model (admin)",
    response_model=ReloadOut,
)
@admin_work
def put_tenant_model(request: Request, principal: AdminDep, service: ServiceDep, body: TenantModelIn) -> dict[str, Any]:
    """A model the tenant's data scientists trained (``zpd train --from-store URL --tenant T
    --registered-model NAME``) serves this tenant only; every other tenant keeps the deployment's.
    The URI names a version of the tenant's registered model (``[mlflow]
    tenant_registered_model``, by default ``zpd-learner-TENANT``), by number or by alias. An
    alias is followed: when it moves, the server loads the version it points to (``[serving]
    model_poll_s``).

    The candidate passes the promotion gate first: coverage of the standards and items, spread
    of its predictions, and AUC and log-loss against the model the tenant is served now, on the
    tenant's own recent answers. A candidate that fails is refused (409 naming each failed check)
    unless a ``force_reason`` is given. Every worker and replica serves it within ``[serving]
    sync_s``; the tenant's learners are folded again with it as they are next read."""
    tenant = principal.tenant
    name = request.app.state.config.mlflow.tenant_model(tenant)
    uri = body.uri
    if re.split("[/@]", uri.removeprefix("models:/"), maxsplit=1)[0] != name:  # (the schema checked its form)
        raise ApiError(
            403,
            "forbidden",
            f"uri: a tenant is served a version of its own registered model only, models:/{name}@ALIAS or "
            f"models:/{name}/N, not {uri[:200]!r}",
            "uri",
        )
    holder = service.engine.models
    previous = holder.serving(tenant).version
    force_reason = body.force_reason.strip() if body.force_reason else None
    try:
        loaded = request.app.state.deployment.set_tenant_model(tenant, uri, force_reason)
    except ModelLoadError as exc:
        request.app.state.metrics.reload("refused")
        if isinstance(exc, ModelRefused | ModelNotRegistered):
            why = str(exc)
        else:  # a registry or artifact failure may name the tracking server: the operator's to read
            log.warning("tenant %s: model %s not loaded: %s", tenant, uri, exc)
            why = f"model {uri} could not be loaded from the registry (the server's log says why)"
        hint = "; a force_reason serves it anyway (the reason stays with it)" if isinstance(exc, ModelRefused) else ""
        raise ApiError(409, "model_refused", f"{why}; still serving {previous}{hint}", "uri") from None
    request.app.state.metrics.reload("swapped")
    return {"previous": previous, **_described(request, principal, service), "version": loaded.version}


@router.delete(
    "/tenant",
    summary="Serve this tenant the deployment's model again (admin)",
    response_model=ReloadOut,
)
def delete_tenant_model(request: Request, principal: AdminDep, service: ServiceDep) -> dict[str, Any]:
    """The tenant is served the deployment's model again, by every worker within ``[serving]
    sync_s``; its learners are folded again with it as they are next read. Without a model of
    its own, nothing changes."""
    previous = service.engine.models.serving(principal.tenant).version
    request.app.state.deployment.clear_tenant_model(principal.tenant)
    return {"previous": previous, **_described(request, principal, service)}


def _described(request: Request, principal: Any, service: Any) -> dict[str, Any]:
    """The model the principal's tenant is served, as ``GET /v1/model`` answers it (and the
    tenant's own model's routes after a change): where it was loaded from and why a load failed
    are the operator's to read, as is which tenants have a model of their own."""
    described = service.engine.models.describe(principal.tenant)
    deployment = request.app.state.deployment.describe()
    if not has_scope(principal.scopes, "operator"):
        described["source"] = described["not_registered"] = None
        for part in (described, deployment):
            part["last_error"] = HIDDEN_ERROR if part["last_error"] else None
    else:  # the deployment's operator sees every tenant's
        # published, whether this worker holds the model now or loads it on the tenant's next request
        described["tenant_models"] = {t: e["version"] for t, e in sorted(service.engine.models.published.items())}
    return {**described, "loaded_at": iso(described["loaded_at"]), "deployment": deployment}
