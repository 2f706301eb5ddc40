from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.routing import APIRoute

from engine.learner import PlacementStatus
from engine.planner.context import Overrides
from engine.planner.planner import recommend
from engine.planner.playlist import plan_playlist
from serving.deps import ERRORS, AdminDep, IngestDep, ReadDep, ServiceDep, TeacherDep, admin_work, links_to
from serving.jsonbody import api_router
from serving.responses import (
    DeletedOut,
    ErasedOut,
    GoalSetOut,
    LearnerOut,
    LearnersOut,
    NextOut,
    OverridesSetOut,
    PlacementOut,
    PlaylistOut,
    ProfileOut,
)
from serving.schemas import (
    GRADE_PATTERN,
    ID_PATTERN,
    ErasureIn,
    GoalIn,
    IsoDateTime,
    LearnerIn,
    OverridesDelete,
    OverridesIn,
    PlacementAnswerIn,
    PlaylistIn,
)
from serving.service import ApiError, LearnerView
from serving.stores.base import StoredEvent, chronological, content_hash
from serving.views import (
    empty_json,
    flag_json,
    goal_json,
    iso,
    item_json,
    overrides_json,
    playlist_json,
    recommendation_json,
    status_json,
)

router = api_router(prefix="/v1/learners", tags=["learners"], responses=ERRORS)
erasures = api_router(prefix="/v1/erasures", tags=["learners"], responses=ERRORS)
LearnerId = Annotated[str, Path(pattern=ID_PATTERN, description="Pseudonymous learner id")]


@router.post("/{learner_id}", summary="Create a learner or update interests and grade", response_model=LearnerOut)
def put_learner(learner_id: LearnerId, body: LearnerIn, principal: IngestDep, service: ServiceDep) -> dict[str, Any]:
    def change(view: LearnerView) -> dict[str, Any]:
        view.meta.interests = tuple(dict.fromkeys(t.strip().lower() for t in body.interests if t.strip()))
        if body.grade is not None and body.grade != view.meta.grade:
            service.set_grade(view, body.grade)
        return {"learner_id": learner_id, "interests": list(view.meta.interests), "grade": view.meta.grade}

    return service.mutate(principal.tenant, learner_id, change, create=True)


GradeHint = Annotated[
    str | None,
    Query(
        pattern=GRADE_PATTERN,
        description=(
            "The learner's grade (K, 1-12, HS): the hint of the starting belief of a learner the server has not "
            "seen yet (a stored grade wins)"
        ),
    ),
]


@router.get("/{learner_id}/next", summary="The next activities for a learner", response_model=NextOut)
async def get_next(
    learner_id: LearnerId,
    principal: ReadDep,
    service: ServiceDep,
    n: Annotated[int, Query(ge=1, le=20)] = 1,
    alternatives: Annotated[int, Query(ge=0, le=5)] = 2,
    grade: GradeHint = None,
) -> dict[str, Any]:
    """A learner the server has never seen gets recommendations too (from the starting belief of
    ``grade`` when given, else the model's prior); nothing is stored until they answer.

    The hot path runs on the event loop, not in a worker thread: the work is CPU-bound (the GIL
    serialises it anyway) and a read of one learner record is short, so thread hand-overs would
    be pure overhead. It is served by :class:`serving.deps.LeanRoute` (listed in :data:`LEAN`):
    the answer is written as built, in the shape of ``NextOut``."""
    view = service.load(principal.tenant, learner_id, unseen=True, grade=grade)
    result = recommend(service.context(view), n=n, k_alternatives=alternatives)
    return {
        "learner_id": learner_id,
        "model_version": view.core.model_version,
        "recommendations": [recommendation_json(r) for r in result.recommendations],
        "flags": [flag_json(f) for f in result.flags],
        "empty": empty_json(result.why_empty),
    }


#: routes served by :class:`serving.deps.LeanRoute` (the hot path)
LEAN = [route for route in router.routes if isinstance(route, APIRoute) and route.endpoint is get_next]


