"""The tenant's LTI platform deployments: which platform deployments (LTI 1.3: an issuer and a
deployment id) the tenant's learners launch from. A Caliper event whose ``federatedSession``
carries an LTI 1.3 launch from another deployment is refused (403 naming the field): a key that a
platform shares by mistake, or one sensor sending for two schools, cannot put another tenant's
students into this one. With no deployment registered, launches are not checked."""

from __future__ import annotations

from typing import Any

from serving.deps import ERRORS, AdminDep, ServiceDep
from serving.jsonbody import api_router
from serving.responses import LtiDeploymentsOut
from serving.schemas import LtiDeploymentsIn

router = api_router(prefix="/v1/lti", tags=["lti"], responses=ERRORS)


@router.get("/deployments", summary="The tenant's LTI platform deployments (admin)", response_model=LtiDeploymentsOut)
def get_deployments(principal: AdminDep, service: ServiceDep) -> dict[str, Any]:
    return {"deployments": service.content.lti_deployments(principal.tenant)[1]}


@router.put(
    "/deployments",
    summary="Set the tenant's LTI platform deployments (admin): Caliper launches from others are refused",
    response_model=LtiDeploymentsOut,
)
def put_deployments(principal: AdminDep, service: ServiceDep, body: LtiDeploymentsIn) -> dict[str, Any]:
    """Replaces the list (the same issuer and deployment id twice is kept once). Every worker
    checks launches against it within ``[serving] sync_s``."""
    unique = {(d.issuer, d.deployment_id): d.model_dump() for d in body.deployments}
    service.content.set_lti_deployments(principal.tenant, list(unique.values()))
    return {"deployments": list(unique.values())}
