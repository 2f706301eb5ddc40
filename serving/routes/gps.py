"""How the tenant's GPS counts a route: the overhead and range it uses, and where they come from."""

from __future__ import annotations

from typing import Any

from serving.deps import ERRORS, ReadDep, ServiceDep
from serving.jsonbody import api_router
from serving.responses import GpsOut

router = api_router(prefix="/v1/gps", tags=["gps"], responses=ERRORS)


@router.get("", summary="How the tenant's GPS counts a route to a goal", response_model=GpsOut)
def get_gps(principal: ReadDep, service: ServiceDep) -> dict[str, Any]:
    """The route overhead and spread the tenant's GPS counts: its own, measured by the nightly
    plans (`zpd plan-batch`) from students who reached their goal once there are enough of them,
    else the deployment's configured ones; with how many arrivals were measured at the last run."""
    return service.gps_calibration(principal.tenant)