@router.post("/{learner_id}/playlist", summary="A time-boxed Individual Rotation playlist", response_model=PlaylistOut)
def post_playlist(
    learner_id: LearnerId, body: PlaylistIn, principal: ReadDep, service: ServiceDep, grade: GradeHint = None
) -> dict[str, Any]:
    view = service.load(principal.tenant, learner_id, unseen=True, grade=grade)
    ctx = service.context(
        view,
        goal=service.goal(principal.tenant, body.goal),
        modalities=body.modalities,
        entry_diagnostic=body.entry_diagnostic,
    )
    playlist = plan_playlist(ctx, body.session_minutes, body.alternatives)
    return {"learner_id": learner_id, "model_version": view.core.model_version, **playlist_json(playlist)}


@router.get(
    "/{learner_id}/profile",
    summary="Mastery per standard, goal route, time to goal, recent evidence",
    response_model=ProfileOut,
)
def get_profile(
    learner_id: LearnerId,
    principal: ReadDep,
    service: ServiceDep,
    recent: Annotated[int, Query(ge=0, le=200)] = 20,
    standards: Annotated[
        str | None, Query(description="comma-separated codes: only these standards (and their parts)")
    ] = None,
    grade: Annotated[
        str | None, Query(max_length=8, description="only the standards of this grade (K, 1-8, HS)")
    ] = None,
    changed_since: Annotated[
        IsoDateTime | None, Query(description="ISO-8601: only evidence (and the standards it touched) since then")
    ] = None,
) -> dict[str, Any]:
    view = service.load(principal.tenant, learner_id)
    profile = view.core.profile(view.learner, service.clock())
    meta = view.meta
    graph = service.graph(principal.tenant)
    wanted: set[str] | None = None
    if standards is not None:
        codes = [c.strip() for c in standards.split(",") if c.strip()]
        resolved = [service.resolve_standard(principal.tenant, c, f"standards[{i}]") for i, c in enumerate(codes)]
        wanted = {u for code in resolved for u in (code, *graph.leaves(code))}
    since = changed_since.timestamp() if changed_since is not None else None
    # in the order things happened (an answer synced late sits where it happened, as it counts)
    log = chronological(service.store.events(principal.tenant, learner_id)) if (recent or since is not None) else []
    catalog = view.core.index.catalog
    if since is not None:
        log = [e for e in log if e.time >= since]
        touched = {
            u
            for e in log
            for code in catalog.standards_of(e.item_id, e.standards)
            if code in graph.standards
            for u in (code, *graph.leaves(code))
        }
        wanted = touched if wanted is None else wanted & touched
    mastery = {
        code: {"p": m.p, "uncertainty": m.uncertainty, "evidence": m.evidence, "status": m.status}
        for code, m in profile.mastery.items()
        if (wanted is None or code in wanted)
        and (grade is None or graph.standards[code].grade == grade.strip().upper())
    }
    events = log[-recent:] if recent else []
    return {
        "learner_id": learner_id,
        "model_version": view.core.model_version,
        "interests": list(meta.interests),
        "grade": meta.grade,
        "level": profile.level,
        "goal": goal_json(meta.goal),
        "overrides": overrides_json(meta.overrides),
        "gps": status_json(profile.gps),
        "mastered": profile.mastered,
        "placement": None if meta.placement is None else meta.placement.to_json(),
        "mastery": mastery,
        "recent_evidence": [
            {
                "id": e.id,
                "item_id": e.item_id,
                "standards": list(catalog.standards_of(e.item_id, e.standards)),
                "correct": e.correct,
                "timestamp": iso(e.time),
                "source": e.source,
                "kind": e.kind,
            }
            for e in reversed(events)
        ],
        "events": view.record.event_count,
        "updated": iso(view.record.updated) if view.record.updated else None,
    }


