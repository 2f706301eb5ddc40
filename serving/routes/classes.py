"""Classes and rosters: a OneRoster import, the tenant's classes, a goal for a class, rotations.

A key linked to a roster teacher (``zpd keys create --user ID``) sees only the classes she
teaches; an admin key, or a teacher key linked to nobody, sees every class of its tenant.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from typing import Annotated, Any

from fastapi import Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from engine.planner.playlist import session_blocks
from engine.roster import Roster, RosterError
from serving.auth import Principal
from serving.deps import ERRORS, AdminDep, ReadDep, ServiceDep, TeacherDep, links_to
from serving.imports import RosterImports
from serving.jsonbody import api_router
from serving.plans import check_date, stored_plan
from serving.responses import (
    ClassesOut,
    ClassGoalOut,
    ClassOut,
    RosterImportJobOut,
    RosterImportOut,
    RosterImportsOut,
    RotationOut,
    StoredRotationOut,
)
from serving.schemas import ID_PATTERN, GoalIn, RotationIn
from serving.service import ApiError, LearnerService
from serving.views import goal_json, rotation_json

router = api_router(prefix="/v1", tags=["classes"], responses=ERRORS)
ClassId = Annotated[str, Path(pattern=ID_PATTERN, description="The class's id (its roster sourcedId)")]
_MAX_ROTATION = 60


@router.post(
    "/rosters",
    summary="Import a OneRoster CSV bundle (a .zip) into the tenant's roster (admin)",
    response_model=RosterImportOut,
    responses={
        202: {
            "model": RosterImportJobOut,
            "description": "Still importing: follow the import at its Location (GET /v1/rosters/imports/{id})",
            "headers": {"Location": {"schema": {"type": "string"}}, "Retry-After": {"schema": {"type": "integer"}}},
        }
    },
    openapi_extra={
        "parameters": [
            {
                "name": "Prefer",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "RFC 7240: `respond-async` answers 202 as soon as the upload is kept; `wait=N` "
                "waits at most N seconds (the server waits at most `roster_wait_s`, 10 by default)",
            }
        ],
        "requestBody": {
            "required": True,
            "description": "A zip of OneRoster 1.1 or 1.2 CSV files: orgs.csv, users.csv, classes.csv, "
            "enrollments.csv; academicSessions.csv, roles.csv and manifest.csv optional (at most "
            "`max_roster_bytes`, 256 MiB by default)",
            "content": {
                media: {"schema": {"type": "string", "format": "binary"}}
                for media in ("application/zip", "application/octet-stream")
            },
        },
    },
)
async def post_roster(request: Request, principal: AdminDep) -> Any:
    """Bulk files replace their records, delta files (per ``manifest.csv``) merge; the same bundle
    twice changes nothing. Students get their roster grade; learning data is never touched.

    The upload is kept in the store before anything else, and the import runs as a job that any
    worker finishes (:mod:`serving.imports`): the answer is the result when the import is done
    within the wait, else 202 with the import to follow. A tenant's imports apply in the order
    they were sent."""
    body = await request.body()
    if not body:
        raise ApiError(422, "invalid_roster", "the body is empty; send the bundle as a zip file", "body")
    imports: RosterImports = request.app.state.imports
    wait, applied = _preferred_wait(request.headers.get("prefer", ""), request.app.state.config.serving.roster_wait_s)
    try:
        job_id = await run_in_threadpool(imports.submit, principal.tenant, body)
    except RosterError as exc:
        raise ApiError(422, "invalid_roster", str(exc), "body") from None
    del body
    deadline = time.monotonic() + wait
    job = await run_in_threadpool(imports.get, principal.tenant, job_id)
    while job is not None and job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        await asyncio.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        job = await run_in_threadpool(imports.get, principal.tenant, job_id)
    if job is not None and job["status"] == "done":
        return {**job["result"], "import_id": job_id}
    if job is not None and job["status"] == "failed":
        error = job["error"]
        raise ApiError(_FAILED.get(error["code"], 500), error["code"], error["message"], error["field"])
    headers = {"Location": f"/v1/rosters/imports/{job_id}", "Retry-After": "2"}
    if applied:
        headers["Preference-Applied"] = applied
    return JSONResponse(jsonable_encoder(RosterImportJobOut(**job) if job else {}), status_code=202, headers=headers)


#: the answer to an import that failed, by its error's code
_FAILED = {"invalid_roster": 422, "busy": 409, "unavailable": 503}


def _preferred_wait(prefer: str, most: float) -> tuple[float, str]:
    """Seconds to wait for an import, and the ``Preference-Applied`` to answer, from a ``Prefer``
    header (RFC 7240): ``respond-async`` waits for nothing, ``wait=N`` at most N seconds."""
    wait, applied = most, ""
    for token in (t.strip().lower() for t in prefer.split(",")):
        name, _, value = (p.strip().strip('"') for p in token.partition("="))
        if name == "respond-async":
            wait, applied = 0.0, "respond-async"
        elif name == "wait" and not applied:
            try:
                wait = min(most, max(0.0, float(value)))
            except ValueError:
                continue
    return wait, applied


@router.get(
    "/rosters/imports",
    summary="The tenant's last roster imports, newest first (admin)",
    response_model=RosterImportsOut,
)
def get_roster_imports(request: Request, principal: AdminDep) -> dict[str, Any]:
    return {"imports": request.app.state.imports.listing(principal.tenant)}


@router.get(
    "/rosters/imports/{import_id}",
    summary="A roster import: its status, progress, and result or error (admin)",
    response_model=RosterImportJobOut,
)
def get_roster_import(
    request: Request,
    principal: AdminDep,
    import_id: Annotated[str, Path(pattern=r"^[0-9a-f]{1,64}$", description="The id POST /v1/rosters answered")],
) -> dict[str, Any]:
    job = request.app.state.imports.get(principal.tenant, import_id)
    if job is None:
        raise ApiError(404, "unknown_import", f"no roster import {import_id!r} in this tenant", "import_id")
    return job


def visible_classes(service: LearnerService, principal: Principal) -> tuple[Roster, list[str]]:
    """The tenant's roster and the ids of the classes this key may see, in id order."""
    roster = service.roster(principal.tenant)
    if principal.teacher:
        return roster, [c for c in roster.classes_taught(principal.teacher) if c in roster.classes]
    return roster, sorted(roster.classes)


