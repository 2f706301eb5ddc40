from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from engine.placement import Placement
from engine.planner.gps import goal_status
from engine.planner.planner import Goal, recommend
from engine.planner.playlist import plan_playlist
from engine.planner.progress import mark_mastered
from models.base import Event
from serving.deps import AdminDep, IngestDep, ReadDep, ServiceDep, TeacherDep
from serving.schemas import (
    ID_PATTERN,
    GoalIn,
    LearnerIn,
    OverridesDelete,
    OverridesIn,
    PlacementAnswerIn,
    PlaylistIn,
)
from serving.service import ApiError, LearnerView
from serving.stores.base import StoredEvent, content_hash
from serving.views import flag_json, item_json, playlist_json, recommendation_json, status_json

router = APIRouter(prefix="/v1/learners", tags=["learners"])
LearnerId = Annotated[str, Path(pattern=ID_PATTERN, description="Pseudonymous learner id")]


def _goal(service, body: GoalIn | None) -> Goal | None:
    if body is None:
        return None
    codes = service.check_goal(body.standards)
    return Goal(tuple(codes), body.date.timestamp() if body.date else None)


@router.post("/{learner_id}", summary="Create a learner or update interests and grade")
def put_learner(learner_id: LearnerId, body: LearnerIn, principal: IngestDep, service: ServiceDep) -> dict[str, Any]:
    def change(view: LearnerView) -> dict[str, Any]:
        view.meta["interests"] = [t.strip().lower() for t in body.interests if t.strip()]
        if body.grade is not None:
            view.meta["grade"] = body.grade
        return {"learner_id": learner_id, "interests": view.meta["interests"], "grade": view.meta.get("grade")}

    return service.mutate(principal.tenant, learner_id, change, create=True)


@router.get("/{learner_id}/next", summary="The next activities for a learner")
def get_next(learner_id: LearnerId, principal: ReadDep, service: ServiceDep,
             n: Annotated[int, Query(ge=1, le=20)] = 1,
             alternatives: Annotated[int, Query(ge=0, le=5)] = 2) -> dict[str, Any]:
    view = service.load(principal.tenant, learner_id)
    result = recommend(service.context(view), n=n, k_alternatives=alternatives)
    return {"learner_id": learner_id, "model_version": view.loaded.version,
            "recommendations": [recommendation_json(r) for r in result.recommendations],
            "flags": [flag_json(f) for f in result.flags]}


@router.post("/{learner_id}/playlist", summary="A time-boxed Individual Rotation playlist")
def post_playlist(learner_id: LearnerId, body: PlaylistIn, principal: ReadDep, service: ServiceDep) -> dict[str, Any]:
    view = service.load(principal.tenant, learner_id)
    ctx = service.context(view, goal=_goal(service, body.goal), modalities=body.modalities)
    playlist = plan_playlist(ctx, body.session_minutes, body.alternatives)
    return {"learner_id": learner_id, "model_version": view.loaded.version, **playlist_json(playlist)}


@router.get("/{learner_id}/profile", summary="Mastery per standard, goal route, time to goal, recent evidence")
def get_profile(learner_id: LearnerId, principal: ReadDep, service: ServiceDep,
                recent: Annotated[int, Query(ge=0, le=200)] = 20) -> dict[str, Any]:
    view = service.load(principal.tenant, learner_id)
    ctx = service.context(view)
    graph = service.engine.graph
    mastery = {}
    for code, p in ctx.mastery.items():
        if code not in graph.standards:
            continue
        units = graph.leaves(code)
        evidence = sum(view.progress.get(u).attempts for u in units)
        status = ("mastered" if all(view.progress.get(u).mastered for u in units)
                  else "in_progress" if evidence else "not_started")
        mastery[code] = {"p": round(p, 4), "uncertainty": round((p * (1 - p) / (evidence + 3)) ** 0.5, 4),
                         "evidence": evidence, "status": status}
    events = service.store.events(principal.tenant, learner_id)[-recent:] if recent else []
    return {
        "learner_id": learner_id, "model_version": view.loaded.version,
        "interests": view.meta.get("interests", []), "grade": view.meta.get("grade"),
        "goal": view.meta.get("goal"), "overrides": view.meta.get("overrides") or {},
        "gps": status_json(goal_status(ctx)),
        "mastered": sorted(view.progress.mastered, key=graph.order_of),
        "placement": view.meta.get("placement_result"),
        "mastery": mastery,
        "recent_evidence": [{"id": e.id, "item_id": e.item_id, "standards": list(e.standards), "correct": e.correct,
                             "timestamp": e.timestamp, "source": e.source} for e in reversed(events)],
        "events": view.record.event_count,
    }


