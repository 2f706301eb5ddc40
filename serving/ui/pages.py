"""What the teacher's pages show, computed through the learner service (the API's own path).

Each function returns plain values for a template: the class dashboard (support groups, the
mastery heatmap, the standards most of the class has not mastered, pace against progress), the
rotation (blocks x stations, small groups, a CSV export) and a learner's GPS (route map, next
activities, the evidence behind each mastery, the ETA and the way back when off track).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import networkx as nx

from configs import PlannerConfig
from engine.catalog import Modality
from engine.learner import LearnerProfile
from engine.planner.gps import DAY, GoalStatus, daily_pace, goal_key
from engine.planner.playlist import ENTRY_DIAGNOSTIC, INDEPENDENT_PRACTICE, Rotation, session_blocks
from engine.roster import Roster
from serving.service import LearnerService, LearnerView
from serving.stores.base import chronological

__all__ = [
    "Thresholds",
    "class_dashboard",
    "learner_gps",
    "rotation_csv",
    "rotation_grid",
]

STATUS_LABEL = {
    "mastered": "mastered",
    "in_progress": "in progress",
    "likely_known": "likely known",
    "not_started": "not started",
}


@dataclass(frozen=True)
class Thresholds:
    """The teacher's settings for the support groups."""

    struggling_below: float = 0.6  # recent accuracy under this: struggling
    excelling_above: float = 0.85  # recent accuracy at or over this (and not behind): excelling
    min_answers: int = 5  # fewer answers: not enough information yet
    inactive_days: float = 7.0  # no activity for this long: flagged inactive
    recent: int = 10  # answers that make "recent accuracy"