def page_after(ids: list[str], after: str, limit: int) -> tuple[list[str], str | None]:
    """One page of sorted ids: at most ``limit`` after the id ``after`` ("" for the first), and
    the ``after`` of the next page (None on the last)."""
    page = ids[bisect.bisect_right(ids, after) :][:limit] if after else ids[:limit]
    return page, page[-1] if page and len(page) == limit and page[-1] != ids[-1] else None


def sees_class(roster: Roster, principal: Principal, class_id: str) -> bool:
    """Whether this key may see the class (a teacher's key: one she teaches)."""
    if class_id not in roster.classes:
        return False
    return not principal.teacher or class_id in roster.classes_taught(principal.teacher)


def _class(service: LearnerService, principal: Principal, class_id: str) -> Roster:
    roster = service.roster(principal.tenant)
    if not sees_class(roster, principal, class_id):
        raise ApiError(404, "unknown_class", f"no class {class_id!r} among the classes this key sees", "class_id")
    return roster


def _summary(roster: Roster, class_id: str) -> dict[str, Any]:
    record = roster.classes[class_id]
    school = record.get("school")
    return {
        "class_id": class_id,
        "title": record["title"],
        "code": record.get("code", ""),
        "school": school,
        "school_name": roster.orgs.get(school, {}).get("name") if school else None,
        "grades": list(record.get("grades", [])),
        "students": len(roster.members(class_id, "student")),
        "teachers": [roster.name_of(t) for t in roster.members(class_id, "teacher")],
    }


@router.get(
    "/classes",
    summary="The classes this key sees, a page at a time",
    response_model=ClassesOut,
    responses=links_to(
        {"class_id": "$response.body#/classes/0/class_id"},
        {
            "members": ("get", "/v1/classes/{class_id}"),
            "rotation": ("get", "/v1/classes/{class_id}/rotation"),
            "goal": ("put", "/v1/classes/{class_id}/goal"),
        },
    ),
)
def get_classes(
    principal: TeacherDep,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    after: Annotated[
        str, Query(max_length=256, description="Only classes whose id sorts after this one: the previous page's `next`")
    ] = "",
) -> dict[str, Any]:
    """Classes in id order (a district has thousands)."""
    roster, ids = visible_classes(service, principal)
    page, following = page_after(ids, after, limit)
    return {"total": len(ids), "classes": [_summary(roster, c) for c in page], "next": following}