@router.put("/{learner_id}/goal", summary="Set the learner's goal (teacher)")
def put_goal(learner_id: LearnerId, body: GoalIn, principal: TeacherDep, service: ServiceDep) -> dict[str, Any]:
    codes = service.check_goal(body.standards)

    def change(view: LearnerView) -> dict[str, Any]:
        view.meta["goal"] = {"standards": codes, "date": body.date.timestamp() if body.date else None}
        return {"learner_id": learner_id, "goal": view.meta["goal"]}

    return service.mutate(principal.tenant, learner_id, change, create=True)


@router.post("/{learner_id}/overrides", summary="Pin standards or items, exclude items, lock the goal (teacher)")
def post_overrides(learner_id: LearnerId, body: OverridesIn, principal: TeacherDep, service: ServiceDep) -> dict[str, Any]:
    pins = [service.engine.resolve_standard(c, f"pin_standards[{i}]") for i, c in enumerate(body.pin_standards)]
    for field, ids in (("pin_items", body.pin_items), ("exclude_items", body.exclude_items)):
        for i, item_id in enumerate(ids):
            service.engine.item(item_id, f"{field}[{i}]")

    def change(view: LearnerView) -> dict[str, Any]:
        o = view.meta.setdefault("overrides", {})
        for key, values in (("pin_standards", pins), ("pin_items", body.pin_items), ("exclude_items", body.exclude_items)):
            o[key] = list(dict.fromkeys([*o.get(key, []), *values]))
        if body.lock_goal is not None:
            o["lock_goal"] = body.lock_goal
        return {"learner_id": learner_id, "overrides": o}

    return service.mutate(principal.tenant, learner_id, change)


@router.delete("/{learner_id}/overrides", summary="Remove overrides (teacher)")
def delete_overrides(learner_id: LearnerId, principal: TeacherDep, service: ServiceDep,
                     body: OverridesDelete | None = None) -> dict[str, Any]:
    body = body or OverridesDelete(all=True)

    def change(view: LearnerView) -> dict[str, Any]:
        if body.all:
            view.meta["overrides"] = {}
        else:
            o = view.meta.setdefault("overrides", {})
            for key, values in (("pin_standards", [service.engine.graph.resolve(c) if c in service.engine.graph else c
                                                   for c in body.pin_standards]),
                                ("pin_items", body.pin_items), ("exclude_items", body.exclude_items)):
                o[key] = [v for v in o.get(key, []) if v not in set(values)]
            if body.lock_goal:
                o["lock_goal"] = False
        return {"learner_id": learner_id, "overrides": view.meta["overrides"]}

    return service.mutate(principal.tenant, learner_id, change)


@router.delete("/{learner_id}", summary="Erase every trace of a learner (admin)")
def delete_learner(learner_id: LearnerId, principal: AdminDep, service: ServiceDep) -> dict[str, Any]:
    if not service.store.delete_learner(principal.tenant, learner_id):
        raise ApiError(404, "unknown_learner", f"unknown learner {learner_id!r}", "learner_id")
    return {"learner_id": learner_id, "deleted": True}


