"""JSON shapes of the API's answers (plain dicts, built from engine results)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from engine.catalog import Item
from engine.planner.context import Goal, Overrides, TeacherFlag
from engine.planner.gps import GoalStatus, OwnPace
from engine.planner.planner import Recommendation
from engine.planner.playlist import Activity, Playlist, Rotation, SmallGroup
from engine.planner.scoring import Candidate

__all__ = [
    "activity_json",
    "empty_json",
    "flag_json",
    "goal_json",
    "iso",
    "item_json",
    "overrides_json",
    "playlist_json",
    "recommendation_json",
    "rotation_json",
    "status_json",
]


def iso(ts: float | None) -> datetime | None:
    """An epoch time as an aware UTC datetime (the API answers ISO-8601)."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def goal_json(goal: Goal | None) -> dict[str, Any] | None:
    return None if goal is None else {"standards": list(goal.standards), "date": iso(goal.date)}


def overrides_json(o: Overrides) -> dict[str, Any]:
    return {
        "pin_standards": list(o.pinned_standards),
        "pin_items": list(o.pinned_items),
        "exclude_items": sorted(o.excluded_items),
        "lock_goal": o.goal_locked,
    }


def item_json(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "standards": list(item.standards),
        "modality": item.modality.value,
        "duration_minutes": float(item.duration_minutes),  # a catalog may hold 15 for 15.0
        "difficulty": None if item.difficulty is None else float(item.difficulty),
        "url": item.url,
        "tags": list(item.tags),
        "language": item.language,
        "source": item.source,
        "mastery_check": item.mastery_check,
        "withdrawn": item.withdrawn,
    }


def _alt(c: Candidate) -> dict[str, Any]:
    return {
        "item": item_json(c.item),
        "standard": c.standard,
        "p_success": round(c.p_success, 4),
        "score": round(c.score, 4),
    }


def recommendation_json(rec: Recommendation) -> dict[str, Any]:
    return {
        "item": item_json(rec.item),
        "standard": rec.standard,
        "kind": rec.kind,
        "p_success": round(rec.p_success, 4),
        "score": round(rec.score, 4),
        "components": {k: round(v, 4) for k, v in rec.components.items()},
        "reasons": list(rec.reasons),
        "alternatives": [_alt(a) for a in rec.alternatives],
    }


def flag_json(flag: TeacherFlag) -> dict[str, Any]:
    return {
        "standard": flag.standard,
        "reason": flag.reason,
        "suggested_modality": flag.suggested_modality,
        "remediation": flag.remediation,
    }


def activity_json(a: Activity) -> dict[str, Any]:
    return {
        "start_minute": a.start_minute,
        "minutes": a.minutes,
        "modality": a.modality,
        "item": item_json(a.item),
        "standard": a.standard,
        "kind": a.kind,
        "p_success": None if a.p_success is None else round(a.p_success, 4),
        "reasons": list(a.reasons),
        "alternatives": [_alt(c) for c in a.alternatives],
        "group": a.group,
    }


def playlist_json(p: Playlist) -> dict[str, Any]:
    return {
        "session_minutes": p.session_minutes,
        "activities": [activity_json(a) for a in p.activities],
        "free_minutes": p.free_minutes,
        "flags": [flag_json(f) for f in p.flags],
        "route": p.route,
        "empty": empty_json(p.empty),
    }


def empty_json(why: tuple[str, str] | None) -> dict[str, str] | None:
    """Why a plan has nothing to offer, as the API answers it (``EmptyOut``), or None."""
    return None if why is None else {"code": why[0], "message": why[1]}


def _group(g: SmallGroup) -> dict[str, Any]:
    return {
        "id": g.id,
        "standard": g.standard,
        "item": item_json(g.item),
        "learners": list(g.learners),
        "block": g.block,
        "start_minute": g.start_minute,
        "minutes": g.minutes,
        "reason": g.reason,
    }


def rotation_json(r: Rotation) -> dict[str, Any]:
    return {
        "session_minutes": r.session_minutes,
        "block_minutes": r.block_minutes,
        "groups": [_group(g) for g in r.groups],
        "playlists": {lid: playlist_json(p) for lid, p in r.playlists.items()},
        "station_load": r.station_load,
        "diagnostic_unseated": list(r.diagnostic_unseated),
        "blocks_done": r.blocks_done,
    }


def status_json(s: GoalStatus) -> dict[str, Any]:
    return {
        "goal": list(s.goal),
        "route": s.route,
        "mastered_on_goal": s.mastered_on_goal,
        "goal_standards": s.goal_units,
        "estimated_activities": s.estimated_activities,
        "estimated_minutes": s.estimated_minutes,
        "estimated_days": s.estimated_days,
        "estimated_days_range": None if s.estimated_days_range is None else list(s.estimated_days_range),
        "due": iso(s.due),
        "status": s.status,
        "explanation": s.explanation,
        "own_pace": None if s.own_pace is None else _own_pace_json(s.own_pace),
        "route_overhead": s.route_overhead,
    }


def _own_pace_json(own: OwnPace) -> dict[str, Any]:
    span = own.estimated_days_range
    return {**asdict(own), "estimated_days_range": None if span is None else list(span)}