@router.get("/classes/{class_id}", summary="A class with its teachers and students", response_model=ClassOut)
def get_class(class_id: ClassId, principal: TeacherDep, service: ServiceDep) -> dict[str, Any]:
    roster = _class(service, principal, class_id)
    members = [
        {
            "learner_id": user,
            "name": roster.name_of(user),
            "role": roster.users[user].get("role", ""),
            "grade": roster.grade_of(user),
        }
        for user in roster.members(class_id)
    ]
    members.sort(key=lambda m: (m["role"] != "teacher", m["name"].lower(), m["learner_id"]))
    return {**_summary(roster, class_id), "members": members}


@router.put(
    "/classes/{class_id}/goal", summary="Set one goal for every student of a class", response_model=ClassGoalOut
)
def put_class_goal(class_id: ClassId, body: GoalIn, principal: TeacherDep, service: ServiceDep) -> dict[str, Any]:
    roster = _class(service, principal, class_id)
    goal = service.goal(principal.tenant, body)
    students = roster.members(class_id, "student")
    service.set_goals(principal.tenant, students, goal)
    return {"class_id": class_id, "goal": goal_json(goal), "learners": students}


@router.get(
    "/classes/{class_id}/rotation",
    summary="The rotation `zpd plan-batch` planned for a school day",
    response_model=StoredRotationOut,
)
def get_stored_rotation(
    class_id: ClassId,
    date: Annotated[
        str,
        Query(
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            description="the school day, YYYY-MM-DD",
            json_schema_extra={"format": "date"},
        ),
    ],
    principal: TeacherDep,
    service: ServiceDep,
) -> dict[str, Any]:
    _class(service, principal, class_id)
    try:
        day = check_date(date)
    except ValueError as exc:
        raise ApiError(422, "invalid_date", str(exc), "query.date") from None
    plan = stored_plan(service.store, principal.tenant, class_id, day)
    if plan is None:
        raise ApiError(404, "no_plan", f"no plan for class {class_id!r} on {day}: run zpd plan-batch", "query.date")
    planned = {g["item"]["id"] for g in plan["groups"]}
    for playlist in plan["playlists"].values():
        for activity in playlist["activities"]:
            planned.add(activity["item"]["id"])
            planned.update(alt["item"]["id"] for alt in activity["alternatives"])
    catalog = service.catalog(principal.tenant)
    withdrawn = sorted(i for i in planned if i in catalog and catalog[i].withdrawn)
    return {**plan, "withdrawn_since": withdrawn}


@router.post(
    "/classes/{class_id}/rotation",
    summary="Playlists for a class plus the teacher's small groups",
    response_model=RotationOut,
)
def post_rotation(class_id: ClassId, body: RotationIn, principal: ReadDep, service: ServiceDep) -> dict[str, Any]:
    """Without ``learners``, the class's rostered students; with them, those learners (every one
    must belong to the caller's tenant; an unknown learner is 404, named)."""
    roster = service.roster(principal.tenant)
    learners = body.learners
    if class_id in roster.classes or learners is None:
        _class(service, principal, class_id)  # a rostered class: only one the key sees
    if learners is None:
        learners = roster.members(class_id, "student")
        if not learners:
            raise ApiError(422, "empty_class", f"class {class_id!r} has no students", "class_id")
        if len(learners) > _MAX_ROTATION:
            raise ApiError(
                422,
                "class_too_large",
                f"class {class_id!r} has {len(learners)} students; a rotation plans at most {_MAX_ROTATION}: "
                "send the learners of each room in 'learners'",
                "class_id",
            )
    blocks = session_blocks(body.session_minutes, body.block_minutes)
    if body.blocks_done >= blocks:
        raise ApiError(
            422,
            "invalid_blocks_done",
            f"blocks_done is {body.blocks_done}, but the session has {blocks} block(s): 0 to {blocks - 1}",
            "blocks_done",
        )
    rotation, versions = service.rotation(
        principal.tenant,
        learners,
        session_minutes=body.session_minutes,
        block_minutes=body.block_minutes,
        capacities={modality.value: seats for modality, seats in body.capacities.items()},
        group_capacity=body.group_capacity,
        teachers=body.teachers,
        modalities=body.modalities,
        unseen=body.learners is None,
        entry_diagnostic=body.entry_diagnostic,
        blocks_done=body.blocks_done,
    )
    return {
        "class_id": class_id,
        "model_version": versions[0] if len(versions) == 1 else versions,
        **rotation_json(rotation),
    }
