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
from serving.service import ApiError

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
    checks launches against it within ``[serving] sync_s``. Where learners are named by their
    LTI user id (``[caliper] learner_identifier = "LtiUserId"``), the deployments are of one
    issuer: LTI's user id is unique only within its issuer, so two platforms' users of the same id
    would be one learner."""
    if service.caliper.learner_identifier == "LtiUserId":
        first = body.deployments[0].issuer if body.deployments else None
        for i, d in enumerate(body.deployments):
            if d.issuer != first:
                raise ApiError(
                    422,
                    "issuers_share_user_ids",
                    f"is {d.issuer!r}, but deployments[0] is of {first!r}: learners here are named by their LTI user "
                    "id, which is unique only within its issuer (two platforms' users of the same id would be one "
                    "learner); register each platform's deployments under a tenant of its own",
                    f"deployments[{i}].issuer",
                )
    unique = {(d.issuer, d.deployment_id): d.model_dump() for d in body.deployments}
    service.content.set_lti_deployments(principal.tenant, list(unique.values()))
    return {"deployments": list(unique.values())}