def day(ts: float | None) -> str | None:
    """An ISO-8601 date (UTC) for a time in seconds."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).date().isoformat()


def arrival(gps: GoalStatus, now: float) -> str | None:
    """The estimated arrival at the goal: at the learner's own pace once there is one (see
    :func:`engine.planner.gps.goal_status`), else at the planned pace; none without a goal, with
    the goal reached or blocked, or for a learner who has not worked for weeks."""
    if gps.status in ("no_goal", "reached", "blocked"):
        return None
    days = gps.estimated_days if gps.own_pace is None else gps.own_pace.estimated_days
    return None if days is None else day(now + days * DAY)


def arrival_range(gps: GoalStatus, now: float) -> tuple[str, str] | None:
    """The dates between which half of the learners arrive, at the pace :func:`arrival` counts."""
    if arrival(gps, now) is None:
        return None
    span = gps.estimated_days_range if gps.own_pace is None else gps.own_pace.estimated_days_range
    if span is None:
        return None
    low, high = day(now + span[0] * DAY), day(now + span[1] * DAY)
    return (low, high) if low and high else None


@dataclass
class StudentRow:
    learner_id: str
    name: str
    grade: str | None
    answers: int
    recent_accuracy: float | None
    last_active: float | None
    inactive_days: float | None
    group: str
    why: str
    flags: list[str]
    gps: Any
    progress: str
    eta: str | None
    mastery: dict[str, Any] = field(default_factory=dict)
    #: the dates between which half of the students arrive (see :func:`arrival_range`)
    eta_range: tuple[str, str] | None = None


def _answers(service: LearnerService, tenant: str, learner_id: str) -> list[Any]:
    log = chronological(service.store.events(tenant, learner_id))
    return [e for e in log if e.kind == "answer" and e.correct is not None]


def _support_group(
    answers: int, accuracy: float | None, flags: list[str], gps: GoalStatus, t: Thresholds
) -> tuple[str, str]:
    if answers < t.min_answers:
        return "not_enough", f"{answers} answer(s) so far; {t.min_answers} are needed to judge"
    assert accuracy is not None
    if flags:
        return "struggling", "; ".join(flags)
    if accuracy < t.struggling_below:
        return "struggling", f"recent accuracy {accuracy:.0%} is under {t.struggling_below:.0%}"
    if gps.status == "at_risk":
        return "struggling", f"behind the pace needed to reach the goal by its date: {gps.explanation}"
    if accuracy >= t.excelling_above:
        return "excelling", f"recent accuracy {accuracy:.0%} is at least {t.excelling_above:.0%}"
    return "on_track", f"recent accuracy {accuracy:.0%}"


def _row(
    service: LearnerService, tenant: str, roster: Roster, learner_id: str, now: float, t: Thresholds
) -> tuple[StudentRow, LearnerProfile]:
    view = service.load(tenant, learner_id, unseen=True, grade=roster.grade_of(learner_id))
    profile = view.core.profile(view.learner, now)
    log = _answers(service, tenant, learner_id) if view.stored else []
    recent = log[-t.recent :]
    accuracy = sum(float(e.correct) for e in recent) / len(recent) if recent else None
    last = max((e.time for e in log), default=None)
    inactive = None if last is None else (now - last) / DAY
    flags = [f"{f.standard}: {f.reason}" for f in view.core.recommend(view.learner, now, n=1).flags]
    group, why = _support_group(len(log), accuracy, flags, profile.gps, t)
    gps = profile.gps
    eta = arrival(gps, now)
    row = StudentRow(
        learner_id,
        roster.name_of(learner_id),
        roster.grade_of(learner_id) or view.meta.grade,
        len(log),
        accuracy,
        last,
        inactive,
        group,
        why,
        flags,
        gps,
        f"{gps.mastered_on_goal} of {gps.goal_units}" if gps.goal_units else "no goal",
        eta,
        dict(profile.mastery),
        arrival_range(gps, now),
    )
    return row, profile


def class_dashboard(
    service: LearnerService, tenant: str, roster: Roster, class_id: str, t: Thresholds, now: float
) -> dict[str, Any]:
    students = roster.members(class_id, "student")
    rows = [_row(service, tenant, roster, lid, now, t)[0] for lid in students]
    rows.sort(key=lambda r: (r.name.lower(), r.learner_id))
    groups = {key: [r for r in rows if r.group == key] for key in ("struggling", "on_track", "excelling", "not_enough")}
    # the standards the heatmap shows: every goal standard and what is left on the routes to them,
    # plus anything the class has evidence on, in one learning-progression order
    graph = service.graph(tenant)
    index = service.core(tenant).index
    shown: set[str] = set()
    for r in rows:
        shown.update(r.gps.route)
        shown.update(u for code in r.gps.goal for u in graph.leaves(code))
        shown.update(code for code, m in r.mastery.items() if m.evidence and code in index.order)
    standards = sorted((s for s in shown if s in index.order), key=lambda s: index.order[s])[:60]
    to_learn = ("in_progress", "not_started")  # neither shown nor believed known
    not_mastered = sorted(
        ((sum(1 for r in rows if r.mastery.get(s) is None or r.mastery[s].status in to_learn), s) for s in standards),
        key=lambda x: (-x[0], index.order[x[1]]),
    )
    return {
        "rows": rows,
        "groups": groups,
        "goals": _class_goals(rows),
        "standards": standards,
        "descriptions": {s: graph.standards[s].description or "" for s in standards},
        "most_not_mastered": [(s, n) for n, s in not_mastered if n > 0][:8],
        "students": len(rows),
        "overhead": _overheads(rows, service.core(tenant).config.route_overhead),
    }


def _overheads(rows: list[StudentRow], default: float) -> str:
    """The route overheads the class's ETAs count ("3.0", or "2.2 to 3.6" when goals differ)."""
    counted = sorted({r.gps.route_overhead for r in rows if r.gps.goal}) or [default]
    return f"{counted[0]:.1f}" if len(counted) == 1 else f"{counted[0]:.1f} to {counted[-1]:.1f}"


def _overhead_source(calibration: dict[str, Any], goal: Sequence[str]) -> str | None:
    """Where the route overhead of ``goal`` comes from: "goal" (measured on this goal's arrivals at
    this school), "school" (on any goal's), "set" (the deployment's configuration names this
    goal), None (the configured one, measured with simulated students)."""
    for own in calibration["goals"]:
        if goal_key(own["goal"]) == goal_key(goal):
            return "goal" if own["source"] == "measured" else "set"
    return "school" if calibration["source"] == "measured" else None


