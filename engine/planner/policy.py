"""The ``zpd`` planner as a simulator policy: a belief about the learner's starting state (and an
optional entry diagnostic), then the planner's next activity each step.

The learner-state model is given by the caller (a factory taking the planner-visible graph), so
the engine stays free of model code; the simulation compares it with the baselines on the same
learners. The policy never reads the simulator's truth: only the outcome of each step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from configs import PlannerConfig
from engine.catalog import Catalog, Item
from engine.graph import StandardsGraph
from engine.observations import Event, ItemSpec
from engine.placement import Placement, PlacementConfig
from engine.planner.index import PlannerIndex
from engine.planner.planner import Goal, PlanContext, recommend
from engine.planner.progress import Attempt, Progress, mark_mastered, record_attempt

__all__ = ["ZPDPolicy"]


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


#: The prior of a learner whose grade is known (no questions): the level is the grade give or take
#: 0.75, a little stronger or weaker per domain, and knowledge is closed under prerequisites.
KNOWN_GRADE_PRIOR = PlacementConfig(max_questions=0, min_questions=0, hint_sd=0.75, steepness=3.0, domain_sd=0.4)


class ZPDPolicy:
    """Our planner behind the simulator's Policy protocol (start / choose / observe).

    ``model_factory(graph)`` builds the planner's own learner-state model (e.g. GraphBKT).

    The learner's *starting* knowledge is a particle belief (:class:`engine.placement.Placement`):
    knowledge states closed under prerequisites, correlated within a domain, around the grade hint.
    Its marginals are the model's priors, and every answer that says something about the
    starting state (a diagnostic question, or the first attempt on a standard) reweights it, so a
    failed check on ``3.OA.A.3`` also lowers the prior of ``3.OA.C.7`` that builds on it. Standards
    the learner has already worked on are left to the model. ``placement`` sets the belief and,
    with ``max_questions > 0``, an entry diagnostic on ``diagnostic_focus`` (default: the goal's
    prerequisites outside the goal) whose questions count as diagnostic activities; without it,
    a grade hint gives :data:`KNOWN_GRADE_PRIOR`, and without a hint the model's flat prior is kept.
    ``prior="grade"`` replaces the belief by independent per-grade priors (:func:`grade_priors`),
    which ignore prerequisites and domains (kept for comparison).
    """

    name = "zpd"

    def __init__(self, model_factory: Callable[[StandardsGraph], Any], config: PlannerConfig,
                 placement: PlacementConfig | None = None, grade_hint: float | None = None,
                 diagnostic_focus: str = "prerequisites", prior: str = "belief"):
        if prior not in ("belief", "grade"):
            raise ValueError(f"prior must be 'belief' or 'grade', got {prior!r}")
        self.model_factory = model_factory
        self.config = config
        self.placement_config = placement
        self.grade_hint = grade_hint
        self.diagnostic_focus = diagnostic_focus
        self.prior = prior
        self._cache: dict[tuple[int, int], tuple[PlannerIndex, Any]] = {}

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        key = (id(graph), id(catalog))
        if key not in self._cache:  # keep one graph's worth: a pool shares graph and catalog
            self._cache = {key: (PlannerIndex.build(graph, catalog), self.model_factory(graph))}
        self.index, self.model = self._cache[key]
        self.progress = Progress()
        self.goal = Goal(tuple(goal))
        self.rng = rng
        self.minutes = 0.0
        self.pending_question: str | None = None
        self.last_choice_diagnostic = False
        self.state = self.model.init_state()
        belief_config = self.placement_config
        if belief_config is None and self.grade_hint is not None and self.prior == "belief":
            belief_config = KNOWN_GRADE_PRIOR
        self.belief: Placement | None = None
        self.diagnosing = False
        if belief_config is not None and hasattr(self.model, "state_with_priors"):
            # one prior cloud for every learner (seed 0): a server keeps only the answers
            self.belief = Placement(self.index, belief_config, 0, self.grade_hint,
                                    focus=self._focus(belief_config))
            self.diagnosing = belief_config.max_questions > 0
            self._refresh_priors()
        elif self.grade_hint is not None and hasattr(self.model, "state_with_priors"):
            self.state = self.model.state_with_priors(grade_priors(self.index, self.grade_hint), self.state)

    def _focus(self, config: PlacementConfig) -> frozenset[str] | None:
        if config.max_questions <= 0:
            return None
        if self.diagnostic_focus == "prerequisites":
            units = set(self.index.units(c for c in self.goal.standards if c in self.index.graph.standards))
            return frozenset(p for u in units for p in self.index.prereqs[u] if p not in units)
        if self.diagnostic_focus == "goal":
            return goal_area(self.index, self.goal.standards)
        return None  # the whole graph

    # ------------------------------------------------------------------ model helpers
    def _predict(self, items: Sequence[Item]) -> np.ndarray:
        specs = [ItemSpec(i.id, i.standards, i.difficulty) for i in items]
        return self.model.predict_items(self.state, specs)

    def _untouched(self, unit: str) -> bool:
        """No evidence on ``unit`` has reached the model yet (its prior is still the belief's)."""
        i = self.model.standard_index.get(unit)
        return i is not None and self.state["n"][i] == 0

    def _refresh_priors(self) -> None:
        """The belief's marginals become the priors of every standard the model has no evidence on."""
        marginals = self.belief.marginals()
        index, p, n = self.model.standard_index, self.state["p"], self.state["n"]
        priors = {u: float(m) for u, m in zip(self.belief.units, marginals)
                  if u in index and n[index[u]] == 0 and abs(p[index[u]] - m) > 1e-6}
        if priors:
            self.state = self.model.state_with_priors(priors, self.state)

    def _finish_placement(self) -> None:
        """Hand over: standards answered correctly that the diagnostic is confident about count
        as mastered (to be re-verified later); the belief keeps absorbing first attempts."""
        result = self.belief.result()
        asked_right = {u for u, ok in self.belief.answers if ok}
        mark_mastered(self.progress, [u for u in result.mastered if u in asked_right], self.minutes * 60.0)
        self.diagnosing = False

    # ------------------------------------------------------------------ protocol
    def choose(self) -> str:
        self.last_choice_diagnostic = False
        if self.diagnosing:
            unit = self.belief.next_question()
            item = self.belief.item_for(unit) if unit is not None else None
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
        units = self.index.item_units.get(item_id, ())
        # an answer on a standard nobody has taught yet is evidence about the starting state
        first = self.belief is not None and len(units) == 1 and self._untouched(units[0])
        self.state = self.model.update(self.state, Event(item_id, item.standards, correct, self.minutes * 60.0))
        if self.pending_question is not None:
            self.belief.answer(self.pending_question, bool(outcome.correct))
            self._refresh_priors()
            self.pending_question = None
            self.progress.recent_items.append(item_id)
            return
        if first:
            self.belief.answer(units[0], bool(outcome.correct))
            self._refresh_priors()
        record_attempt(self.progress, Attempt(item_id, units, correct, self.minutes * 60.0, item.mastery_check),
                       self.model.mastery(self.state), self.index.prereqs, self.config)