@router.get(
    "",
    summary="The tenant's learners, a page at a time",
    response_model=LearnersOut,
    responses=links_to(
        {"learner_id": "$response.body#/learners/0/learner_id"},
        {
            "profile": ("get", "/v1/learners/{learner_id}/profile"),
            "next": ("get", "/v1/learners/{learner_id}/next"),
            "playlist": ("post", "/v1/learners/{learner_id}/playlist"),
            "goal": ("put", "/v1/learners/{learner_id}/goal"),
            "overrides": ("post", "/v1/learners/{learner_id}/overrides"),
            "placement": ("post", "/v1/learners/{learner_id}/placement"),
            "erase": ("delete", "/v1/learners/{learner_id}"),
        },
    ),
)
def get_learners(
    principal: ReadDep,
    service: ServiceDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    after: Annotated[
        str,
        Query(
            max_length=256,
            description="Only learners whose id sorts after this one: the previous page's `next` (paging by it "
            "costs the page; by `offset`, everything before it too)",
        ),
    ] = "",
) -> dict[str, Any]:
    """Learners in id order (those with a record: an answer, a grade, a goal or overrides)."""
    mine = service.scope_of(principal)
    if mine is None:
        page, total = service.store.learner_page(principal.tenant, limit, after=after, offset=offset)
    else:  # a teacher's key lists her own students
        stored = service.store.get_many(principal.tenant, sorted(mine))
        ids = sorted(stored)
        total = len(ids)
        page = [learner for learner in ids if learner > after][offset : offset + limit]
    records = service.store.get_many(principal.tenant, page)
    learners = []
    for learner in page:
        record = records.get(learner)
        if record is None:  # erased meanwhile
            continue
        learners.append(
            {
                "learner_id": learner,
                "grade": record.meta.get("grade"),
                "events": record.event_count,
                "updated": iso(record.updated) if record.updated else None,
            }
        )
    return {"total": total, "learners": learners, "next": page[-1] if len(page) == limit else None}


@router.put("/{learner_id}/goal", summary="Set the learner's goal (teacher)", response_model=GoalSetOut)
def put_goal(learner_id: LearnerId, body: GoalIn, principal: TeacherDep, service: ServiceDep) -> dict[str, Any]:
    goal = service.goal(principal.tenant, body)
    service.set_goal(principal.tenant, learner_id, goal)
    return {"learner_id": learner_id, "goal": goal_json(goal)}


@router.post(
    "/{learner_id}/overrides",
    summary="Pin standards or items, exclude items, lock the goal (teacher)",
    response_model=OverridesSetOut,
)
def post_overrides(
    learner_id: LearnerId, body: OverridesIn, principal: TeacherDep, service: ServiceDep
) -> dict[str, Any]:
    pins = [
        service.resolve_standard(principal.tenant, c, f"pin_standards[{i}]") for i, c in enumerate(body.pin_standards)
    ]
    for field, ids in (("pin_items", body.pin_items), ("exclude_items", body.exclude_items)):
        for i, item_id in enumerate(ids):
            service.item(principal.tenant, item_id, f"{field}[{i}]", offered=field == "pin_items")

    overrides = service.add_overrides(
        principal.tenant,
        learner_id,
        pin_standards=pins,
        pin_items=body.pin_items,
        exclude_items=body.exclude_items,
        lock_goal=body.lock_goal,
    )
    return {"learner_id": learner_id, "overrides": overrides_json(overrides)}


@router.delete("/{learner_id}/overrides", summary="Remove overrides (teacher)", response_model=OverridesSetOut)
def delete_overrides(
    learner_id: LearnerId, principal: TeacherDep, service: ServiceDep, body: OverridesDelete | None = None
) -> dict[str, Any]:
    body = body or OverridesDelete(all=True)
    graph = service.graph(principal.tenant)
    unpin = {graph.resolve(c) if c in graph else c for c in body.pin_standards}

    def change(view: LearnerView) -> dict[str, Any]:
        o = view.meta.overrides
        if body.all:
            view.meta.overrides = Overrides()
        else:
            view.meta.overrides = Overrides(
                tuple(c for c in o.pinned_standards if c not in unpin),
                tuple(i for i in o.pinned_items if i not in set(body.pin_items)),
                o.excluded_items - frozenset(body.exclude_items),
                o.goal_locked and not body.lock_goal,
            )
        return {"learner_id": learner_id, "overrides": overrides_json(view.meta.overrides)}

    return service.mutate(principal.tenant, learner_id, change)


@router.delete("/{learner_id}", summary="Erase every trace of a learner (admin)", response_model=DeletedOut)
@admin_work
def delete_learner(learner_id: LearnerId, principal: AdminDep, service: ServiceDep) -> dict[str, Any]:
    if not service.delete_learner(principal.tenant, learner_id):
        raise ApiError(404, "unknown_learner", f"unknown learner {learner_id!r}", "learner_id")
    return {"learner_id": learner_id, "deleted": True}


