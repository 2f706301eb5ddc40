"""Choosing the next activities: candidate standards, item scoring with reasons, intervention.

Candidates come from these places, in this order of precedence:

1. teacher overrides (pinned items and standards always win; excluded items never appear);
2. **remediation**: a standard the learner struggles with (failures in a row, or 3 of the last
   4 attempts failed) sends them to its weakest doubtful prerequisite and flags the teacher; when
   every listed prerequisite looks solid, a prerequisite mastered on weak evidence is
   **re-checked** (``recheck``), the standard is retaught with teacher-led modalities, and the
   previous standard of its cluster is presumed needed first (the graph may miss it, see
   :func:`presumed_prerequisites`);
3. with a goal, the **goal objectives** (:func:`goal_objectives`): the ``objectives`` cheapest
   unmastered goal standards, each with its frontier, i.e. the goal standard itself when its
   prerequisites are in place, else a mastery check on each likely-known missing prerequisite
   (``test_out``) or the teaching of the others (``learn``); without a goal, the outer fringe;
4. **re-verification** of mastered standards on the inner fringe that have not been confirmed,
   and **review** of mastered standards whose spaced-review interval has passed.

A prerequisite is *in place* (:func:`in_place`) when it is mastered (and confirmed), or when the
learner has not worked on it yet and the model believes it known with P >= ``ready_threshold``.
An item is only offered when every standard it practises is in place or ready, except
remediation and pinned work; a mastery check is only offered when it can confirm mastery (or
for a test-out, re-check or re-verification). Each item gets component scores in [0, 1]; the
total is the weighted sum, so each weight moves only its own component.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from configs import PlannerConfig
from engine.catalog import Item, Modality
from engine.planner.index import PlannerIndex
from engine.planner.progress import RECENT, Progress

__all__ = [
    "Candidate",
    "Goal",
    "Overrides",
    "PlanContext",
    "PlanResult",
    "Recommendation",
    "TeacherFlag",
    "recommend",
    "rank_candidates",
]

COMPONENTS = ("band_fit", "gain", "goal", "spacing", "time_cost", "modality", "interest", "novelty",
              "exploration", "mastery_check", "priority", "focus")
_PRIORITY = {"pinned": 1.0, "remediation": 0.8, "recheck": 0.8, "test_out": 0.45, "learn": 0.4, "reverify": 0.3,
             "review": 0.3}


@dataclass(frozen=True)
class Goal:
    standards: tuple[str, ...]
    date: float | None = None  # epoch seconds


@dataclass(frozen=True)
class Overrides:
    pinned_standards: tuple[str, ...] = ()
    pinned_items: tuple[str, ...] = ()
    excluded_items: frozenset[str] = frozenset()
    goal_locked: bool = False


@dataclass(frozen=True)
class TeacherFlag:
    standard: str
    reason: str
    suggested_modality: str
    remediation: str | None = None


@dataclass
class PlanContext:
    """Everything the planner needs about one learner, as plain values.

    ``predict`` returns P(success) for a list of items (the learner-state model's answer);
    ``mastery`` is the model's P(mastered) per standard code; ``now`` is in seconds.
    """

    index: PlannerIndex
    config: PlannerConfig
    mastery: Mapping[str, float]
    predict: Callable[[Sequence[Item]], np.ndarray]
    progress: Progress
    now: float
    goal: Goal | None = None
    overrides: Overrides = Overrides()
    interests: tuple[str, ...] = ()
    modalities: frozenset[Modality] | None = None
    level: float | None = None  # the learner's grade level, when known (used when there is no goal)
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


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
        return tuple(_reasons(self.why, self.kind, self.item, self.p_success, self.components, self.band,
                              self.interests))


@dataclass(frozen=True)
class Recommendation:
    item: Item
    standard: str
    kind: str
    p_success: float
    score: float
    components: dict[str, float]
    reasons: tuple[str, ...]
    alternatives: tuple[Candidate, ...] = ()


@dataclass(frozen=True)
class PlanResult:
    recommendations: list[Recommendation]
    flags: list[TeacherFlag]
    route: list[str]


# ---------------------------------------------------------------------------- candidate standards
@dataclass
class _Target:
    unit: str
    kind: str
    reasons: list[str]
    remediation_for: str | None = None
    objective: int | None = None  # rank of the goal standard this work leads to (0 = the next one)


def _fmt_codes(codes: Sequence[str], limit: int = 4) -> str:
    shown = ", ".join(codes[:limit])
    return shown + (f" and {len(codes) - limit} more" if len(codes) > limit else "")


def goal_units(ctx: PlanContext) -> list[str]:
    if ctx.goal is None:
        return []
    return ctx.index.units(c for c in ctx.goal.standards if c in ctx.index.graph.standards)


def _struggling(ctx: PlanContext, unit: str) -> str | None:
    """Why the learner is struggling on ``unit``, or None."""
    prog = ctx.progress.get(unit)
    if ctx.progress.activities - prog.last_activity >= ctx.config.struggle_window:
        return None  # not recent: the learner has moved on (remediation done, back to it later)
    if prog.failures_in_a_row >= ctx.config.struggle_failures:
        return f"{prog.failures_in_a_row} failures in a row on {unit}"
    if len(prog.recent) >= 4 and sum(1 for r in prog.recent[-4:] if r < 0.5) >= 3:
        return f"3 of the last 4 attempts on {unit} failed"
    return None


def prerequisites(ctx: PlanContext, unit: str, presumed: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The graph's prerequisites of ``unit``, plus the one presumed for this learner, if any."""
    listed = ctx.index.prereqs[unit]
    extra = presumed.get(unit) if presumed else None
    return listed if extra is None or extra in listed else (*listed, extra)


def presumed_prerequisites(ctx: PlanContext, placed: frozenset[str]) -> dict[str, str]:
    """Prerequisites the graph may be missing, for this learner: when the learner has failed a
    standard ``struggle_failures`` times in a row although all its listed prerequisites are in
    place, the nearest earlier standard of its cluster (the curriculum's sequence) that is not
    in place is presumed needed first. Stateless: it holds while the failures in a row stand and
    the presumed standard is not in place, so it lifts on the first success."""
    presumed: dict[str, str] = {}
    if not ctx.config.presume_missing:
        return presumed
    mastered = ctx.progress.mastered
    for unit, prog in ctx.progress.units.items():
        if (prog.mastered or prog.failures_in_a_row < ctx.config.struggle_failures or unit not in ctx.index.prereqs
                or not all(p in placed for p in ctx.index.prereqs[unit])):
            continue
        ancestors = ctx.index.ancestors[unit]
        for earlier in ctx.index.cluster_before.get(unit, ()):
            if earlier not in placed and earlier not in mastered and unit not in ctx.index.ancestors[earlier] \
                    and earlier not in ancestors:
                presumed[unit] = earlier
                break
    return presumed


def _is_ready(ctx: PlanContext, unit: str, placed: frozenset[str], presumed: Mapping[str, str] | None = None) -> bool:
    return all(p in placed for p in prerequisites(ctx, unit, presumed))


def _readiness(ctx: PlanContext, placed: frozenset[str], presumed: Mapping[str, str]) -> Callable[[str], bool]:
    """:func:`_is_ready` memoized for one planning call (``placed`` and ``presumed`` are fixed there)."""
    memo: dict[str, bool] = {}

    def is_ready(unit: str) -> bool:
        ok = memo.get(unit)
        if ok is None:
            ok = memo[unit] = _is_ready(ctx, unit, placed, presumed)
        return ok

    return is_ready


def weakest_prerequisite(ctx: PlanContext, unit: str, mastered: frozenset[str],
                         presumed: Mapping[str, str] | None = None) -> str | None:
    """The prerequisite most likely missing: descend from ``unit`` to its least-mastered
    prerequisite while that one is itself doubtful (below the ready threshold). Failures on
    ``unit`` lower the model's belief in its prerequisites, so a prerequisite that was only
    believed known soon becomes doubtful."""
    current, seen = unit, {unit}
    best: str | None = None
    while True:
        pres = [p for p in prerequisites(ctx, current, presumed) if p not in seen]
        if not pres:
            return best
        weakest = min(pres, key=lambda p: (ctx.mastery.get(p, 0.0), ctx.index.order[p]))
        if ctx.mastery.get(weakest, 0.0) >= ctx.config.ready_threshold:
            return best  # every prerequisite here looks solid
        best = weakest
        seen.add(weakest)
        current = weakest


def _unverified_prerequisite(ctx: PlanContext, unit: str, mastered: frozenset[str],
                             presumed: Mapping[str, str] | None = None) -> str | None:
    """A mastered prerequisite of ``unit`` that no check has confirmed since it was mastered (the
    least likely first): the suspect when the learner struggles on top of solid-looking ones.
    Mastery on one passed check (test-out, placement) is suspect at once; mastery earned by a
    streak once the failures on ``unit`` have pulled its P(mastered) below the mastery threshold."""
    cfg = ctx.config
    suspects = []
    for p in prerequisites(ctx, unit, presumed):
        prog = ctx.progress.get(p)
        if p in mastered and prog.verified_at is None and (
                prog.mastered_by != "evidence" or ctx.mastery.get(p, 0.0) < cfg.mastery_threshold):
            suspects.append(p)
    return min(suspects, key=lambda p: (ctx.mastery.get(p, 0.0), ctx.index.order[p])) if suspects else None


def confirmed(ctx: PlanContext, unit: str) -> bool:
    """A mastered unit others may build on: mastered by a streak of at least ``confirm_streak``
    successes, by a test-out or placement, or re-verified by a passed check since."""
    prog = ctx.progress.get(unit)
    return prog.mastered and (prog.verified_at is not None or prog.mastered_by != "evidence"
                              or prog.streak >= ctx.config.confirm_streak)


def in_place(ctx: PlanContext, mastered: frozenset[str]) -> frozenset[str]:
    """Units a new standard may build on: mastered and confirmed (see :func:`confirmed`), or not
    practised yet and believed known with P >= ready_threshold (a prior from placement or grade
    level, or evidence from dependents). Once the learner has practised a standard, only
    mastery puts it in place.

    Practising on top of a likely-known prerequisite is evidence about it too; a struggle sends
    the learner back to it at once (remediation)."""
    cfg = ctx.config
    placed = {u for u in mastered if confirmed(ctx, u)}
    for u in ctx.index.order:
        if ctx.mastery.get(u, 0.0) >= cfg.ready_threshold and ctx.progress.get(u).attempts == 0:
            placed.add(u)
    return frozenset(placed)


def _ready_reasons(ctx: PlanContext, unit: str, mastered: frozenset[str]) -> list[str]:
    pres = list(ctx.index.prereqs[unit])
    shaky = [p for p in pres if p not in mastered]
    if not pres:
        return ["ready: no prerequisites"]
    if not shaky:
        return [f"ready: prerequisites {_fmt_codes(pres)} mastered"]
    return [f"ready: prerequisites {_fmt_codes([p for p in pres if p in mastered]) or 'none'} mastered, "
            f"{_fmt_codes(shaky)} likely known"]


def _learn_or_test_out(ctx: PlanContext, unit: str, reasons: list[str], objective: int | None) -> _Target:
    """A standard nobody has worked on that the model believes likely known gets a mastery check
    first (test-out); a mastered one not yet confirmed gets a re-check; anything else is learned."""
    m = ctx.mastery.get(unit, 0.0)
    if ctx.progress.get(unit).mastered:  # mastered on a short streak: confirm before building on it
        return _Target(unit, "reverify", [f"re-check of {unit} before building on it (mastered on a streak of "
                                          f"{ctx.progress.get(unit).streak})", *reasons], objective=objective)
    if ctx.progress.get(unit).attempts == 0 and m >= ctx.config.likely_known:
        return _Target(unit, "test_out", [f"likely known already (P(mastered) {m:.2f}): a mastery check can confirm it",
                                          *reasons], objective=objective)
    return _Target(unit, "learn", reasons, objective=objective)


def goal_objectives(ctx: PlanContext, placed: frozenset[str], goal_set: set[str] | None = None,
                    presumed: Mapping[str, str] | None = None) -> list[tuple[str, float, list[str]]]:
    """The goal's unmastered standards, cheapest first, each as ``(unit, estimated activities,
    frontier)``. The frontier is the work that leads to the unit now: the unit itself when its
    prerequisites are in place; otherwise, for each missing prerequisite, a mastery check when it
    is likely known and ready (test-out) or, recursively, its own frontier. Prerequisites shared
    by several goal standards are verified once and serve them all; the estimate counts a check
    as one activity and a standard to learn as ``activities_per_standard`` times P(not known).
    Goal standards the learner is stuck on (:func:`is_parked`) come after all the others."""
    cfg, index = ctx.config, ctx.index
    mastered = ctx.progress.mastered
    per = cfg.activities_per_standard
    memo: dict[str, tuple[float, list[str]]] = {}

    def likely(unit: str) -> bool:
        return ctx.progress.get(unit).attempts == 0 and ctx.mastery.get(unit, 0.0) >= cfg.likely_known

    def frontier(unit: str) -> tuple[float, list[str]]:
        if unit in memo:
            return memo[unit]
        memo[unit] = (0.0, [])  # a cycle guard; the learning graph is a DAG
        own = per * (1.0 - ctx.mastery.get(unit, 0.0))
        missing = [p for p in prerequisites(ctx, unit, presumed) if p not in placed]
        if not missing:
            memo[unit] = (own if not likely(unit) else 1.0 + own, [unit])
            return memo[unit]
        cost, work = own, {}  # an ordered set
        for pre in missing:
            c, w = frontier(pre)
            cost += c
            work.update(dict.fromkeys(w))
        memo[unit] = (cost, list(work))
        return memo[unit]

    goals = goal_set if goal_set is not None else set(goal_units(ctx))
    found, parked = [], []
    for unit in goal_units(ctx):
        if unit in goals and unit not in mastered:
            cost, work = frontier(unit)
            if work:
                (parked if is_parked(ctx, unit) else found).append((cost, index.order[unit], unit, work))
    found.sort()
    parked.sort()
    return [(unit, cost, work) for cost, _, unit, work in found + parked]


def is_parked(ctx: PlanContext, unit: str) -> bool:
    """The learner is stuck on ``unit``: of their last attempts on it (``RECENT``, all of them
    made), at least ``park_after`` failed, the last one too, and they worked on it within the
    last ``park_for`` activities. Other goal standards then go first for a while: the learner
    may be missing a prerequisite the graph does not list, and (as in ZPDES) work moves to where
    progress is. A lucky guess now and then does not hide being stuck."""
    cfg, prog = ctx.config, ctx.progress.get(unit)
    recent = prog.recent
    return (cfg.park_after > 0 and len(recent) >= RECENT and recent[-1] < 0.5
            and sum(1 for r in recent if r < 0.5) >= cfg.park_after
            and ctx.progress.activities - prog.last_activity < cfg.park_for)


def _targets(ctx: PlanContext, route: list[str], mastered: frozenset[str], placed: frozenset[str],
             goal_set: set[str], presumed: Mapping[str, str], is_ready: Callable[[str], bool]
             ) -> tuple[list[_Target], list[TeacherFlag]]:
    cfg, index = ctx.config, ctx.index
    targets: list[_Target] = []
    flags: list[TeacherFlag] = []
    seen: set[str] = set()

    def add(target: _Target) -> None:
        if target.unit not in seen:
            seen.add(target.unit)
            targets.append(target)

    for code in ctx.overrides.pinned_standards:
        for unit in index.units([code]):
            add(_Target(unit, "pinned", [f"pinned by teacher: {code}"]))

    # Remediation: struggling units (recently practised, not mastered) send the learner back.
    for unit, prog in ctx.progress.units.items():
        if prog.mastered or unit not in index.prereqs:
            continue
        why = _struggling(ctx, unit)
        if why is None:
            continue
        weak = weakest_prerequisite(ctx, unit, mastered, presumed)
        if weak is not None:
            add(_Target(weak, "remediation", [f"remediation for {unit}: {why}; weakest prerequisite {weak} "
                                              f"(P(mastered) {ctx.mastery.get(weak, 0.0):.2f})"], unit))
            flags.append(TeacherFlag(unit, why, "small_group", weak))
            continue
        suspect = _unverified_prerequisite(ctx, unit, mastered, presumed)
        if suspect is not None:  # mastered, but never confirmed since: check it before reteaching
            add(_Target(suspect, "recheck", [f"re-check of {suspect}: the learner struggles on {unit} ({why})"], unit))
        flags.append(TeacherFlag(unit, why + "; its prerequisites look solid, reteach it", "tutoring", None))

    if ctx.goal is not None:
        # the goal's standards, cheapest first, each with the work that leads to it now
        objectives = goal_objectives(ctx, placed, goal_set, presumed)[:max(1, cfg.objectives)]
        for rank, (goal_unit, cost, frontier) in enumerate(objectives):
            for unit in frontier:
                reasons = _ready_reasons(ctx, unit, mastered)
                if unit == goal_unit:
                    reasons.append(f"goal standard, next on the route (about {cost:.0f} activities)" if rank == 0
                                   else f"goal standard (about {cost:.0f} activities)")
                else:
                    reasons.append(f"prerequisite on the way to goal standard {goal_unit}")
                    if any(presumed.get(d) == unit for d in presumed):
                        stuck = [d for d in presumed if presumed[d] == unit]
                        reasons.append(f"the learner is stuck on {_fmt_codes(stuck)}, which comes after it in the curriculum")
                add(_learn_or_test_out(ctx, unit, reasons, rank))
    elif not ctx.overrides.goal_locked:
        for unit in index.order:
            if unit not in placed and is_ready(unit):
                add(_learn_or_test_out(ctx, unit, _ready_reasons(ctx, unit, mastered), None))
    if ctx.goal is not None and not any(t.kind in ("learn", "test_out") for t in targets) \
            and not ctx.overrides.goal_locked:  # the goal is done (or blocked): the outer fringe
        for unit in index.order:
            if unit not in placed and is_ready(unit):
                add(_learn_or_test_out(ctx, unit, _ready_reasons(ctx, unit, mastered), None))

    # Re-verification: mastered units on the inner fringe that no check has confirmed yet.
    for unit in mastered:
        prog = ctx.progress.get(unit)
        if prog.verified_at is not None or prog.mastered_at is None:
            continue
        if any(d in mastered for d in index.dependents[unit]):
            continue
        if ctx.now - prog.mastered_at >= cfg.reverify_after_s:
            add(_Target(unit, "reverify", [f"re-check of mastery of {unit} (mastered by {prog.mastered_by}, "
                                           f"{_ago(ctx.now - prog.mastered_at)} ago, not yet verified)"]))

    for unit in mastered:
        due = review_due(ctx, unit)
        if due > 0:
            add(_Target(unit, "review", [f"review due: {unit} last reviewed {_ago(ctx.now - ctx.progress.get(unit).last_review)} ago"]))
    return targets, flags


def review_due(ctx: PlanContext, unit: str) -> float:
    """0 when no review is due; otherwise how overdue, as a share of the interval (capped at 1)."""
    prog = ctx.progress.get(unit)
    if not prog.mastered or prog.last_review is None:
        return 0.0
    interval = ctx.config.review_interval_s * ctx.config.review_growth ** prog.reviews
    overdue = ctx.now - prog.last_review - interval
    return 0.0 if overdue < 0 else min(1.0, 0.1 + overdue / interval)


def _ago(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} hours"
    return f"{seconds / 60:.0f} minutes"


# ---------------------------------------------------------------------------- scoring
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


def _item_allowed(ctx: PlanContext, item: Item, target: _Target, placed: frozenset[str],
                  is_ready: Callable[[str], bool]) -> bool:
    if item.id in ctx.overrides.excluded_items:
        return False
    if ctx.modalities is not None and item.modality not in ctx.modalities:
        return False
    if target.kind in ("reverify", "recheck", "test_out") and not item.mastery_check:
        return False
    if target.kind in ("pinned", "remediation"):
        return True
    # Every unit the item practises must be mastered or ready: never practise past a gap.
    return all(u in placed or is_ready(u) for u in ctx.index.item_units[item.id])


def _check_due(ctx: PlanContext, target: _Target) -> bool:
    """A mastery check can confirm mastery of a learn or remediation target now: one success
    short of the streak with P(mastered) within 0.2 of the threshold, or (remediation) a prerequisite nobody
    has checked yet that is likely known."""
    if target.kind not in ("learn", "remediation"):
        return False
    cfg, prog = ctx.config, ctx.progress.get(target.unit)
    m = ctx.mastery.get(target.unit, 0.0)
    if prog.streak >= cfg.streak_required - 1 and m >= cfg.mastery_threshold - 0.2:
        return True
    return target.kind == "remediation" and prog.attempts == 0 and m >= cfg.likely_known


def rank_candidates(ctx: PlanContext) -> tuple[list[Candidate], list[TeacherFlag], list[str]]:
    """All allowed (item, standard) candidates, best first, with the teacher flags and the route."""
    cfg, index = ctx.config, ctx.index
    mastered = ctx.progress.mastered
    goals = goal_units(ctx)
    route = index.route(mastered, goals) if goals else []
    goal_set = set(goals)
    placed = in_place(ctx, mastered)
    presumed = presumed_prerequisites(ctx, placed)
    is_ready = _readiness(ctx, placed, presumed)
    targets, flags = _targets(ctx, route, mastered, placed, goal_set, presumed, is_ready)
    reteach = {f.standard for f in flags if f.remediation is None}  # struggling on solid prerequisites
    recent = ctx.progress.recent_items[-cfg.novelty_window:]
    pairs: list[tuple[Item, _Target]] = []
    for target in targets:
        allowed = [item for item in index.items_for.get(target.unit, ())
                   if _item_allowed(ctx, item, target, placed, is_ready)]
        if not allowed and target.kind == "test_out":  # no check to test out with: practise it
            target = replace(target, kind="learn", reasons=target.reasons[1:])
            allowed = [item for item in index.items_for.get(target.unit, ())
                       if _item_allowed(ctx, item, target, placed, is_ready)]
        if target.kind in ("learn", "remediation") and not _check_due(ctx, target):
            # a mastery check confirms mastery; it is not practice (unless nothing else is there)
            allowed = [item for item in allowed if not item.mastery_check] or allowed
        pairs.extend((item, target) for item in allowed)
    for item_id in ctx.overrides.pinned_items:
        if item_id in index.catalog and item_id not in ctx.overrides.excluded_items:
            item = index.catalog[item_id]
            units = index.item_units[item_id] or item.standards
            pairs.insert(0, (item, _Target(units[0], "pinned", [f"pinned by teacher: item {item_id}"])))
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
    # Per target, the components that do not depend on the item are computed once; the score
    # adds weight x component in the components' order (the same sum, term by term, as written).
    weighted = tuple(weights.get(name, 0.0) for name in _COMPONENTS)
    per_target: dict[int, tuple] = {}
    modality_fit: dict[tuple[Modality, str], float] = {}
    candidates = []
    for (item, target), p in zip(pairs, probs):
        fixed = per_target.get(id(target))
        if fixed is None:
            unit, kind = target.unit, target.kind
            m = ctx.mastery.get(unit, 0.0)
            prog = ctx.progress.get(unit)
            fixed = per_target[id(target)] = (
                unit, kind,
                (1.0 - m) if kind in ("learn", "remediation", "pinned", "test_out") else 0.3,
                _goal_fit(ctx, unit, kind, goals, goal_pos, route_set, target.objective),
                review_due(ctx, unit) if kind == "review" else 0.5 * _due_prereq_share(ctx, unit),
                "remediation" if unit in reteach else kind,
                1.0 if unit == explore_unit else 0.5 * _learning_progress(ctx, unit),
                kind in ("reverify", "recheck", "test_out") or _check_due(ctx, target),
                _PRIORITY[kind],
                # keep working on what the learner just started rather than hopping between standards
                1.0 if (not prog.mastered and prog.attempts
                        and ctx.progress.activities - prog.last_activity <= cfg.struggle_window) else 0.0,
            )
        unit, kind, gain, goal_fit, spacing, modality_kind, exploration, check_counts, priority, focus = fixed
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
        )
        score = 0
        for w, value in zip(weighted, values):
            score += w * value
        candidates.append(Candidate(item, unit, kind, float(p), dict(zip(_COMPONENTS, values)), score,
                                    tuple(target.reasons), cfg.band, frozen_interests))
    # teacher overrides always win, whatever the scores
    candidates.sort(key=lambda c: (c.kind != "pinned", -c.score, index.order.get(c.standard, 0), c.item.id))
    return candidates, flags, route


