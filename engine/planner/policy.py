"""The ``zpd`` planner as a simulator policy: a thin adapter over the learner core.

Each simulated learner is a :class:`engine.learner.Learner` driven through the same
:class:`engine.learner.LearnerCore` the API serves with: the starting belief from the learner's
grade, the optional entry diagnostic, "a learner answered" and the planner's next activity. The
policy only turns the simulator's steps into observations (simulated minutes become seconds) and
never reads the simulator's truth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from configs import PlannerConfig
from engine.catalog import Catalog
from engine.graph import StandardsGraph
from engine.learner import Learner, LearnerCore, Observation, StateModel
from engine.placement import PlacementConfig
from engine.planner.context import Goal
from engine.planner.index import PlannerIndex

__all__ = ["ZPDPolicy"]


class ZPDPolicy:
    """Our planner behind the simulator's Policy protocol (start / choose / observe).

    ``model_factory(graph)`` builds the learner-state model for the planner-visible graph (the
    served model, or graph BKT). ``grade`` is the learners' grade (a school knows it; ``None``:
    the model's flat prior). ``placement`` with ``max_questions > 0`` starts an entry diagnostic
    on ``diagnostic_focus`` (``prerequisites``: the goal's prerequisites outside the goal;
    ``goal``: the goal and its prerequisites; anything else: the whole graph) whose questions
    count as diagnostic activities.
    """

    name = "zpd"

    def __init__(
        self,
        model_factory: Callable[[StandardsGraph], StateModel],
        config: PlannerConfig,
        placement: PlacementConfig | None = None,
        grade: str | None = None,
        diagnostic_focus: str = "prerequisites",
    ):
        self.model_factory = model_factory
        self.config = config
        self.placement = placement
        self.grade = grade
        self.diagnostic_focus = diagnostic_focus
        self._cache: dict[tuple[int, int], LearnerCore] = {}

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        key = (id(graph), id(catalog))
        if key not in self._cache:  # keep one graph's worth: a pool shares graph and catalog
            self._cache = {
                key: LearnerCore(
                    PlannerIndex.build(graph, catalog),
                    self.config,
                    self.model_factory(graph),
                    placement=self.placement or PlacementConfig(),
                )
            }
        self.core = self._cache[key]
        self.learner: Learner = self.core.new(int(rng.integers(2**32)), self.grade, goal=Goal(tuple(goal)))
        self.seconds = 0.0
        self.pending_question: str | None = None
        self.last_choice_diagnostic = False
        if self.placement is not None and self.placement.max_questions > 0:
            self.core.start_placement(self.learner, focus=self._focus(goal))

    def _focus(self, goal: Sequence[str]) -> frozenset[str] | None:
        index = self.core.index
        units = set(index.units(c for c in goal if c in index.graph.standards))
        if self.diagnostic_focus == "prerequisites":
            return frozenset(p for u in units for p in index.prereqs[u] if p not in units)
        if self.diagnostic_focus == "goal":
            return frozenset(units) | frozenset(p for u in units for p in index.prereqs[u])
        return None  # the whole graph

    @property
    def belief(self) -> Any:
        """The learner's current starting-state belief (for inspection)."""
        return self.core.belief(self.learner.meta)

    def choose(self, available: frozenset[str] | None = None) -> str:
        question = self.core.placement_question(self.learner)
        if question is not None:
            self.pending_question, item = question
            self.last_choice_diagnostic = True
            return item.id
        self.last_choice_diagnostic = False
        result = self.core.recommend(self.learner, self.seconds, n=1, k_alternatives=0, available=available)
        if not result.recommendations:  # nothing allowed: fall back to any item on the goal
            index = self.core.index
            goal = self.learner.meta.goal
            for unit in index.units(goal.standards if goal else ()):
                if index.items_for.get(unit):
                    return index.items_for[unit][0].id
            return next(iter(index.catalog)).id
        return result.recommendations[0].item.id

    def observe(self, item_id: str, outcome: Any) -> None:
        self.seconds = float(outcome.time) * 60.0
        if getattr(outcome, "refused", False):  # it did not happen: nothing to learn from
            self.pending_question = None
            return
        item = self.core.index.catalog[item_id]
        correct = None if outcome.correct is None else float(outcome.correct)
        question = self.pending_question if correct is not None else None  # a question sends an answer
        source = "placement" if question is not None else "native"
        self.core.observe(self.learner, Observation(item_id, item.standards, correct, self.seconds, source, question))
        self.pending_question = None