# ---------------------------------------------------------------------------- placement
def _question(service, placement: Placement) -> dict[str, Any] | None:
    unit = placement.next_question()
    if unit is None:
        return None
    item = placement.item_for(unit)
    return {"standard": unit, "item": item_json(item) if item else None}


def _placement_json(service, view: LearnerView, placement: Placement) -> dict[str, Any]:
    result = placement.result()
    return {"learner_id": view.record.learner_id, "asked": len(placement.answers),
            "max_questions": placement.config.max_questions, "finished": result.finished,
            "question": None if result.finished else _question(service, placement),
            "grade_band": result.grade_band, "confidence": round(result.confidence, 3),
            "mastered": result.mastered if result.finished else None}


@router.post("/{learner_id}/placement", summary="Start (or resume) the entry diagnostic")
def start_placement(learner_id: LearnerId, principal: IngestDep, service: ServiceDep,
                    restart: bool = False) -> dict[str, Any]:
    def change(view: LearnerView) -> dict[str, Any]:
        if restart or not view.meta.get("placement"):
            seed = int(hashlib.sha256(f"{view.record.tenant}/{learner_id}".encode()).hexdigest()[:8], 16)
            hint = _grade_hint(view.meta.get("grade"))
            view.meta["placement"] = {"seed": seed, "grade_hint": hint, "answers": []}
        placement = Placement.from_json(service.engine.index, view.meta["placement"], service.engine.placement)
        return _placement_json(service, view, placement)

    return service.mutate(principal.tenant, learner_id, change, create=True)


def _grade_hint(grade: str | None) -> float | None:
    if grade is None:
        return None
    label = grade.strip().upper()
    return 0.5 if label in ("K", "KG") else 9.5 if label == "HS" else float(label) + 0.5 if label.isdigit() else None


@router.post("/{learner_id}/placement/answers", summary="Answer the current placement question")
def answer_placement(learner_id: LearnerId, body: PlacementAnswerIn, principal: IngestDep,
                     service: ServiceDep) -> dict[str, Any]:
    unit = service.engine.resolve_standard(body.standard, "standard")
    item = service.engine.item(body.item_id, "item_id") if body.item_id else None

    def change(view: LearnerView) -> tuple[dict[str, Any], StoredEvent]:
        if not view.meta.get("placement"):
            raise ApiError(409, "no_placement", "start the placement first: POST /v1/learners/{id}/placement", "standard")
        placement = Placement.from_json(service.engine.index, view.meta["placement"], service.engine.placement)
        if placement.finished:
            raise ApiError(409, "placement_finished", "the placement is finished; restart it to take it again", "standard")
        expected = placement.next_question()
        if unit != expected:
            raise ApiError(422, "unexpected_answer", f"the current question is about {expected}, not {unit}", "standard")
        question_item = item or placement.item_for(unit)
        placement.answer(unit, body.correct)
        view.meta["placement"] = placement.to_json()
        model = view.loaded.model
        now = service.clock()
        event_id = body.event_id or f"placement-{len(placement.answers)}-{int(now * 1000)}"
        view.state = model.update(view.state, Event(question_item.id, question_item.standards, float(body.correct), now))
        stored = StoredEvent(event_id, question_item.id, question_item.standards, float(body.correct), now, now,
                             content_hash({"placement": unit, "correct": body.correct, "id": event_id}), "placement")
        if placement.finished:
            result = placement.result()
            view.meta["placement_result"] = {"mastery": result.mastery, "mastered": result.mastered,
                                             "grade_band": result.grade_band, "confidence": result.confidence,
                                             "questions": result.questions, "after_event": event_id}
            mark_mastered(view.progress, result.mastered, now)
            if hasattr(model, "state_with_priors"):
                view.state = model.state_with_priors(result.mastery, view.state)
        return _placement_json(service, view, placement), stored

    return service.mutate_with_event(principal.tenant, learner_id, change)
