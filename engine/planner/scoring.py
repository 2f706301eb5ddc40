"""Scoring: every allowed (item, standard) candidate gets component scores in [0, 1] and their
weighted sum (``[planner.weights]``; the components are ``configs.SCORE_COMPONENTS``), so each
weight moves only its own component."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from configs import SCORE_COMPONENTS, PlannerConfig
from engine.catalog import Item, Modality
from engine.planner.context import PlanContext, TeacherFlag, goal_units
from engine.planner.reasons import item_reasons
from engine.planner.targets import (
    Target,
    check_due,
    in_place,
    item_allowed,
    level_fit,
    presumed_prerequisites,
    readiness,
    review_due,
    route_to_goal,
    select_targets,
)

__all__ = ["Candidate", "rank_candidates"]

_PRIORITY = {
    "pinned": 1.0,
    "remediation": 0.8,
    "recheck": 0.8,
    "test_out": 0.45,
    "learn": 0.4,
    "explore": 0.4,
    "reverify": 0.3,
    "review": 0.3,
}


@dataclass(frozen=True)
class Candidate:
    item: Item
    standard: str
    kind: str  # pinned | remediation | recheck | learn | test_out | reverify | review
    p_success: float
    components: dict[str, float]
    score: float
    why: tuple[str, ...] = ()  # the target's own reasons; ``reasons`` adds the item's
    band: tuple[float, float] = (0.6, 0.85)
    interests: frozenset[str] = frozenset()

    @cached_property
    def reasons(self) -> tuple[str, ...]:
        """Human-readable reasons (built on demand: most candidates are never shown)."""
        return tuple(
            item_reasons(self.why, self.kind, self.item, self.p_success, self.components, self.band, self.interests)
        )


def _band_fit(p: float, band: tuple[float, float]) -> float:
    low, high = band
    if low <= p <= high:
        return 1.0
    distance = low - p if p < low else p - high
    return max(0.0, 1.0 - distance / 0.3)


def _learning_progress(ctx: PlanContext, unit: str) -> float:
    """ZPDES-style learning progress: |recent success rate - the one before|, optimistic when new."""
    recent = ctx.progress.get(unit).recent
    if len(recent) < 4:
        return 0.5
    half = len(recent) // 2
    newer, older = recent[half:], recent[:half]
    return abs(sum(newer) / len(newer) - sum(older) / len(older))


def rank_candidates(ctx: PlanContext) -> tuple[list[Candidate], list[TeacherFlag], list[str]]:
    """All allowed (item, standard) candidates, best first, with the teacher flags and the route."""
    cfg, index = ctx.config, ctx.index
    mastered = ctx.progress.mastered
    goals = goal_units(ctx)
    goal_set = set(goals)
    placed = in_place(ctx, mastered)
    route = route_to_goal(ctx, placed)
    presumed = presumed_prerequisites(ctx, placed)
    is_ready = readiness(ctx, placed, presumed)
    targets, flags = select_targets(ctx, mastered, placed, goal_set, presumed, is_ready)
    reteach = {f.standard for f in flags if f.remediation is None}  # struggling on solid prerequisites
    recent = ctx.progress.recent_items[-cfg.novelty_window :]
    pairs: list[tuple[Item, Target]] = []
    for target in targets:
        allowed = [
            item for item in index.items_for.get(target.unit, ()) if item_allowed(ctx, item, target, placed, is_ready)
        ]
        if not allowed and target.kind == "test_out":  # no check to test out with: practise it
            target = replace(target, kind="learn", reasons=target.reasons[1:])
            allowed = [
                item
                for item in index.items_for.get(target.unit, ())
                if item_allowed(ctx, item, target, placed, is_ready)
            ]
        if target.kind in ("learn", "remediation") and not check_due(ctx, target):
            # a mastery check confirms mastery; it is not practice (unless nothing else is there)
            allowed = [item for item in allowed if not item.mastery_check] or allowed
        pairs.extend((item, target) for item in allowed)
    for item_id in ctx.overrides.pinned_items:
        if (
            item_id in index.catalog
            and item_id not in ctx.overrides.excluded_items
            and (ctx.available is None or item_id in ctx.available)
        ):
            item = index.catalog[item_id]
            units = index.item_units[item_id] or item.standards
            pairs.insert(0, (item, Target(units[0], "pinned", [f"pinned by teacher: item {item_id}"])))
    if not pairs:
        return [], flags, route
    probs = np.asarray(ctx.predict([item for item, _ in pairs]), dtype=float)
    goal_pos = {u: i for i, u in enumerate(u for u in route if u in goal_set)}
    route_set = set(route)
    interests = set(ctx.interests)
    frozen_interests = frozenset(interests)
    weights = cfg.weights
    explore_unit = None
    learn_units = [t.unit for t in targets if t.kind == "learn"]
    if learn_units and ctx.rng.random() < cfg.exploration:
        explore_unit = learn_units[int(ctx.rng.integers(len(learn_units)))]
    last_units = index.item_units.get(ctx.progress.recent_items[-1], ()) if ctx.progress.recent_items else ()
    # Per target, the components that do not depend on the item are computed once; the score
    # adds weight x component in the components' order (the same sum, term by term, as written).
    weighted = tuple(weights.get(name, 0.0) for name in SCORE_COMPONENTS)
    per_target: dict[int, tuple] = {}
    modality_fit: dict[tuple[Modality, str], float] = {}
    candidates = []
    for (item, target), p in zip(pairs, probs):
        fixed = per_target.get(id(target))
        if fixed is None:
            unit, kind = target.unit, target.kind
            m = ctx.mastery.get(unit, 0.0)
            fixed = per_target[id(target)] = (
                unit,
                kind,
                (1.0 - m) if kind in ("learn", "remediation", "pinned", "test_out", "explore") else 0.3,
                _goal_fit(ctx, unit, kind, goals, goal_pos, route_set, target.objective),
                review_due(ctx, unit) if kind == "review" else 0.5 * _due_prereq_share(ctx, unit),
                "remediation" if unit in reteach else kind,
                1.0 if unit == explore_unit else 0.5 * _learning_progress(ctx, unit),
                kind in ("reverify", "recheck", "test_out") or check_due(ctx, target),
                _PRIORITY[kind],
                _focus(ctx, unit),
                _locality(ctx, unit, last_units),
            )
        unit, kind, gain, goal_fit, spacing, modality_kind, exploration, check_counts, priority, focus, local = fixed
        fit = modality_fit.get((item.modality, modality_kind))
        if fit is None:
            fit = modality_fit[(item.modality, modality_kind)] = _modality_fit(item, modality_kind, cfg)
        values = (
            _band_fit(float(p), cfg.band),
            gain,
            goal_fit,
            spacing,
            1.0 - min(1.0, item.duration_minutes / 45.0),
            fit,
            (len(interests & set(item.tags)) / len(interests)) if interests else 0.0,
            0.0 if item.id in recent else 1.0,
            exploration,
            1.0 if item.mastery_check and check_counts else 0.0,
            priority,
            focus,
            local,
        )
        score = 0
        for w, value in zip(weighted, values):
            score += w * value
        candidates.append(
            Candidate(
                item,
                unit,
                kind,
                float(p),
                dict(zip(SCORE_COMPONENTS, values)),
                score,
                tuple(target.reasons),
                cfg.band,
                frozen_interests,
            )
        )
    # teacher overrides always win, whatever the scores
    candidates.sort(key=lambda c: (c.kind != "pinned", -c.score, index.order.get(c.standard, 0), c.item.id))
    return candidates, flags, route


_TEACHER_LED = (Modality.SMALL_GROUP, Modality.TUTORING)


def _focus(ctx: PlanContext, unit: str) -> float:
    """Keep working on what the learner just started rather than hopping between standards, while
    it goes well: 1 after a success, 0.5 after one failure, nothing after two failures in a row
    (a learner who keeps failing is not helped by more of the same)."""
    prog = ctx.progress.get(unit)
    if prog.mastered or not prog.attempts or ctx.progress.activities - prog.last_activity > ctx.config.struggle_window:
        return 0.0
    return 1.0 if prog.failures_in_a_row == 0 else 0.5 if prog.failures_in_a_row == 1 else 0.0


def _locality(ctx: PlanContext, unit: str, last: Sequence[str]) -> float:
    """1 when ``unit`` is a standard of the last activity or a graph neighbour of one (one of its
    prerequisites or dependents), else 0: practice transfers along the graph, a jump may not."""
    if not last:
        return 0.0
    index = ctx.index
    return 1.0 if any(u == unit or unit in index.prereqs[u] or unit in index.dependents[u] for u in last) else 0.0


def _goal_fit(
    ctx: PlanContext,
    unit: str,
    kind: str,
    goals: Sequence[str],
    goal_pos: Mapping[str, int],
    route: set[str],
    objective: int | None = None,
) -> float:
    """Work on the next goal objective first (the cheapest goal standard to reach, see
    :func:`goal_objectives`), later objectives less; remediation and other route standards
    next; without a goal, closeness to the learner's level."""
    if objective is not None:
        return max(0.3, 1.0 - 0.15 * objective)
    if unit in goal_pos:
        return 1.0 - 0.3 * goal_pos[unit] / max(1, len(goal_pos))
    if kind in ("remediation", "recheck"):
        return 0.8
    if unit in route:
        return 0.6
    return level_fit(ctx, unit) if not goals else 0.0


def _modality_fit(item: Item, kind: str, cfg: PlannerConfig) -> float:
    """Preference for the item's modality; teacher-led time is kept for remediation, reteaching a
    standard the learner struggles on, and pinned work."""
    preference = cfg.modality_preference.get(item.modality.value, 0.5)
    if item.modality in _TEACHER_LED and kind not in ("remediation", "pinned"):
        return 0.2 * preference
    return preference


def _due_prereq_share(ctx: PlanContext, unit: str) -> float:
    pres = ctx.index.prereqs.get(unit, ())
    if not pres:
        return 0.0
    return sum(1 for p in pres if review_due(ctx, p) > 0) / len(pres)
