from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from engine.planner.playlist import plan_rotation
from serving.deps import ERRORS, ReadDep, ServiceDep
from serving.responses import RotationOut
from serving.schemas import ID_PATTERN, RotationIn
from serving.service import ApiError
from serving.views import rotation_json

router = APIRouter(prefix="/v1/classes", tags=["classes"], responses=ERRORS)


@router.post(
    "/{class_id}/rotation", summary="Playlists for a class plus the teacher's small groups", response_model=RotationOut
)
def post_rotation(
    class_id: Annotated[str, Path(pattern=ID_PATTERN)], body: RotationIn, principal: ReadDep, service: ServiceDep
) -> dict[str, Any]:
    """Every learner must belong to the caller's tenant (an unknown learner is 404, named)."""
    contexts = {}
    versions = set()
    for i, learner_id in enumerate(dict.fromkeys(body.learners)):
        try:
            view = service.load(principal.tenant, learner_id)
        except ApiError as exc:
            raise ApiError(exc.status, exc.code, exc.message, f"learners[{i}]") from None
        versions.add(view.core.version)
        contexts[learner_id] = service.context(view, modalities=body.modalities)
    rotation = plan_rotation(
        contexts,
        body.session_minutes,
        min(body.block_minutes, body.session_minutes),  # a block longer than the session is the session
        {modality.value: seats for modality, seats in body.capacities.items()},
        body.group_capacity,
        body.teachers,
    )
    return {
        "class_id": class_id,
        "model_version": sorted(versions)[0] if len(versions) == 1 else sorted(versions),
        **rotation_json(rotation),
    }