@erasures.post("", summary="Erase every trace of many learners at once (admin)", response_model=ErasedOut)
@admin_work
def post_erasures(body: ErasureIn, principal: AdminDep, service: ServiceDep) -> dict[str, Any]:
    """What ``DELETE /v1/learners/{id}`` does for each, with one roster change and one rewrite of
    the store's files for all of them: the way to erase the students who left at the end of a
    year. Ids that name nobody are listed in ``unknown``."""
    erased = service.delete_learners(principal.tenant, body.learner_ids)
    done = set(erased)
    return {"erased": erased, "unknown": [i for i in dict.fromkeys(body.learner_ids) if i not in done]}


# ---------------------------------------------------------------------------- placement
def _placement_json(learner_id: str, status: PlacementStatus) -> dict[str, Any]:
    question = None
    if not status.finished and status.question is not None:
        question = {"standard": status.question, "item": item_json(status.item) if status.item else None}
    return {
        "learner_id": learner_id,
        "asked": status.asked,
        "max_questions": status.max_questions,
        "finished": status.finished,
        "question": question,
        "grade_band": status.grade_band,
        "confidence": round(status.confidence, 3),
        "mastered": status.mastered,
    }


#: what a placement answer links to: the answer to its question (right, then wrong), with the
#: standard and the item the answer names as its next question, so clients (and the fuzzing of
#: the schema) can walk a diagnostic to its end
_NEXT_ANSWER = links_to(
    {"learner_id": "$response.body#/learner_id"},
    {
        "answer": ("post", "/v1/learners/{learner_id}/placement/answers"),
        "answer_wrong": ("post", "/v1/learners/{learner_id}/placement/answers"),
    },
    {
        name: {
            "standard": "$response.body#/question/standard",
            "correct": correct,
            "item_id": "$response.body#/question/item/id",
        }
        for name, correct in (("answer", True), ("answer_wrong", False))
    },
)


@router.post(
    "/{learner_id}/placement",
    summary="Start (or resume) the entry diagnostic",
    response_model=PlacementOut,
    responses=_NEXT_ANSWER,
)
def start_placement(
    learner_id: LearnerId, principal: IngestDep, service: ServiceDep, restart: bool = False
) -> dict[str, Any]:
    def change(view: LearnerView) -> dict[str, Any]:
        status = view.core.start_placement(view.learner, restart=restart, now=service.clock())
        return _placement_json(learner_id, status)

    return service.mutate(principal.tenant, learner_id, change, create=True)


@router.post(
    "/{learner_id}/placement/answers",
    summary="Answer the current placement question",
    response_model=PlacementOut,
    responses=_NEXT_ANSWER,
)
def answer_placement(
    learner_id: LearnerId, body: PlacementAnswerIn, principal: IngestDep, service: ServiceDep
) -> dict[str, Any]:
    unit = service.resolve_standard(principal.tenant, body.standard, "standard")
    item = service.item(principal.tenant, body.item_id, "item_id") if body.item_id else None

    def change(view: LearnerView) -> tuple[dict[str, Any], StoredEvent]:
        core, learner = view.core, view.learner
        status = core.placement_status(learner)
        if not status.active:
            raise ApiError(
                409, "no_placement", "start the placement first: POST /v1/learners/{id}/placement", "standard"
            )
        if status.finished or status.question is None:
            raise ApiError(
                409, "placement_finished", "the placement is finished; restart it to take it again", "standard"
            )
        if unit != status.question:
            raise ApiError(
                409, "unexpected_answer", f"the current question is about {status.question}, not {unit}", "standard"
            )
        question_item = item or status.item
        if question_item is None:
            raise ApiError(422, "no_item", f"no item asks about {unit}; name the item answered", "item_id")
        now = service.clock()
        # numbered by the log's length, which only grows (answers folded go down with a void)
        event_id = body.event_id or f"placement-{view.record.event_count + 1}-{int(now * 1000)}"
        # answered now, and after everything folded (the diagnostic's start and answers timed by a
        # device whose clock is ahead of the server's): a question never counts before its diagnostic
        at = max(now, learner.meta.last_time if learner.meta.last_time is not None else now)
        stored = StoredEvent(
            event_id,
            question_item.id,
            question_item.standards,
            float(body.correct),
            at,
            now,
            content_hash({"placement": unit, "correct": body.correct, "id": event_id}),
            "placement",
            unit,
        )
        service.fold(view, [stored])
        return _placement_json(learner_id, core.placement_status(view.learner)), stored

    return service.mutate_with_event(principal.tenant, learner_id, change)
