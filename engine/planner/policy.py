"""The ``zpd`` planner as a simulator policy: placement, then the planner's next activity each step.

The learner-state model is given by the caller (a factory taking the planner-visible graph), so
the engine stays free of model code; the simulation compares it with the baselines on the same
learners.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from configs import PlannerConfig
from engine.catalog import Catalog, Item
from engine.graph import StandardsGraph
from engine.placement import Placement, PlacementConfig
from engine.planner.index import PlannerIndex
from engine.planner.planner import Goal, PlanContext, recommend
from engine.planner.progress import Attempt, Progress, mark_mastered, record_attempt

__all__ = ["ZPDPolicy"]


@dataclass(frozen=True)
class _ModelEvent:  # duck-typed models.base.Event
    item_id: str
    standards: tuple[str, ...]
    correct: float
    timestamp: float | None = None


@dataclass(frozen=True)
class _ModelItem:  # duck-typed models.base.ItemSpec
    item_id: str
    standards: tuple[str, ...]
    difficulty: float | None = None


def grade_priors(index: PlannerIndex, grade: float, steepness: float = 2.5) -> dict[str, float]:
    """Prior P(known) of each standard for a learner at ``grade`` (the start of that grade):
    high for earlier grades, low for the current one and later ones."""
    priors = {}
    for unit in index.order:
        g = index.graph.standards[unit].grade_num
        if g is not None:
            priors[unit] = float(np.clip(1.0 / (1.0 + np.exp(-steepness * (grade - g - 0.5))), 0.05, 0.95))
    return priors


def goal_area(index: PlannerIndex, goal: Sequence[str]) -> frozenset[str]:
    """What a diagnostic for this goal should ask about: the goal's units and their direct prerequisites."""
    units = index.units(c for c in goal if c in index.graph.standards)
    return frozenset(units) | frozenset(p for u in units for p in index.prereqs[u])


class ZPDPolicy:
    """Our planner behind the simulator's Policy protocol (start / choose / observe).

    ``model_factory(graph)`` builds the planner's own learner-state model (e.g. GraphBKT);
    ``placement`` runs the entry diagnostic first (its questions count as activities).
    """

    name = "zpd"

    def __init__(self, model_factory: Callable[[StandardsGraph], Any], config: PlannerConfig,
                 placement: PlacementConfig | None = None, grade_hint: float | None = None):
        self.model_factory = model_factory
        self.config = config
        self.placement_config = placement
        self.grade_hint = grade_hint
        self._cache: dict[tuple[int, int], tuple[PlannerIndex, Any]] = {}

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        key = (id(graph), id(catalog))
        if key not in self._cache:  # keep one graph's worth: a pool shares graph and catalog
            self._cache = {key: (PlannerIndex.build(graph, catalog), self.model_factory(graph))}
        self.index, self.model = self._cache[key]
        self.state = self.model.init_state()
        if self.grade_hint is not None and hasattr(self.model, "state_with_priors"):
            self.state = self.model.state_with_priors(grade_priors(self.index, self.grade_hint), self.state)
        self.progress = Progress()
        self.goal = Goal(tuple(goal))
        self.rng = rng
        self.minutes = 0.0
        self.pending_question: str | None = None
        self.placement = None
        if self.placement_config is not None:
            self.placement = Placement(self.index, self.placement_config, int(rng.integers(2**31)), self.grade_hint,
                                       focus=goal_area(self.index, self.goal.standards))

    # ------------------------------------------------------------------ model helpers
    def _predict(self, items: Sequence[Item]) -> np.ndarray:
        specs = [_ModelItem(i.id, i.standards, i.difficulty) for i in items]
        return self.model.predict_items(self.state, specs)

    def _finish_placement(self) -> None:
        """Hand over: the answers already moved the model; standards answered correctly that the
        diagnostic is confident about count as mastered (to be re-verified later)."""
        result = self.placement.result()
        asked_right = {u for u, ok in self.placement.answers if ok}
        mark_mastered(self.progress, [u for u in result.mastered if u in asked_right], self.minutes * 60.0)
        self.placement = None

    # ------------------------------------------------------------------ protocol
    def choose(self) -> str:
        self.last_choice_diagnostic = False
        if self.placement is not None:
            unit = self.placement.next_question()
            item = self.placement.item_for(unit) if unit is not None else None
            if item is not None:
                self.pending_question = unit
                self.last_choice_diagnostic = True
                return item.id
            self._finish_placement()
        ctx = PlanContext(self.index, self.config, self.model.mastery(self.state), self._predict, self.progress,
                          now=self.minutes * 60.0, goal=self.goal, rng=self.rng)
        result = recommend(ctx, n=1, k_alternatives=0)
        if not result.recommendations:  # nothing allowed: fall back to any item on the goal
            for unit in self.index.units(self.goal.standards):
                if self.index.items_for.get(unit):
                    return self.index.items_for[unit][0].id
            return next(iter(self.index.catalog)).id
        return result.recommendations[0].item.id

    def observe(self, item_id: str, outcome: Any) -> None:
        item = self.index.catalog[item_id]
        self.minutes = float(outcome.time)
        correct = float(bool(outcome.correct))
        self.state = self.model.update(self.state, _ModelEvent(item_id, item.standards, correct, self.minutes * 60.0))
        if self.pending_question is not None:
            self.placement.answer(self.pending_question, bool(outcome.correct))
            self.pending_question = None
            self.progress.recent_items.append(item_id)
            return
        units = self.index.item_units.get(item_id, ())
        record_attempt(self.progress, Attempt(item_id, units, correct, self.minutes * 60.0, item.mastery_check),
                       self.model.mastery(self.state), self.index.prereqs, self.config)
