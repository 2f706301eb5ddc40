"""Which standards the learner should work on now (candidate standards) and which items may be
offered for them (gating).

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

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from engine.catalog import Item
from engine.observations import Mastery
from engine.planner.context import PlanContext, TeacherFlag, goal_units
from engine.planner.index import grade_fit
from engine.planner.progress import RECENT
from engine.planner.reasons import Deferred, ago, fmt_codes, ready_reasons

__all__ = [
    "Readiness",
    "Target",
    "allowed_items",
    "check_due",
    "confirmed",
    "contradicted",
    "explore_candidates",
    "goal_objectives",
    "in_place",
    "is_parked",
    "level_fit",
    "next_probe",
    "offered_items",
    "outer_fringe",
    "presumed_prerequisites",
    "review_due",
    "route_to_goal",
    "select_targets",
    "weakest_prerequisite",
]


@dataclass
class Target:
    unit: str
    kind: str
    reasons: Sequence[str]
    remediation_for: str | None = None
    objective: int | None = None  # rank of the goal standard this work leads to (0 = the next one)


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
    in place, and that some item practises, is presumed needed first. Stateless: it holds while
    the failures in a row stand and the presumed standard is not in place, so it lifts on the
    first success."""
    presumed: dict[str, str] = {}
    if not ctx.config.presume_missing:
        return presumed
    mastered = ctx.progress.mastered
    for unit, prog in ctx.progress.units.items():
        if (
            prog.mastered
            or prog.failures_in_a_row < ctx.config.struggle_failures
            or unit not in ctx.index.prereqs
            or not all(p in placed for p in ctx.index.prereqs[unit])
        ):
            continue
        ancestors = ctx.index.ancestors[unit]
        for earlier in ctx.index.cluster_before.get(unit, ()):
            if (
                earlier not in placed
                and earlier not in mastered
                and earlier in ctx.index.practised
                and unit not in ctx.index.ancestors[earlier]
                and earlier not in ancestors
            ):
                presumed[unit] = earlier
                break
    return presumed


def _ready(ctx: PlanContext, unit: str, placed: frozenset[str], presumed: Mapping[str, str] | None = None) -> bool:
    return all(p in placed for p in prerequisites(ctx, unit, presumed))


class Readiness:
    """Whether a unit is ready (every prerequisite, listed or presumed, in place) for one planning
    call (``placed`` and ``presumed`` are fixed there): unit by unit, memoized, or for every unit
    at once over arrays (:attr:`mask`) where a scan needs most of them; once the array is there,
    every answer is read from it."""

    def __init__(self, ctx: PlanContext, placed: frozenset[str], presumed: Mapping[str, str]):
        self.ctx, self.placed, self.presumed = ctx, placed, presumed
        self._memo: dict[str, bool] = {}
        self._all: list[bool] | None = None

    def __call__(self, unit: str) -> bool:
        if self._all is not None:
            return self._all[self.ctx.index.order[unit]]
        ok = self._memo.get(unit)
        if ok is None:
            ok = self._memo[unit] = _ready(self.ctx, unit, self.placed, self.presumed)
        return ok

    def within(self, units: Sequence[str]) -> bool:
        """Every prerequisite (listed or presumed) of each of ``units`` is in place or one of
        ``units``: an item practising them has no gap but the one it teaches across."""
        inside = set(units)
        return all(p in self.placed or p in inside for u in units for p in prerequisites(self.ctx, u, self.presumed))

    @cached_property
    def placed_mask(self) -> np.ndarray:
        """``placed`` as a mask over the index's ``order``."""
        return self.ctx.index.positions(self.placed)

    @cached_property
    def mask(self) -> np.ndarray:
        """Every unit's readiness, by position in the index's ``order``."""
        index = self.ctx.index
        owners, pres = index.prerequisite_pairs
        out = ~self.placed_mask
        ready = np.bincount(owners, weights=out[pres], minlength=len(out)) == 0
        for unit, extra in self.presumed.items():
            if extra not in self.placed:
                ready[index.order[unit]] = False
        self._all = ready.tolist()
        return ready


def weakest_prerequisite(ctx: PlanContext, unit: str, presumed: Mapping[str, str] | None = None) -> str | None:
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