def _class_goals(rows: list[StudentRow]) -> list[tuple[str, str | None, int]]:
    """The goals the class's students have: (standards, goal date, students), the most common
    first; a student without a goal counts under empty standards."""
    counted = Counter((", ".join(r.gps.goal), day(r.gps.due)) for r in rows)
    return [(codes, due, n) for (codes, due), n in sorted(counted.items(), key=lambda c: (-c[1], c[0]))]


# ---------------------------------------------------------------------------- rotation
def rotation_grid(rotation: Rotation, roster: Roster) -> dict[str, Any]:
    """Blocks x stations: who is where doing what, and the small groups."""
    n_blocks = session_blocks(rotation.session_minutes, rotation.block_minutes)
    stations: list[str] = []
    cells: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for lid, playlist in rotation.playlists.items():
        for a in playlist.activities:
            block = min(int(a.start_minute // rotation.block_minutes), n_blocks - 1)
            station = "small_group" if a.group else a.modality
            if station not in stations:
                stations.append(station)
            cells.setdefault((block, station), []).append(
                {
                    "learner_id": lid,
                    "name": roster.name_of(lid),
                    "standard": a.standard,
                    "item": a.item.title,
                    "item_id": a.item.id,
                    "kind": a.kind,
                    "minutes": a.minutes,
                    "start": a.start_minute,
                    "group": a.group,
                }
            )
    order = ["small_group", "online_practice", "video", "reading", "project", "tutoring", "assessment"]
    stations.sort(key=lambda s: (order.index(s) if s in order else len(order), s == INDEPENDENT_PRACTICE, s))
    for entries in cells.values():
        entries.sort(key=lambda e: (e["name"].lower(), e["start"]))
    return {
        "blocks": [
            {
                "index": b,
                "start": b * rotation.block_minutes,
                "end": (b + 1) * rotation.block_minutes,
                "done": b < rotation.blocks_done,
            }
            for b in range(n_blocks)
        ],
        "stations": stations,
        "cells": cells,
        "groups": [
            {
                "id": g.id,
                "standard": g.standard,
                "item": g.item.title,
                "item_id": g.item.id,
                "block": g.block,
                "start": g.start_minute,
                "learners": [roster.name_of(lid) for lid in g.learners],
                "learner_ids": list(g.learners),
                "reason": g.reason,
            }
            for g in rotation.groups
        ],
        "idle": sum(p.free_minutes for p in rotation.playlists.values()),
        # students whose day starts with the entry diagnostic: the rest of it is planned without it
        "diagnostic": sorted(
            (
                roster.name_of(lid)
                for lid, p in rotation.playlists.items()
                if any(a.kind == ENTRY_DIAGNOSTIC for a in p.activities)
            ),
            key=str.lower,
        ),
        "diagnostic_unseated": sorted((roster.name_of(lid) for lid in rotation.diagnostic_unseated), key=str.lower),
        # students with nothing planned, and why (else they would just be missing from the grid)
        "unplanned": sorted(
            ({"name": roster.name_of(lid), "why": p.empty[1]} for lid, p in rotation.playlists.items() if p.empty),
            key=lambda e: e["name"].lower(),
        ),
    }


def teacher_led(grid: dict[str, Any], block: int) -> list[dict[str, Any]]:
    """What the teacher led in ``block`` of a :func:`rotation_grid`: its small groups, then
    tutoring, each with its students (``value``: ``"LEARNER ITEM"``, what the page's form sends
    back when the block is over). A lesson sends no answer: the teacher says it was held."""
    led = [
        {
            "what": f"Group {g['id']} · {g['standard']} · {g['item']}",
            "students": [
                {"value": f"{lid} {g['item_id']}", "name": name}
                for lid, name in zip(g["learner_ids"], g["learners"], strict=True)
            ],
        }
        for g in grid["groups"]
        if g["block"] == block
    ]
    led += [
        {
            "what": f"Tutoring · {e['standard']} · {e['item']}",
            "students": [{"value": f"{e['learner_id']} {e['item_id']}", "name": e["name"]}],
        }
        for e in grid["cells"].get((block, Modality.TUTORING.value), [])
    ]
    return led


def rotation_csv(rotation: Rotation, roster: Roster) -> str:
    """One row per activity, in the order a teacher reads the day (block, station, student)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(
        [
            "block",
            "start_minute",
            "minutes",
            "station",
            "learner_id",
            "name",
            "standard",
            "item_id",
            "item",
            "kind",
            "group",
        ]
    )
    rows: list[list[Any]] = []
    for lid, playlist in rotation.playlists.items():
        for a in playlist.activities:
            rows.append(
                [
                    int(a.start_minute // rotation.block_minutes) + 1,
                    f"{a.start_minute:g}",
                    f"{a.minutes:g}",
                    "small_group" if a.group else a.modality,
                    lid,
                    roster.name_of(lid),
                    a.standard,
                    a.item.id,
                    a.item.title,
                    a.kind,
                    a.group or "",
                ]
            )
    rows.sort(key=lambda r: (r[0], float(r[1]), r[3], str(r[5]).lower()))  # block, start, station, name
    writer.writerows(rows)
    return out.getvalue()


# ---------------------------------------------------------------------------- GPS
def _evidence_text(view: LearnerView, unit: str) -> str | None:
    p = view.learner.progress.get(unit)
    if not p.mastered:
        return None
    when = day(p.mastered_at)
    if p.mastered_by == "test-out":
        how = "passed a test-out"
    elif p.mastered_by == "placement":
        how = "shown in the entry diagnostic"
    else:
        parts = [f"{p.streak} correct in a row" if p.streak else f"{p.successes} correct of {p.attempts}"]
        if p.checked:
            parts.append("a passed mastery check")
        how = " and ".join(parts)
    return f"mastered on {when}: {how}"


def route_map(
    service: LearnerService,
    tenant: str,
    view: LearnerView,
    route: Sequence[str],
    goal_units: Sequence[str],
    nxt: str | None,
) -> dict[str, Any]:
    """The route drawn as layers of standards (prerequisites to the left), each with its state."""
    graph = service.graph(tenant)
    mastered = view.learner.progress.mastered
    nodes = list(dict.fromkeys([*route, *goal_units]))
    # the mastered standards the route stands on, so the map starts from what the learner knows
    base = {p for u in nodes for p in graph.learning_prerequisites(u) if p in mastered}
    nodes = sorted(set(nodes) | base)
    sub = graph.learning.subgraph(nodes)
    layers = list(nx.topological_generations(sub)) if nodes else []
    width, row_h, col_w = max((len(layer) for layer in layers), default=1), 44, 150
    positions = {}
    for x, layer in enumerate(layers):
        for y, code in enumerate(sorted(layer)):
            positions[code] = (20 + x * col_w, 20 + y * row_h)
    route_set = set(route)
    ready = {u for u in route if all(p in mastered for p in graph.learning_prerequisites(u))}

    def state(code: str) -> str:
        if code in mastered:
            return "mastered"
        if code == nxt:
            return "next"
        if code in goal_units and code not in ready:
            return "goal"
        if code in ready:
            return "ready"
        return "later" if code in route_set else "goal"

    return {
        "nodes": [
            {"code": c, "x": positions[c][0], "y": positions[c][1], "state": state(c), "goal": c in goal_units}
            for c in nodes
        ],
        "edges": [(positions[a], positions[b]) for a, b in sub.edges],
        "width": 40 + max(len(layers), 1) * col_w,
        "height": 40 + width * row_h,
    }


#: a catch-up pace beyond this many times the planned daily minutes is no way back: the date moves
MAX_CATCH_UP = 3.0


def _way_back(gps: GoalStatus, config: PlannerConfig, now: float) -> str:
    """What gets an off-track learner to the goal: a catch-up pace until the goal date when one
    is workable (up to :data:`MAX_CATCH_UP` times the planned pace), else a later date. Once the
    learner has a pace of their own, the catch-up is in activities a day, next to what they have
    been doing: more of them, not longer days, is what a teacher can ask for."""
    assert gps.due is not None  # off track for a date
    pace = daily_pace(config)  # minutes per calendar day, as the time to the goal counts
    eta = day(now + gps.estimated_days * DAY)  # keeping the planned pace from now on
    days_left = (gps.due - now) / DAY
    if days_left <= 0:
        return f"the date has passed: set a new goal date (at the planned pace, about {eta})"
    own = gps.own_pace
    if own is not None and gps.estimated_days > 0:
        need, planned = gps.estimated_activities / days_left, gps.estimated_activities / gps.estimated_days
        if need <= MAX_CATCH_UP * planned:
            return (
                f"about {need:.1f} activities a day until {day(gps.due)} would get there (the student has done "
                f"{own.activities_per_day:.1f} a day over the last {own.days} days; the plan counts {planned:.1f})"
            )
        return (
            f"{day(gps.due)} would take {need:.1f} activities a day, more than {MAX_CATCH_UP:g} times the planned "
            f"{planned:.1f} (the student has done {own.activities_per_day:.1f}): move the goal date to about {eta} "
            "and keep the planned pace, or narrow the goal"
        )
    per_day = gps.estimated_minutes / days_left
    if per_day <= MAX_CATCH_UP * pace:
        return f"about {per_day:.0f} minutes a day until {day(gps.due)} (the plan counts {pace:.0f}) would get there"
    return (
        f"{day(gps.due)} would take {per_day:.0f} minutes a day, more than {MAX_CATCH_UP:g} times the planned "
        f"{pace:.0f}: move the goal date to about {eta}, or narrow the goal"
    )


def learner_gps(service: LearnerService, tenant: str, roster: Roster, learner_id: str, now: float) -> dict[str, Any]:
    view = service.load(tenant, learner_id, unseen=True, grade=roster.grade_of(learner_id))
    core = view.core
    profile = core.profile(view.learner, now)
    plan = core.recommend(view.learner, now, n=3, k_alternatives=2)
    gps = profile.gps
    graph = service.graph(tenant)
    goal_units = [u for code in gps.goal for u in graph.leaves(code)]
    nxt = plan.recommendations[0].standard if plan.recommendations else None
    evidence = [
        (u, text)
        for u in sorted(view.learner.progress.mastered, key=lambda u: -(view.learner.progress.get(u).mastered_at or 0))
        if (text := _evidence_text(view, u))
    ][:12]
    alert = None
    if gps.status == "at_risk" and gps.due is not None:
        alert = {
            "title": "Off track for the goal date",
            "text": gps.explanation,
            "way_back": _way_back(gps, core.config, now),
        }
    if gps.status == "blocked":  # the catalog, not the student: nothing can show the goal learned
        alert = {
            "title": "The goal cannot be reached with this catalog",
            "text": gps.explanation,
            "way_back": "have practice or a check added for it, or set another goal",
        }
    practised = core.index.practised
    struggles = [f for f in plan.flags if f.standard in practised]  # the others: the catalog's, above
    if struggles:
        f = struggles[0]
        back = f.remediation or f.standard
        alert = {
            "title": f"Struggling on {f.standard}",
            "text": f.reason,
            "way_back": f"go back to {back} first ({f.suggested_modality.replace('_', ' ')})",
        }
    return {
        "learner_id": learner_id,
        "name": roster.name_of(learner_id),
        "grade": roster.grade_of(learner_id) or view.meta.grade,
        "gps": gps,
        "eta": arrival(gps, now),
        "eta_range": arrival_range(gps, now),
        "overhead_measured": _overhead_source(service.gps_calibration(tenant), gps.goal),
        "due": day(gps.due),
        "recommendations": plan.recommendations,
        "evidence": evidence,
        "alert": alert,
        "map": route_map(service, tenant, view, gps.route, goal_units, nxt),
        "mastered": len(view.learner.progress.mastered),
    }
