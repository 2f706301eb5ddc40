"""Scoring: every allowed (item, standard) candidate gets component scores in [0, 1] and their
weighted sum (``[planner.weights]``; the components are ``configs.SCORE_COMPONENTS``), so each
weight moves only its own component."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import overload

import numpy as np

from configs import SCORE_COMPONENTS, PlannerConfig
from engine.catalog import Item, Modality
from engine.planner.context import PlanContext, TeacherFlag, goal_units
from engine.planner.reasons import item_reasons
from engine.planner.targets import (
    Target,
    allowed_items,
    check_due,
    in_place,
    level_fit,
    offered_items,
    presumed_prerequisites,
    readiness,
    review_due,
    route_to_goal,
    select_targets,
)

__all__ = ["Candidate", "Ranked", "rank_candidates"]

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
    values: tuple[float, ...]  # the score components, in ``SCORE_COMPONENTS`` order
    score: float
    why: tuple[str, ...] = ()  # the target's own reasons; ``reasons`` adds the item's
    band: tuple[float, float] = (0.6, 0.85)
    interests: frozenset[str] = frozenset()

    @cached_property
    def components(self) -> dict[str, float]:
        """The score components by name (built on demand: most candidates are never shown)."""
        return dict(zip(SCORE_COMPONENTS, self.values))

    @cached_property
    def reasons(self) -> tuple[str, ...]:
        """Human-readable reasons (built on demand: most candidates are never shown)."""
        return tuple(
            item_reasons(self.why, self.kind, self.item, self.p_success, self.components, self.band, self.interests)
        )


class Ranked(Sequence[Candidate]):
    """Candidates best first, each built when first looked at: a request looks at a handful of
    the hundred or so it ranks."""

    def __init__(
        self,
        ranking: Sequence[int],
        make: Callable[[int], Candidate],
        labels: Sequence[tuple[str, str, str]],
    ):
        self._ranking, self._make = ranking, make
        self._labels = labels
        self._built: dict[int, Candidate] = {}

    @classmethod
    def empty(cls) -> Ranked:
        def none(k: int) -> Candidate:
            raise IndexError(k)

        return cls([], none, [])

    def label(self, i: int) -> tuple[str, str, str]:
        """``(standard, item id, kind)`` of the ``i``-th candidate, without building it."""
        return self._labels[self._ranking[i]]

    def __len__(self) -> int:
        return len(self._ranking)

    @overload
    def __getitem__(self, i: int) -> Candidate: ...

    @overload
    def __getitem__(self, i: slice) -> list[Candidate]: ...

    def __getitem__(self, i: int | slice) -> Candidate | list[Candidate]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        k = self._ranking[i]
        cand = self._built.get(k)
        if cand is None:
            cand = self._built[k] = self._make(k)
        return cand

    def __iter__(self) -> Iterator[Candidate]:
        for i in range(len(self._ranking)):
            yield self[i]


def _band_fits(p: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """1 inside the band, falling linearly to 0 at 0.3 outside it."""
    low, high = band
    distance = np.where(p < low, low - p, np.where(p > high, p - high, 0.0))
    return np.where(distance == 0.0, 1.0, np.maximum(0.0, 1.0 - distance / 0.3))


def _learning_progress(ctx: PlanContext, unit: str) -> float:
    """ZPDES-style learning progress: |recent success rate - the one before|, optimistic when new."""
    recent = ctx.progress.get(unit).recent
    if len(recent) < 4:
        return 0.5
    half = len(recent) // 2
    newer, older = recent[half:], recent[:half]
    return abs(sum(newer) / len(newer) - sum(older) / len(older))


def rank_candidates(ctx: PlanContext) -> tuple[Ranked, list[TeacherFlag], list[str]]:
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
    ready_units: dict[tuple[str, ...], bool] = {}
    for target in targets:
        allowed = allowed_items(ctx, target, placed, is_ready, ready_units)
        if not allowed and target.kind == "test_out":  # no check to test out with: practise it
            target = replace(target, kind="learn", reasons=target.reasons[1:])
            allowed = allowed_items(ctx, target, placed, is_ready, ready_units)
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
        return Ranked.empty(), flags, route
    probs = np.asarray(ctx.predict([item for item, _ in pairs]), dtype=float)
    goal_pos = {u: i for i, u in enumerate(u for u in route if u in goal_set)}
    route_set = set(route)
    interests = set(ctx.interests)
    frozen_interests = frozenset(interests)
    weights = cfg.weights
    explore_unit = None
    learn_units = [t.unit for t in targets if t.kind == "learn"]
    if learn_units and ctx.random().random() < cfg.exploration:
        explore_unit = learn_units[int(ctx.random().integers(len(learn_units)))]
    last_units = index.item_units.get(ctx.progress.recent_items[-1], ()) if ctx.progress.recent_items else ()
    # Per target, the components that do not depend on the item are computed once; every
    # component is then a column over the candidates, and the score adds weight x column in the
    # components' order (the same sums, term by term, as scoring one candidate at a time).
    per_target: dict[int, int] = {}
    fixed_rows: list[tuple] = []
    for _, target in pairs:
        if id(target) not in per_target:
            per_target[id(target)] = len(fixed_rows)
            unit, kind = target.unit, target.kind
            m = ctx.mastery.get(unit, 0.0)
            fixed_rows.append(
                (
                    (1.0 - m) if kind in ("learn", "remediation", "pinned", "test_out", "explore") else 0.3,
                    _goal_fit(ctx, unit, kind, goals, goal_pos, route_set, target.objective),
                    review_due(ctx, unit) if kind == "review" else 0.5 * _due_prereq_share(ctx, unit),
                    1.0 if unit == explore_unit else 0.5 * _learning_progress(ctx, unit),
                    _PRIORITY[kind],
                    _focus(ctx, unit),
                    _locality(ctx, unit, last_units),
                    kind in ("reverify", "recheck", "test_out") or check_due(ctx, target),
                    "remediation" if unit in reteach else kind,
                )
            )
    rows = np.fromiter((per_target[id(target)] for _, target in pairs), np.int64, len(pairs))
    fixed = np.array([row[:7] for row in fixed_rows], dtype=float)[rows]  # (candidates, 7)
    modality_fit: dict[tuple[Modality, str], float] = {}
    fits: list[float] = []
    checks: list[float] = []
    time_cost: list[float] = []
    novelty: list[float] = []
    for item, target in pairs:
        row = fixed_rows[per_target[id(target)]]
        key = (item.modality, row[8])
        fit = modality_fit.get(key)
        if fit is None:
            fit = modality_fit[key] = _modality_fit(item, row[8], cfg)
        fits.append(fit)
        checks.append(1.0 if item.mastery_check and row[7] else 0.0)
        time_cost.append(1.0 - min(1.0, item.duration_minutes / 45.0))
        novelty.append(0.0 if item.id in recent else 1.0)
    columns: dict[str, np.ndarray | list[float]] = {
        "band_fit": _band_fits(probs, cfg.band),
        "gain": fixed[:, 0],
        "goal": fixed[:, 1],
        "spacing": fixed[:, 2],
        "time_cost": time_cost,
        "modality": fits,
        "interest": [len(interests & set(item.tags)) / len(interests) for item, _ in pairs]
        if interests
        else np.zeros(len(pairs)),
        "novelty": novelty,
        "exploration": fixed[:, 3],
        "mastery_check": checks,
        "priority": fixed[:, 4],
        "focus": fixed[:, 5],
        "locality": fixed[:, 6],
    }
    table: np.ndarray = np.column_stack([np.asarray(columns[name], dtype=float) for name in SCORE_COMPONENTS])
    # left to right, as one candidate at a time would add them (a dot product may round differently)
    scores = np.cumsum(table * np.array([weights.get(name, 0.0) for name in SCORE_COMPONENTS]), axis=1)[:, -1]
    score_list, order = scores.tolist(), index.order
    # teacher overrides always win, whatever the scores
    keys = [
        (target.kind != "pinned", -score, order.get(target.unit, 0), item.id)
        for (item, target), score in zip(pairs, score_list)
    ]
    ranking = sorted(range(len(pairs)), key=keys.__getitem__)

    def make(k: int) -> Candidate:
        item, target = pairs[k]
        return Candidate(
            item,
            target.unit,
            target.kind,
            float(probs[k]),
            tuple(table[k].tolist()),
            score_list[k],
            tuple(target.reasons),
            cfg.band,
            frozen_interests,
        )

    candidates = Ranked(ranking, make, [(target.unit, item.id, target.kind) for item, target in pairs])
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


#: the share of the locality bonus a standard keeps while the learner keeps failing it with
#: nothing new to try (see :func:`_locality`); measured with the world matrix of the planner report
_STRUGGLING_LOCALITY = 0.3


def _locality(ctx: PlanContext, unit: str, last: Sequence[str]) -> float:
    """1 when ``unit`` is a standard of the last activity or a graph neighbour of one (one of its
    prerequisites or dependents), else 0: practice transfers along the graph, a jump may not.

    A standard failed ``struggle_failures`` times in a row that has nothing but the same kind of
    practice to offer now (no teacher-led item the learner may be given) keeps only
    ``_STRUGGLING_LOCALITY`` of it: more of what keeps failing teaches little, so with the default
    weight the next ready standard is worth the jump, while a strong locality weight (jumps ruled
    out) still keeps the learner on the graph."""
    if not last:
        return 0.0
    index = ctx.index
    if (
        unit in last
        and ctx.progress.get(unit).failures_in_a_row >= ctx.config.struggle_failures
        and not any(item.modality in _TEACHER_LED for item in offered_items(ctx, unit))
    ):
        return _STRUGGLING_LOCALITY
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