def unverified_prerequisite(
    ctx: PlanContext, unit: str, mastered: frozenset[str], presumed: Mapping[str, str] | None = None
) -> str | None:
    """A mastered prerequisite of ``unit`` that no check has confirmed since it was mastered (the
    least likely first): the suspect when the learner struggles on top of solid-looking ones.
    Mastery on one passed check (test-out, placement) is suspect at once; mastery earned by a
    streak once the failures on ``unit`` have pulled its P(mastered) below the ready threshold,
    or once ``recheck_after`` failures in a row on ``unit`` have not moved it (once per run of
    failures: a lucky streak can master a standard the learner cannot yet build on)."""
    cfg = ctx.config
    suspects = []
    dependent = ctx.progress.get(unit)
    run_start = dependent.last_activity - dependent.failures_in_a_row
    for p in prerequisites(ctx, unit, presumed):
        prog = ctx.progress.get(p)
        if (
            p in mastered
            and not verified(ctx, p)
            and (
                prog.mastered_by != "evidence"
                or ctx.mastery.get(p, 0.0) < cfg.ready_threshold
                or (
                    0 < cfg.recheck_after <= dependent.failures_in_a_row
                    and prog.last_activity <= run_start  # not re-checked during this run of failures
                )
            )
        ):
            suspects.append(p)
    return min(suspects, key=lambda p: (ctx.mastery.get(p, 0.0), ctx.index.order[p])) if suspects else None


def verified(ctx: PlanContext, unit: str) -> bool:
    """Mastery of ``unit`` re-verified since it was earned: by a passed check, or, where the
    catalog has no check that can confirm it, by its latest answer, a success at least
    ``reverify_after_s`` after it was mastered (what the planner re-checks it with: else it
    would be re-checked forever)."""
    prog = ctx.progress.get(unit)
    if prog.verified_at is not None:
        return True
    return (
        unit not in ctx.index.checkable
        and prog.mastered_at is not None
        and prog.last_time is not None
        and bool(prog.recent)
        and prog.recent[-1] >= 0.5
        and prog.last_time - prog.mastered_at >= ctx.config.reverify_after_s
    )


def confirmed(ctx: PlanContext, unit: str) -> bool:
    """A mastered unit others may build on: mastered by a streak that includes a passed mastery
    check, or with ``confirm_streak`` successes among the last ``confirm_streak + 1`` attempts of
    practice (the last ``streak_required`` in a row); by a test-out or placement; or re-verified
    since (:func:`verified`). Practice alone is weaker evidence than a check, so prerequisites
    mastered on practice are over-learned a little before anything is built on them."""
    prog, cfg = ctx.progress.get(unit), ctx.config
    if not prog.mastered:
        return False
    if prog.mastered_by != "evidence" or verified(ctx, unit):
        return True
    if prog.streak < min(cfg.streak_required, cfg.confirm_streak):
        return False
    # ``checked``: the current streak includes a passed check
    return prog.checked or sum(r >= 0.5 for r in prog.recent[-cfg.confirm_streak - 1 :]) >= cfg.confirm_streak


def in_place(ctx: PlanContext, mastered: frozenset[str]) -> frozenset[str]:
    """Units a new standard may build on: mastered and confirmed (see :func:`confirmed`), or not
    practised yet and believed known with P >= ready_threshold (a prior from placement or grade
    level, or evidence from dependents). Once the learner has practised a standard, only
    mastery puts it in place.

    Practising on top of a likely-known prerequisite is evidence about it too; a struggle sends
    the learner back to it at once (remediation)."""
    threshold, order, units = ctx.config.ready_threshold, ctx.index.order, ctx.progress.units
    placed = {u for u in mastered if confirmed(ctx, u)}
    mastery = ctx.mastery
    known = (
        mastery.at_least(threshold)
        if isinstance(mastery, Mastery)
        else [u for u, m in mastery.items() if m >= threshold]
    )
    fresh = order.keys() & known  # (set operations: the prior may believe hundreds known)
    fresh.difference_update([u for u, prog in units.items() if prog.attempts])
    return frozenset(placed | fresh)


