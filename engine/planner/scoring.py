"""Scoring: every allowed (item, standard) candidate gets component scores in [0, 1] and their
weighted sum (``[planner.weights]``; the components are ``configs.SCORE_COMPONENTS``), so each
weight moves only its own component."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any, overload

import numpy as np

from configs import SCORE_COMPONENTS, PlannerConfig
from engine.catalog import Item, Modality
from engine.planner.context import PlanContext, TeacherFlag, goal_units, taught_unanswered
from engine.planner.index import MODALITIES, ItemTable
from engine.planner.progress import StandardProgress
from engine.planner.reasons import item_reasons
from engine.planner.targets import (
    Readiness,
    Target,
    allowed_items,
    check_due,
    in_place,
    level_fit,
    offered_items,
    presumed_prerequisites,
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
    the hundred or so it ranks. A playlist or a rotation reads them all: :meth:`all` builds the
    rest in one call of ``make``."""

    def __init__(
        self,
        ranking: Sequence[int],
        make: Callable[[Sequence[int]], list[Candidate]],
        label: Callable[[int], tuple[str, str, str]],
        why_empty: tuple[str, str] | None = None,
    ):
        self._ranking, self._make, self._label = ranking, make, label
        self._built: dict[int, Candidate] = {}
        self.why_empty = why_empty  # for an empty ranking: why there is nothing to offer (code, text)

    @classmethod
    def empty(cls, why: tuple[str, str] | None = None) -> Ranked:
        def none(k: Any) -> Any:
            raise IndexError(k)

        return cls([], none, none, why)

    def label(self, i: int) -> tuple[str, str, str]:
        """``(standard, item id, kind)`` of the ``i``-th candidate, without building it."""
        return self._label(self._ranking[i])

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
            cand = self._built[k] = self._make([k])[0]
        return cand

    def __iter__(self) -> Iterator[Candidate]:
        for i in range(len(self._ranking)):
            yield self[i]

    def all(self) -> list[Candidate]:
        """Every candidate, best first, as a list (``list(self)``, built in one go)."""
        built = self._built
        if len(built) < len(self._ranking):
            missing = [k for k in self._ranking if k not in built]
            built.update(zip(missing, self._make(missing)))
        return [self[i] for i in range(len(self._ranking))]


