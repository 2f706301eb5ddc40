"""What the planner knows about one learner: goal, teacher overrides, teacher flags and the
plan context (plain values: the model's mastery and predictions, the progress record, the time)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from configs import PlannerConfig
from engine.catalog import Item, Modality
from engine.planner.index import PlannerIndex
from engine.planner.progress import Progress

__all__ = ["Goal", "Overrides", "PlanContext", "TeacherFlag", "goal_units"]


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
    available: frozenset[str] | None = None  # only these items can be given now (None: every item)
    level: float | None = None  # the learner's grade level, when known (used when there is no goal)
    #: the random stream (exploration); None: one seeded by ``seed``, made when first drawn from
    rng: np.random.Generator | None = None
    seed: tuple[int, ...] = (0,)
    #: the learner has nothing to place them yet (no grade and no answer, or an entry diagnostic not
    #: finished): gives the question the entry diagnostic asks them next, (standard, item), or
    #: None when it has none to ask. Called only by the plans that schedule it (playlists,
    #: rotations); None: the learner is placed, or the caller does not schedule a diagnostic
    entry_diagnostic: Callable[[], tuple[str, Item] | None] | None = None

    def random(self) -> np.random.Generator:
        """The context's random stream (built on first use: most plans draw nothing)."""
        if self.rng is None:
            self.rng = np.random.default_rng(list(self.seed))
        return self.rng


def taught_unanswered(ctx: PlanContext) -> frozenset[str]:
    """The units whose latest activity (among the learner's recent ones) sent no answer: a lesson
    with the teacher, a page read, a video (``Modality.answers``). Nothing says yet whether it
    was understood: where nothing that answers may be given on one, it waits (see
    :func:`engine.planner.scoring.rank_candidates`), or a struggling learner would be sent from
    lesson to lesson on it, and nothing would ever tell the planner the struggle is over."""
    catalog, units_of = ctx.index.catalog, ctx.index.item_units
    seen: set[str] = set()
    out: set[str] = set()
    for item_id in reversed(ctx.progress.recent_items):
        units = [u for u in units_of.get(item_id, ()) if u not in seen]
        if item_id in catalog and not catalog[item_id].modality.answers:
            out.update(units)
        seen.update(units)
    return frozenset(out)


def goal_units(ctx: PlanContext) -> list[str]:
    """The learnable units of the context's goal (none without a goal)."""
    if ctx.goal is None:
        return []
    return ctx.index.units(c for c in ctx.goal.standards if c in ctx.index.graph.standards)