def _learn_or_test_out(ctx: PlanContext, unit: str, reasons: Sequence[str], objective: int | None) -> Target:
    """A standard nobody has worked on that the model believes likely known gets a mastery check
    first (test-out); a mastered one not yet confirmed gets a re-check; anything else is learned."""
    m = ctx.mastery.get(unit, 0.0)
    prog = ctx.progress.get(unit)
    if prog.mastered:  # mastered on a short streak: confirm before building on it
        why = "before building on it" if ctx.index.dependents.get(unit) else "to confirm mastery"
        streak = prog.streak
        return Target(
            unit,
            "reverify",
            Deferred(lambda: [f"re-check of {unit} {why} (mastered on a streak of {streak})", *reasons]),
            objective=objective,
        )
    if prog.attempts == 0 and m >= ctx.config.likely_known:
        return Target(
            unit,
            "test_out",
            Deferred(lambda: [f"likely known already (P(mastered) {m:.2f}): a mastery check can confirm it", *reasons]),
            objective=objective,
        )
    return Target(unit, "learn", reasons, objective=objective)


def goal_objectives(
    ctx: PlanContext,
    placed: frozenset[str],
    goal_set: set[str] | None = None,
    presumed: Mapping[str, str] | None = None,
) -> list[tuple[str, float, list[str]]]:
    """The goal's unmastered standards, cheapest first, each as ``(unit, estimated activities,
    frontier)``. The frontier is the work that leads to the unit now: the unit itself when its
    prerequisites are in place; otherwise, for each missing prerequisite, a mastery check when it
    is likely known and ready (test-out) or, recursively, its own frontier. Prerequisites shared
    by several goal standards are verified once and serve them all; the estimate counts a check
    as one activity and a standard to learn as ``activities_per_standard`` times P(not known).
    The goal standard whose frontier the last activity was on (or the one before it, when the last
    was a re-check of a mastered standard) stays first (a failure raises its estimate, but a
    learner who hops to another standard after each failure finishes nothing);
    goal standards the learner is stuck on (:func:`is_parked`) come after all the others."""
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
    # the work in progress: the last activity's standards, or those of the one before it when the
    # last was on mastered standards only (a re-check or a review between two attempts)
    last: set[str] = set()
    for item_id in ctx.progress.recent_items[-1:-3:-1]:
        last = set(index.item_units.get(item_id, ()))
        if not last <= mastered:
            break
    found: list[tuple[bool, float, int, str, list[str]]] = []  # (not current, cost, order, unit, work)
    parked: list[tuple[bool, float, int, str, list[str]]] = []
    for unit in goal_units(ctx):
        if unit in goals and unit not in mastered:
            cost, work = frontier(unit)
            if work:
                current = not last.isdisjoint(work)
                (parked if is_parked(ctx, unit) else found).append((not current, cost, index.order[unit], unit, work))
    found.sort()
    parked.sort()
    return [(unit, cost, work) for _, cost, _, unit, work in found + parked]


def is_parked(ctx: PlanContext, unit: str) -> bool:
    """The learner is stuck on ``unit``: of their last attempts on it (``RECENT``, all of them
    made), at least ``park_after`` failed, the last one too, and they worked on it within the
    last ``park_for`` activities. Other goal standards then go first for a while: the learner
    may be missing a prerequisite the graph does not list, and (as in ZPDES) work moves to where
    progress is. A lucky guess now and then does not hide being stuck."""
    cfg, prog = ctx.config, ctx.progress.get(unit)
    recent = prog.recent
    return (
        cfg.park_after > 0
        and len(recent) >= RECENT
        and recent[-1] < 0.5
        and sum(1 for r in recent if r < 0.5) >= cfg.park_after
        and ctx.progress.activities - prog.last_activity < cfg.park_for
    )