_TEACHER_LED = (Modality.SMALL_GROUP, Modality.TUTORING)
# the score's components, in the order they are reported and summed
_COMPONENTS = ("band_fit", "gain", "goal", "spacing", "time_cost", "modality", "interest", "novelty", "exploration",
               "mastery_check", "priority", "focus")


def _goal_fit(ctx: PlanContext, unit: str, kind: str, goals: Sequence[str], goal_pos: Mapping[str, int],
              route: set[str], objective: int | None = None) -> float:
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
    return _level_fit(ctx, unit) if not goals else 0.0


def _level_fit(ctx: PlanContext, unit: str) -> float:
    """Without a goal, standards near the learner's grade level fit best (0.5 when the level is unknown)."""
    grade = ctx.index.graph.standards[unit].grade_num
    if ctx.level is None or grade is None:
        return 0.5
    return max(0.0, 1.0 - abs(grade - ctx.level) / 3.0)


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


def _reasons(why: Sequence[str], kind: str, item: Item, p: float, comps: Mapping[str, float],
             band: tuple[float, float], interests: frozenset[str]) -> list[str]:
    reasons = list(why)
    low, high = band
    if low <= p <= high:
        reasons.append(f"P(success) {p:.2f} is in the ZPD band [{low:.2f}, {high:.2f}]")
    elif p < low:
        reasons.append(f"P(success) {p:.2f} is below the ZPD band [{low:.2f}, {high:.2f}]")
    else:
        reasons.append(f"P(success) {p:.2f} is above the ZPD band [{low:.2f}, {high:.2f}]")
    if comps["mastery_check"] > 0:
        reasons.append("mastery check: can confirm mastery")
    if comps["spacing"] > 0 and kind != "review":
        reasons.append("also reviews prerequisites that are due")
    matched = sorted(interests & set(item.tags))
    if matched:
        reasons.append(f"matches interests: {', '.join(matched)}")
    if comps["exploration"] >= 1.0:
        reasons.append("exploring: a standard the learning-progress bandit picked")
    return reasons


def recommend(ctx: PlanContext, n: int = 1, k_alternatives: int = 2) -> PlanResult:
    """The ``n`` best activities (at most one per standard), each with up to ``k_alternatives``
    other items on the same standard for student choice."""
    ranked, flags, route = rank_candidates(ctx)
    chosen: list[Recommendation] = []
    used: set[str] = set()
    for cand in ranked:
        if len(chosen) >= n:
            break
        if cand.standard in used and cand.kind != "pinned":
            continue
        used.add(cand.standard)
        alts = tuple(c for c in ranked if c.standard == cand.standard and c.item.id != cand.item.id)[:k_alternatives]
        chosen.append(Recommendation(cand.item, cand.standard, cand.kind, cand.p_success, cand.score,
                                     cand.components, cand.reasons, alts))
    return PlanResult(chosen, flags, route)
