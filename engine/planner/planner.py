"""Choosing the next activities: the planner's entry point.

The work is split along its seams: :mod:`engine.planner.targets` decides which standards the
learner should work on and which items may be offered (gating), :mod:`engine.planner.scoring`
scores every allowed candidate, :mod:`engine.planner.reasons` explains the choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.catalog import Item
from engine.planner.context import PlanContext, TeacherFlag
from engine.planner.scoring import Candidate, rank_candidates

__all__ = ["PlanResult", "Recommendation", "recommend"]


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
    #: with no recommendation, why: ``(code, text)``; the codes are no_items, nothing_ready, none_allowed
    why_empty: tuple[str, str] | None = None


def recommend(ctx: PlanContext, n: int = 1, k_alternatives: int = 2) -> PlanResult:
    """The ``n`` best activities (at most one per standard), each with up to ``k_alternatives``
    other items on the same standard for student choice. No item is listed twice (an item on
    several standards is offered once, where it ranks best)."""
    ranked, flags, route = rank_candidates(ctx)
    picked: list[Candidate] = []
    standards: set[str] = set()
    items: set[str] = set()
    for i in range(len(ranked)):  # decided on labels: only what is shown is built
        if len(picked) >= n:
            break
        standard, item_id, kind = ranked.label(i)
        if (standard in standards and kind != "pinned") or item_id in items:
            continue
        standards.add(standard)
        items.add(item_id)
        picked.append(ranked[i])
    chosen: list[Recommendation] = []
    for cand in picked:
        alts: list[Candidate] = []
        for i in range(len(ranked)):
            if len(alts) >= k_alternatives:
                break
            standard, item_id, _ = ranked.label(i)
            if standard == cand.standard and item_id not in items:
                alts.append(ranked[i])
                items.add(item_id)
        chosen.append(
            Recommendation(
                cand.item,
                cand.standard,
                cand.kind,
                cand.p_success,
                cand.score,
                cand.components,
                cand.reasons,
                tuple(alts),
            )
        )
    return PlanResult(chosen, flags, route, None if chosen else ranked.why_empty)