def select_targets(
    ctx: PlanContext,
    mastered: frozenset[str],
    placed: frozenset[str],
    goal_set: set[str],
    presumed: Mapping[str, str],
    is_ready: Readiness,
    every_objective: bool = False,
) -> tuple[list[Target], list[TeacherFlag]]:
    """The standards to work on now, most pressing first, and the flags for the teacher. With a
    goal, the work toward its ``[planner] objectives`` cheapest standards (see
    :func:`goal_objectives`), or toward all of them with ``every_objective`` (see
    ``scoring.rank_candidates``: when no new work may be given toward the nearest ones, the work
    goes on toward the others rather than stopping)."""
    cfg, index = ctx.config, ctx.index
    targets: list[Target] = []
    flags: list[TeacherFlag] = []
    seen: set[str] = set()

    def add(target: Target) -> None:
        if target.unit not in seen:
            seen.add(target.unit)
            targets.append(target)

    for code in ctx.overrides.pinned_standards:
        for unit in index.units([code]):
            add(Target(unit, "pinned", [f"pinned by teacher: {code}"]))

    # Remediation: struggling units (recently practised, not mastered) send the learner back.
    for unit, prog in ctx.progress.units.items():
        if prog.mastered or unit not in index.prereqs:
            continue
        why = _struggling(ctx, unit)
        if why is None:
            continue
        weak = weakest_prerequisite(ctx, unit, presumed)
        if weak is not None:
            add(
                Target(
                    weak,
                    "remediation",
                    [
                        f"remediation for {unit}: {why}; weakest prerequisite {weak} "
                        f"(P(mastered) {ctx.mastery.get(weak, 0.0):.2f})"
                    ],
                    unit,
                )
            )
            flags.append(TeacherFlag(unit, why, "small_group", weak))
            continue
        suspect = unverified_prerequisite(ctx, unit, mastered, presumed)
        if suspect is not None:  # mastered, but never confirmed since: check it before reteaching
            add(Target(suspect, "recheck", [f"re-check of {suspect}: the learner struggles on {unit} ({why})"], unit))
        flags.append(TeacherFlag(unit, why + "; its prerequisites look solid, reteach it", "tutoring", None))

    if ctx.goal is not None:
        # no silent stall: a goal standard nothing in the catalog practises cannot be reached
        for unit in sorted(goal_set, key=index.order.__getitem__):
            if unit not in index.practised and unit not in mastered:
                flags.append(
                    TeacherFlag(
                        unit,
                        f"{index.unpractised([unit])}: the goal cannot be reached with this catalog; add "
                        "practice or a check for it",
                        "tutoring",
                        None,
                    )
                )
        # the goal's standards, cheapest first, each with the work that leads to it now
        objectives = goal_objectives(ctx, placed, goal_set, presumed)[
            : None if every_objective else max(1, cfg.objectives)
        ]
        for rank, (goal_unit, cost, frontier) in enumerate(objectives):
            for unit in frontier:
                reasons = ready_reasons(ctx, unit, mastered)
                if unit == goal_unit:
                    reasons.append(
                        f"goal standard, next on the route (about {cost:.0f} activities)"
                        if rank == 0
                        else f"goal standard (about {cost:.0f} activities)"
                    )
                else:
                    reasons.append(f"prerequisite on the way to goal standard {goal_unit}")
                    if any(presumed.get(d) == unit for d in presumed):
                        stuck = [d for d in presumed if presumed[d] == unit]
                        reasons.append(
                            f"the learner is stuck on {fmt_codes(stuck)}, which comes after it in the curriculum"
                        )
                add(_learn_or_test_out(ctx, unit, reasons, rank))
    elif not ctx.overrides.goal_locked:
        for unit in outer_fringe(ctx, is_ready):
            add(_learn_or_test_out(ctx, unit, _ready_reasons_later(ctx, unit, mastered), None))
    if (
        ctx.goal is not None
        and not any(t.kind in ("learn", "test_out") for t in targets)
        and not ctx.overrides.goal_locked
    ):  # the goal is done (or blocked): the outer fringe
        for unit in outer_fringe(ctx, is_ready):
            add(_learn_or_test_out(ctx, unit, _ready_reasons_later(ctx, unit, mastered), None))

    # Stalled: nothing mastered for a while and mostly failures. The graph may be wrong about the
    # standards the learner is stuck on: probe, one standard at a time and for a few attempts
    # (learning shows in the answers after it happens, so a single try tells little), the
    # standards the graph holds back and the stuck ones alike, as a bandit over learnability.
    wrong = contradicted(ctx, mastered, placed, presumed)
    window = max(PROBE, cfg.stall_after // 3) if wrong else cfg.stall_after
    if ctx.progress.stalled(window, pace=not wrong) and not ctx.overrides.goal_locked:
        stuck = [t.unit for t in targets if t.kind in _WORK and _failing(ctx, t.unit)]
        probe = next_probe(ctx, placed, presumed, goal_set, stuck)
        if probe is not None:
            targets[:] = [t for t in targets if t.unit != probe and (t.kind not in _WORK or t.unit not in stuck)]
            seen.clear()
            seen.update(t.unit for t in targets)
            why = f"the plan is stalled on {fmt_codes(stuck)}" if stuck else "nothing on the plan is ready"
            if probe in stuck:
                what = f"trying {probe} again, still the most promising"
            else:
                needs = fmt_codes(_missing(ctx, probe, placed, presumed)) or "nothing"
                what = f"trying {probe}, which the graph says needs {needs} first (the graph may be wrong)"
            add(Target(probe, "explore", [f"{why}: {what}"]))

    # Re-verification: mastered units on the inner fringe that no check has confirmed yet.
    for unit in mastered:
        prog = ctx.progress.get(unit)
        if prog.mastered_at is None or verified(ctx, unit):
            continue
        if any(d in mastered for d in index.dependents[unit]):
            continue
        if ctx.now - prog.mastered_at >= cfg.reverify_after_s:
            add(
                Target(
                    unit,
                    "reverify",
                    [
                        f"re-check of mastery of {unit} (mastered by {prog.mastered_by}, "
                        f"{ago(ctx.now - prog.mastered_at)} ago, not yet verified)"
                    ],
                )
            )

    for unit in mastered:
        due = review_due(ctx, unit)
        if due > 0:
            last_review = ctx.progress.get(unit).last_review
            assert last_review is not None  # review_due is 0 for a unit never reviewed
            add(Target(unit, "review", [f"review due: {unit} last reviewed {ago(ctx.now - last_review)} ago"]))
    if not targets and mastered:  # nothing new is ready: strengthen the least secure mastery
        unit = min(mastered, key=lambda u: (ctx.mastery.get(u, 0.0), ctx.progress.get(u).streak, index.order[u]))
        add(
            Target(
                unit,
                "review",
                [
                    f"nothing new is ready: review of {unit}, the least secure mastered standard "
                    f"(P(mastered) {ctx.mastery.get(unit, 0.0):.2f})"
                ],
            )
        )
    return targets, flags


def _ready_reasons_later(ctx: PlanContext, unit: str, mastered: frozenset[str]) -> Deferred:
    """:func:`ready_reasons`, written when read (it reads the graph and ``mastered``, both fixed)."""
    return Deferred(lambda: ready_reasons(ctx, unit, mastered))


#: target kinds that are work toward new standards (what can stall)
_WORK = ("learn", "test_out", "remediation", "recheck")


def _missing(ctx: PlanContext, unit: str, placed: frozenset[str], presumed: Mapping[str, str]) -> list[str]:
    return [p for p in prerequisites(ctx, unit, presumed) if p not in placed]


#: consecutive attempts that probe a standard when the plan is stalled
PROBE = 3
#: weight of the exploration bonus of a probe's upper confidence bound
_BONUS = 0.25


def _failing(ctx: PlanContext, unit: str) -> bool:
    """The learner keeps failing ``unit``: the last two attempts failed, or at most one of the
    last four succeeded."""
    prog = ctx.progress.get(unit)
    recent = prog.recent[-4:]
    return prog.failures_in_a_row >= 2 or (len(recent) >= 4 and sum(1 for r in recent if r >= 0.5) <= 1)


def contradicted(
    ctx: PlanContext, mastered: frozenset[str], placed: frozenset[str], presumed: Mapping[str, str]
) -> bool:
    """A standard the learner mastered from their own answers although a prerequisite the graph
    lists for it is not in place: the graph is wrong for this learner somewhere, so a stall is
    taken for one sooner (a third of ``stall_after``, whatever the learner's pace)."""
    return any(
        ctx.progress.get(unit).mastered_by == "evidence"
        and any(p not in placed for p in prerequisites(ctx, unit, presumed))
        for unit in mastered
    )


def _learning(ctx: PlanContext, unit: str) -> bool:
    """Signs of learning on ``unit`` despite the failures: at least a third of its recent
    attempts succeeded (well above a guess), so the learner is slow there rather than blocked."""
    recent = ctx.progress.get(unit).recent
    return len(recent) >= 3 and 3 * sum(1 for r in recent if r >= 0.5) >= len(recent)


def explore_candidates(ctx: PlanContext, placed: frozenset[str], goal_set: set[str]) -> list[str]:
    """Standards to explore when the plan is stalled: not mastered, not in place, with items, not
    parked; on the way to the goal when there is one (its units and their ancestors); in
    learning order."""
    index = ctx.index
    area: set[str] | None = None
    if goal_set:
        area = set(goal_set)
        for unit in goal_set:
            area |= index.ancestors[unit]
    mastered = ctx.progress.mastered
    return [
        u
        for u in index.order
        if (area is None or u in area)
        and u not in mastered
        and u not in placed
        and u in index.practised
        and not is_parked(ctx, u)
    ]


def next_probe(
    ctx: PlanContext,
    placed: frozenset[str],
    presumed: Mapping[str, str],
    goal_set: set[str],
    stuck: list[str],
) -> str | None:
    """The standard to probe when the plan is stalled: the one being probed until it has had
    ``PROBE`` attempts in a row, else the most promising of the stuck standards and the ones the
    graph holds back (:func:`explore_candidates`), by an upper confidence bound on its success
    rate. The graph is the prior (half as likely learnable per missing prerequisite) and the
    learner's recent answers the evidence; fewer attempts give a larger bonus. None while a stuck
    standard shows signs of learning (:func:`_learning`: the learner is slow there, not blocked)."""
    if any(_learning(ctx, u) for u in stuck):
        return None
    pool = dict.fromkeys([*stuck, *explore_candidates(ctx, placed, goal_set)])
    if not pool:
        return None
    units = ctx.index.item_units
    run: list[str] = []
    for item_id in reversed(ctx.progress.recent_items):
        its = units.get(item_id, ())
        if not its or (run and its[0] != run[0]):
            break
        run.append(its[0])
    if run and run[0] in pool and len(run) < PROBE and ctx.progress.get(run[0]).failures_in_a_row < PROBE:
        return run[0]
    total = 1 + sum(ctx.progress.get(u).attempts for u in pool)

    def bound(unit: str) -> float:
        prog = ctx.progress.get(unit)
        prior = 0.5 ** len(_missing(ctx, unit, placed, presumed))
        mean = (sum(1 for r in prog.recent if r >= 0.5) + 2.0 * prior) / (len(prog.recent) + 2.0)
        return mean + _BONUS * math.sqrt(math.log(total) / (1 + prog.attempts))

    return max(pool, key=lambda u: (bound(u), -ctx.index.order[u]))


#: standards of the outer fringe a learner without a goal is offered at a time
FRINGE = 24


def level_fit(ctx: PlanContext, unit: str) -> float:
    """Closeness of ``unit`` to the learner's grade level (1 at the level, 0 three grades away;
    0.5 when the level or the standard's grade is unknown)."""
    return grade_fit(ctx.level, ctx.index.graph.standards[unit].grade_num)


def outer_fringe(ctx: PlanContext, ready: Readiness) -> list[str]:
    """Without a goal (or with the goal done): the ready standards not in place that some catalog
    item practises, the ``FRINGE`` closest to the learner's level (the earliest in learning order
    among equally close ones), in learning order. A whole graph's fringe spans every grade; scoring
    prefers the learner's level anyway, and ranking the far ones costs every request. A standard no
    item practises takes no place in it (a framework of a tenant's own may have items on a few of
    its standards only). Readiness is read for every unit at once (:attr:`Readiness.mask`): a scan
    unit by unit was most of the planning of a learner without a goal."""
    index = ctx.index
    open_ = ready.mask & ~ready.placed_mask & index.practised_mask
    nearest = index.positions_nearest(ctx.level)
    found = np.sort(nearest[open_[nearest]][:FRINGE])
    in_order = index.units_in_order
    return [in_order[k] for k in found.tolist()]


def route_to_goal(ctx: PlanContext, placed: frozenset[str]) -> list[str]:
    """What is left to learn for the goal, in learning order: the goal's units and their ancestors
    that are neither mastered nor in place (a standard the starting belief says is known is not
    on the route; the planner checks it just in time when something builds on it)."""
    goals = goal_units(ctx)
    return ctx.index.route(ctx.progress.mastered | placed, goals) if goals else []


#: the reviews the interval grows for at most (see :func:`review_due`)
_MAX_REVIEWS = 64


def review_due(ctx: PlanContext, unit: str) -> float:
    """0 when no review is due; otherwise how overdue, as a share of the interval (capped at 1)."""
    prog = ctx.progress.get(unit)
    if not prog.mastered or prog.last_review is None:
        return 0.0
    # every success on a mastered standard is a review: a learner who keeps answering on one
    # (a game played over and over) would overflow a float; the interval is past any school year
    # long before the cap
    interval = ctx.config.review_interval_s * ctx.config.review_growth ** min(prog.reviews, _MAX_REVIEWS)
    overdue = ctx.now - prog.last_review - interval
    return 0.0 if overdue < 0 else min(1.0, 0.1 + overdue / interval)


def offered_items(ctx: PlanContext, unit: str) -> Sequence[Item]:
    """The catalog's items that practise ``unit`` and the learner may be given now: not excluded
    by the teacher, available, and in the modalities asked for (catalog order)."""
    items: Sequence[Item] = ctx.index.items_for.get(unit, ())
    excluded, available, modalities = ctx.overrides.excluded_items, ctx.available, ctx.modalities
    if excluded or available is not None or modalities is not None:
        items = [
            i
            for i in items
            if i.id not in excluded
            and (available is None or i.id in available)
            and (modalities is None or i.modality in modalities)
        ]
    return items


def allowed_items(
    ctx: PlanContext,
    target: Target,
    placed: frozenset[str],
    is_ready: Readiness,
    fits: dict[tuple[str, ...], bool] | None = None,
) -> list[Item]:
    """The catalog's items for ``target`` the learner may get now, in catalog order. An item
    practises only units that are in place or ready (never past a gap), except for pinned,
    remediation and explore targets; a test-out takes a mastery check; a re-check takes one where
    the catalog has one for the standard. ``fits`` memoizes the readiness of units an item
    practises over one planning call (``placed`` and ``is_ready`` are fixed there).

    Practice (learn, review) that answers and practises the target alone, or with units that are
    ready too, comes first. Where there is none, an item that also practises what builds on the
    target is allowed when its only gap lies inside it (:meth:`Readiness.within`): a parent
    standard's task for its first part, a lesson-level task over "3.NF.A.1, 3.NF.A.2"; and where
    there is none of those either, any item that answers on it (a grade 7 task that is the only
    practice of a grade 6 standard). Many catalogs align practice only so; without this, the
    target could never be practised, and nothing built on it ever learned."""
    out = _allowed(ctx, target, placed, is_ready, {} if fits is None else fits)
    if (
        target.kind in ("learn", "review")
        and target.unit not in ctx.index.solo
        and not any(item.modality.answers for item in out)
        and (target.unit in placed or is_ready(target.unit))
    ):
        kept = {item.id for item in out}
        units_of = ctx.index.item_units
        offered = offered_items(ctx, target.unit)
        answering = [item.id for item in offered if item.modality.answers]
        inside = [i for i in answering if is_ready.within(units_of[i])]
        kept.update(inside or answering)
        out = [item for item in offered if item.id in kept]
    return out


def _allowed(
    ctx: PlanContext, target: Target, placed: frozenset[str], is_ready: Callable[[str], bool], memo: dict
) -> list[Item]:
    """:func:`allowed_items` without the items whose gap lies inside them."""
    items = offered_items(ctx, target.unit)
    kind = target.kind
    if kind in ("pinned", "remediation", "explore"):
        return list(items)
    # a check confirms; where the catalog has none for the standard, practice has to (a test-out
    # without a check is not a test-out: the standard is learned)
    practice_ok = kind in ("reverify", "recheck") and target.unit not in ctx.index.checkable
    check_only = kind in ("test_out", "reverify", "recheck")
    units_of = ctx.index.item_units
    if target.unit in ctx.index.solo:  # every item practises this unit alone: one answer for all
        key = (target.unit,)
        fine = memo.get(key)
        if fine is None:
            fine = memo[key] = target.unit in placed or is_ready(target.unit)
        if check_only:
            return [item for item in items if (fine if item.mastery_check else practice_ok)]
        return list(items) if fine else []
    out = []
    for item in items:
        if check_only and not item.mastery_check:
            if practice_ok:
                out.append(item)
            continue
        units = units_of[item.id]
        fine = memo.get(units)
        if fine is None:
            fine = memo[units] = all(u in placed or is_ready(u) for u in units)
        if fine:
            out.append(item)
    return out


def check_due(ctx: PlanContext, target: Target) -> bool:
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