def _band_fits(p: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """1 inside the band, falling linearly to 0 at 0.3 outside it."""
    low, high = band
    distance = np.where(p < low, low - p, np.where(p > high, p - high, 0.0))
    return np.where(distance == 0.0, 1.0, np.maximum(0.0, 1.0 - distance / 0.3))


def rank_candidates(ctx: PlanContext) -> tuple[Ranked, list[TeacherFlag], list[str]]:
    """All allowed (item, standard) candidates, best first, with the teacher flags and the route."""
    cfg, index = ctx.config, ctx.index
    mastered = ctx.progress.mastered
    goals = goal_units(ctx)
    goal_set = set(goals)
    placed = in_place(ctx, mastered)
    route = route_to_goal(ctx, placed)
    presumed = presumed_prerequisites(ctx, placed)
    is_ready = Readiness(ctx, placed, presumed)
    targets, flags = select_targets(ctx, mastered, placed, goal_set, presumed, is_ready)
    ready_units: dict[tuple[str, ...], bool] = {}
    offers = _offers(ctx, targets, placed, is_ready, ready_units)
    if ctx.goal is not None and all(t.kind in ("review", "reverify") for t, _, _ in offers):
        # no new work may be given (none toward the nearest goal objectives: the teacher excluded
        # their items, the platform offers others, they were just taught and nothing that
        # answers is there): toward every objective
        targets, flags = select_targets(ctx, mastered, placed, goal_set, presumed, is_ready, every_objective=True)
        offers = _offers(ctx, targets, placed, is_ready, ready_units)
    reteach = {f.standard for f in flags if f.remediation is None}  # struggling on solid prerequisites
    # The candidates: ``items[k]`` for ``owned[owner[k]]``; pinned items first (the last pinned
    # first), then each target's allowed items in target order.
    owned: list[Target] = []
    items: list[Item] = []
    owner: list[int] = []
    checking: list[bool] = []  # the target takes a mastery check as confirmation now
    for item_id in ctx.overrides.pinned_items:
        if (
            item_id in index.catalog
            and not index.catalog[item_id].withdrawn
            and item_id not in ctx.overrides.excluded_items
            and (ctx.available is None or item_id in ctx.available)
        ):
            item = index.catalog[item_id]
            units = index.item_units[item_id] or item.standards
            owned.append(Target(units[0], "pinned", [f"pinned by teacher: item {item_id}"]))
            items.append(item)
    items.reverse()
    owned.reverse()
    owner.extend(range(len(owned)))
    checking.extend([False] * len(owned))
    for target, allowed, check in offers:
        owner.extend([len(owned)] * len(allowed))
        owned.append(target)
        items.extend(allowed)
        checking.append(check)
    if not items:
        return Ranked.empty(_why_nothing(ctx, targets)), flags, route
    probs = np.asarray(ctx.predict(items), dtype=float)
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
    # The components that do not depend on the item are computed once per target, those that
    # do are read from the catalog's item table; every component is then a column over the
    # candidates, and the score adds weight x column in the components' order (the same sums,
    # term by term, as scoring one candidate at a time).
    terms = _TargetTerms(ctx, goals, goal_pos, route_set, explore_unit, last_units)
    fixed_rows = [terms.row(target) for target in owned]
    lenient = [t.unit in reteach or t.kind in ("remediation", "pinned") for t in owned]  # see _modality_fits
    rows_of = np.array(owner, dtype=np.intp)
    fixed = np.array(fixed_rows, dtype=float)[rows_of]  # (candidates, 7)
    table = index.item_table
    try:
        rows = np.fromiter((table.row[item.id] for item in items), np.intp, len(items))
    except KeyError:  # an item the index's catalog does not hold: a table of the candidates alone
        table, rows = ItemTable.build(items), np.arange(len(items))
    recent = np.zeros(len(table.check), dtype=bool)
    recent[[table.row[i] for i in ctx.progress.recent_items[-cfg.novelty_window :] if i in table.row]] = True
    columns: dict[str, np.ndarray] = {
        "band_fit": _band_fits(probs, cfg.band),
        "gain": fixed[:, 0],
        "goal": fixed[:, 1],
        "spacing": fixed[:, 2],
        "time_cost": table.time_cost[rows],
        "modality": _modality_fits(table.modality[rows], np.array(lenient, dtype=bool)[rows_of], cfg),
        "interest": np.array([len(interests & set(item.tags)) / len(interests) for item in items], dtype=float)
        if interests
        else np.zeros(len(items)),
        "novelty": np.where(recent[rows], 0.0, 1.0),
        "exploration": fixed[:, 3],
        "mastery_check": np.where(table.check[rows] & np.array(checking, dtype=bool)[rows_of], 1.0, 0.0),
        "priority": fixed[:, 4],
        "focus": fixed[:, 5],
        "locality": fixed[:, 6],
    }
    values = [np.asarray(columns[name], dtype=float) for name in SCORE_COMPONENTS]
    # left to right, as one candidate at a time would add them (a dot product may round differently)
    scores = values[0] * float(weights.get(SCORE_COMPONENTS[0], 0.0))
    for name, column in zip(SCORE_COMPONENTS[1:], values[1:]):
        scores = scores + column * float(weights.get(name, 0.0))
    # teacher overrides always win, whatever the scores; then the score, the learning order of the
    # standard and the item id (``np.lexsort``: the last key is the first compared)
    order = index.order
    pinned = np.array([t.kind == "pinned" for t in owned], dtype=bool)[rows_of]
    unit_order = np.array([order.get(t.unit, 0) for t in owned], dtype=np.intp)[rows_of]
    ranking = np.lexsort((table.id_rank[rows], unit_order, -scores, ~pinned)).tolist()

    why: dict[int, tuple[str, ...]] = {}  # each target's reasons, written once

    def make(ks: Sequence[int]) -> list[Candidate]:
        """The candidates ``ks``: one read from the columns at a time for a few (what ``/next``
        looks at), every column converted in one go for many (a playlist or a rotation)."""
        if len(ks) > 1:
            rows = np.column_stack(values)[ks].tolist()
            p, total = probs[ks].tolist(), scores[ks].tolist()
        else:
            rows = [[float(column[k]) for column in values] for k in ks]
            p, total = [float(probs[k]) for k in ks], [float(scores[k]) for k in ks]
        out = []
        for k, row, p_k, score in zip(ks, rows, p, total):
            target = owned[owner[k]]
            reasons = why.get(owner[k])
            if reasons is None:
                reasons = why[owner[k]] = tuple(target.reasons)
            out.append(
                Candidate(
                    items[k], target.unit, target.kind, p_k, tuple(row), score, reasons, cfg.band, frozen_interests
                )
            )
        return out

    def label(k: int) -> tuple[str, str, str]:
        target = owned[owner[k]]
        return target.unit, items[k].id, target.kind

    return Ranked(ranking, make, label), flags, route


def _offers(
    ctx: PlanContext,
    targets: Sequence[Target],
    placed: frozenset[str],
    is_ready: Readiness,
    ready_units: dict[tuple[str, ...], bool],
) -> list[tuple[Target, list[Item], bool]]:
    """Each target with items the learner may be given for it now, as ``(target, its items,
    whether it takes a mastery check as confirmation now)``, in target order."""
    unanswered = taught_unanswered(ctx)
    done_lately = set(ctx.progress.recent_items)
    out = []
    for target in targets:
        allowed = allowed_items(ctx, target, placed, is_ready, ready_units)
        if not allowed and target.kind == "test_out":  # no check to test out with: practise it
            target = replace(target, kind="learn", reasons=target.reasons[1:])
            allowed = allowed_items(ctx, target, placed, is_ready, ready_units)
        due = check_due(ctx, target)
        if target.kind in ("learn", "remediation") and not due:
            # a mastery check confirms mastery; it is not practice (unless nothing else that
            # answers is there: a reading alone would leave the standard taught, never answered)
            practice = [item for item in allowed if not item.mastery_check]
            if any(item.modality.answers for item in practice):
                allowed = practice
        if target.unit in unanswered and target.kind != "pinned":
            # taught since its last answer (a lesson, a page, a video): the same one is not given
            # again (its band fit is a guess: it sends no answer), and where nothing that answers
            # may be given it waits (another lesson now would tell nothing more, and a struggle on
            # it would never end: the planner would teach it again and again)
            allowed = [item for item in allowed if item.modality.answers or item.id not in done_lately]
            if not any(item.modality.answers for item in allowed):
                allowed = []
        if allowed:
            out.append((target, allowed, due or target.kind in ("reverify", "recheck", "test_out")))
    return out


def _why_nothing(ctx: PlanContext, targets: Sequence[Target]) -> tuple[str, str]:
    """Why a plan has nothing to offer, as ``(code, text)``: an app can say so rather than show
    an empty list."""
    if not any(ctx.index.items_for.values()):
        return "no_items", "the catalog has no item on this framework's standards yet"
    if not targets:
        return "nothing_ready", "nothing is ready to learn or due for review now"
    return (
        "none_allowed",
        "the items of the standards this learner is ready for are excluded by the teacher, not available now, "
        "or not of the kinds asked for",
    )


_TEACHER_LED = (Modality.SMALL_GROUP, Modality.TUTORING)
_TEACHER_LED_MASK = np.array([m in _TEACHER_LED for m in MODALITIES], dtype=bool)


#: the share of the locality bonus a standard keeps while the learner keeps failing it with
#: nothing new to try (see :meth:`_TargetTerms.locality`); measured with the world matrix of the
#: planner report
_STRUGGLING_LOCALITY = 0.3

#: a unit nobody has worked on: no focus, and an optimistic learning progress
_FRESH = (0.0, 0.5)


class _TargetTerms:
    """The score components that depend on the target alone (not on the item), for one planning
    call: what they read of the learner (the standards due for review, the neighbourhood of the
    last activity) is worked out once, not once per target."""

    def __init__(
        self,
        ctx: PlanContext,
        goals: Sequence[str],
        goal_pos: Mapping[str, int],
        route: set[str],
        explore_unit: str | None,
        last: Sequence[str],
    ):
        self.ctx, self.goals, self.goal_pos, self.route = ctx, goals, goal_pos, route
        self.explore_unit, self.last = explore_unit, last
        index, progress = ctx.index, ctx.progress
        self.due = {u for u, prog in progress.units.items() if prog.mastered and review_due(ctx, u) > 0}
        #: the last activity's units and their graph neighbours (prerequisites and dependents)
        self.near = set(last).union(
            *(index.prereqs.get(u, ()) for u in last), *(index.dependents.get(u, ()) for u in last)
        )

    def row(self, target: Target) -> tuple[float, ...]:
        """The components gain, goal, spacing, exploration, priority, focus and locality of
        ``target``, in that order."""
        ctx, unit, kind = self.ctx, target.unit, target.kind
        prog = ctx.progress.units.get(unit)
        focus, progress = _FRESH if prog is None else (self.focus(prog), _learning_progress(prog))
        return (
            (1.0 - ctx.mastery.get(unit, 0.0))
            if kind in ("learn", "remediation", "pinned", "test_out", "explore")
            else 0.3,
            self.goal_fit(unit, kind, target.objective),
            review_due(ctx, unit) if kind == "review" else 0.5 * self.due_prereq_share(unit),
            1.0 if unit == self.explore_unit else 0.5 * progress,
            _PRIORITY[kind],
            focus,
            self.locality(unit),
        )

    def focus(self, prog: StandardProgress) -> float:
        """Keep working on what the learner just started rather than hopping between standards,
        while it goes well: 1 after a success, 0.5 after one failure, nothing after two failures
        in a row (a learner who keeps failing is not helped by more of the same)."""
        ctx = self.ctx
        if (
            prog.mastered
            or not prog.attempts
            or ctx.progress.activities - prog.last_activity > ctx.config.struggle_window
        ):
            return 0.0
        return 1.0 if prog.failures_in_a_row == 0 else 0.5 if prog.failures_in_a_row == 1 else 0.0

    def locality(self, unit: str) -> float:
        """1 when ``unit`` is a standard of the last activity or a graph neighbour of one (one of
        its prerequisites or dependents), else 0: practice transfers along the graph, a jump may
        not.

        A standard failed ``struggle_failures`` times in a row that has nothing but the same kind
        of practice to offer now (no teacher-led item the learner may be given) keeps only
        ``_STRUGGLING_LOCALITY`` of it: more of what keeps failing teaches little, so with the
        default weight the next ready standard is worth the jump, while a strong locality weight
        (jumps ruled out) still keeps the learner on the graph."""
        ctx = self.ctx
        if (
            unit in self.last
            and ctx.progress.get(unit).failures_in_a_row >= ctx.config.struggle_failures
            and not any(item.modality in _TEACHER_LED for item in offered_items(ctx, unit))
        ):
            return _STRUGGLING_LOCALITY
        return 1.0 if unit in self.near else 0.0

    def goal_fit(self, unit: str, kind: str, objective: int | None) -> float:
        """Work on the next goal objective first (the cheapest goal standard to reach, see
        :func:`goal_objectives`), later objectives less; remediation and other route standards
        next; without a goal, closeness to the learner's level."""
        if objective is not None:
            return max(0.3, 1.0 - 0.15 * objective)
        goal_pos = self.goal_pos
        if unit in goal_pos:
            return 1.0 - 0.3 * goal_pos[unit] / max(1, len(goal_pos))
        if kind in ("remediation", "recheck"):
            return 0.8
        if unit in self.route:
            return 0.6
        return level_fit(self.ctx, unit) if not self.goals else 0.0

    def due_prereq_share(self, unit: str) -> float:
        """The share of ``unit``'s prerequisites due for review."""
        pres = self.ctx.index.prereqs.get(unit, ())
        if not pres:
            return 0.0
        due = self.due
        return sum(1 for p in pres if p in due) / len(pres)


def _learning_progress(prog: StandardProgress) -> float:
    """ZPDES-style learning progress: |recent success rate - the one before|, optimistic when new."""
    recent = prog.recent
    if len(recent) < 4:
        return 0.5
    half = len(recent) // 2
    newer, older = recent[half:], recent[:half]
    return abs(sum(newer) / len(newer) - sum(older) / len(older))


def _modality_fits(modality: np.ndarray, lenient: np.ndarray, cfg: PlannerConfig) -> np.ndarray:
    """Preference for each candidate's modality (positions in ``MODALITIES``); teacher-led time is
    kept for remediation, reteaching a standard the learner struggles on, and pinned work
    (``lenient``)."""
    preference = np.array([cfg.modality_preference.get(m.value, 0.5) for m in MODALITIES], dtype=float)[modality]
    return np.where(lenient | ~_TEACHER_LED_MASK[modality], preference, 0.2 * preference)
