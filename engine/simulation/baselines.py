"""Baseline planners: ``random``, ``topo`` (expert order with a 3-in-a-row gate), ``zpdes``
(Clement et al. 2015) and ``kt-fringe`` (knowledge tracing, advance at P(mastered) >= 0.95).

All of them work on the same *route area* of the planner-visible graph (:func:`route_area`): the
goal's route from an empty mastery set (``engine.queries.route``: the goal's learnable units and
all their ancestors, in learning order), keeping only units whose grade is at least the goal's
lowest grade minus ``lookback``. The default ``lookback=0`` is the goal grade's own standards in
learning order, which is what a grade-level expert sequence teaches; ``lookback=1`` adds the
grade below and ``lookback=None`` keeps the whole route down to kindergarten (with a
3-in-a-row gate on every standard, ``topo`` then spends a 60-activity horizon far below the goal
grade). An item *practises* a unit when it is aligned to the unit or to one of its parents; units
without any item are left out.

The baselines see only the outcomes; kt-fringe keeps its own per-standard BKT belief.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from engine.catalog import Catalog
from engine.graph import StandardsGraph
from engine.queries import route
from engine.simulation.environment import Outcome, Policy, SimulationError

__all__ = [
    "BASELINES",
    "KTFringePolicy",
    "RandomPolicy",
    "TopoPolicy",
    "ZPDESConfig",
    "ZPDESPolicy",
    "items_by_unit",
    "route_area",
]


def route_area(graph: StandardsGraph, goal: Sequence[str], lookback: int | None = 0) -> list[str]:
    """The learnable units a baseline works on, in learning order (see the module docstring).

    >>> from engine.graph import Standard, StandardsGraph
    >>> g = StandardsGraph([Standard(c, grade_num=n) for n, c in enumerate("ABC")], [("A", "B"), ("B", "C")])
    >>> route_area(g, ["C"]), route_area(g, ["C"], lookback=1), route_area(g, ["C"], lookback=None)
    (['C'], ['B', 'C'], ['A', 'B', 'C'])
    """
    units = route(graph, [], goal)
    goal_units = {leaf for code in goal for leaf in graph.leaves(graph.resolve(code))}
    grades = [graph.standards[u].grade_num for u in goal_units]
    known_grades = [g for g in grades if g is not None]
    if lookback is None or not known_grades:
        return units
    floor = min(known_grades) - lookback

    def keep(unit: str) -> bool:
        grade = graph.standards[unit].grade_num
        return unit in goal_units or grade is None or grade >= floor

    return [u for u in units if keep(u)]


def items_by_unit(graph: StandardsGraph, catalog: Catalog) -> dict[str, list[str]]:
    """Item ids practising each learnable unit (aligned to it or to one of its parents)."""
    found: dict[str, list[str]] = {u: [] for u in graph.learning}
    for item in catalog:
        units = {leaf for code in item.standards if code in graph.standards for leaf in graph.leaves(code)}
        for unit in graph.sort(units):
            found[unit].append(item.id)
    return found


class _AreaPolicy:
    """Shared set-up: the route area and the items per unit, cached per (graph, catalog, goal)."""

    name = "area"

    def __init__(self, lookback: int | None = 0):
        self.lookback = lookback
        self._cache_key: tuple | None = None

    def _prepare(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        key = (id(graph), id(catalog), tuple(goal))
        if key != self._cache_key:
            items = items_by_unit(graph, catalog)
            self.area = [u for u in route_area(graph, goal, self.lookback) if items[u]]
            if not self.area:
                raise SimulationError(f"{self.name}: no item practises any unit on the route to {list(goal)}")
            self.items = {u: items[u] for u in self.area}
            self._cache_key = key
        self.rng = rng

    def _item_for(self, unit: str, available: frozenset[str] | None = None) -> str:
        options = self.items[unit]
        if available is not None:  # an unavailable item would be refused
            options = [i for i in options if i in available] or options
        return options[int(self.rng.integers(len(options)))]


class RandomPolicy(_AreaPolicy):
    """A uniformly random item among every item that practises a unit of the route area."""

    name = "random"

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        self._prepare(graph, catalog, goal, rng)
        self.pool = sorted({i for u in self.area for i in self.items[u]})

    def choose(self, available: frozenset[str] | None = None) -> str:
        pool = self.pool if available is None else ([i for i in self.pool if i in available] or self.pool)
        return pool[int(self.rng.integers(len(pool)))]

    def observe(self, item_id: str, outcome: Outcome) -> None:
        pass


class TopoPolicy(_AreaPolicy):
    """The expert order: the route area in the graph's learning order, practising the current
    standard (a random item on it) until ``streak_required`` correct answers in a row, then the
    next. After the last standard it starts over from the first (a review pass)."""

    name = "topo"

    def __init__(self, lookback: int | None = 0, streak_required: int = 3):
        super().__init__(lookback)
        self.streak_required = streak_required

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        self._prepare(graph, catalog, goal, rng)
        self.position = 0
        self.streak = 0

    @property
    def current(self) -> str:
        return self.area[self.position]

    def choose(self, available: frozenset[str] | None = None) -> str:
        return self._item_for(self.current, available)

    def observe(self, item_id: str, outcome: Outcome) -> None:
        if outcome.refused or outcome.correct is None:  # no answer: no streak to count
            return
        self.streak = self.streak + 1 if outcome.correct else 0
        if self.streak >= self.streak_required:
            self.position = (self.position + 1) % len(self.area)
            self.streak = 0


@dataclass(frozen=True)
class ZPDESConfig:
    """ZPDES parameters. Defaults are those of the authors' reference implementation
    (flowersteam/kidlearn, ``ZpdesSsb`` with ``filter1=0.2, uniformval=0.05, stepUpdate=6,
    upZPDval=0.5, deactZPDval=0.7, promote_coeff=1``).

    ``beta``/``eta``: weight update ``w <- beta * w + eta * r`` (kidlearn: filter1, 1 - filter1).
    ``window`` (d): learning progress ``r = max(0, mean(last d/2) - mean(the d/2 before))``.
    ``open_threshold``: an activity enters the ZPD when every prerequisite in the area is retired
    or has a success rate above it over its last d/2 answers.
    ``close_threshold``: the active activity with the best success rate over its last d answers
    (at least d answers) is retired when that rate is above it (never the last active one).
    ``exploration``: sampling ``p_a ~ w_a + sum(w) / exploration`` over the ZPD, which is the
    paper's ``(1 - gamma) * w_a / sum(w) + gamma / |ZPD|`` with ``gamma = |ZPD| / (exploration + |ZPD|)``.
    ``min_answers``: a success rate over fewer answers counts as 0 (kidlearn ``min_nb_ans``).
    """

    beta: float = 0.2
    eta: float = 0.8
    window: int = 6
    initial_weight: float = 0.05
    promote_coeff: float = 1.0
    open_threshold: float = 0.5
    close_threshold: float = 0.7
    exploration: float = 10.0
    min_answers: int = 2


class ZPDESPolicy(_AreaPolicy):
    """ZPDES (Clement, Roy, Oudeyer, Lopes 2015, JEDM "Multi-Armed Bandits for Intelligent
    Tutoring Systems") over the route area's standards as activities.

    The ZPD starts with the activities that have no prerequisite inside the area. Each answer
    updates the chosen activity's weight by its learning progress; activities open when their
    prerequisites are passed and close when mastered (see :class:`ZPDESConfig`). The item for a
    chosen activity is a random item practising it.
    """

    name = "zpdes"

    def __init__(self, lookback: int | None = 0, config: ZPDESConfig | None = None):
        super().__init__(lookback)
        self.config = config or ZPDESConfig()

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        self._prepare(graph, catalog, goal, rng)
        in_area = set(self.area)
        self.prereqs = {u: [p for p in graph.learning_prerequisites(u) if p in in_area] for u in self.area}
        self.weight: dict[str, float] = {}
        self.success: dict[str, list[float]] = {u: [] for u in self.area}
        self.retired: set[str] = set()
        self.opened: set[str] = set()
        for unit in self.area:
            if not self.prereqs[unit]:
                self._open(unit, self.config.initial_weight)
        self._last_unit: str | None = None

    @property
    def zpd(self) -> list[str]:
        """The active activities, in learning order."""
        return [u for u in self.area if u in self.weight]

    def choose(self, available: frozenset[str] | None = None) -> str:
        units = self.zpd
        w = np.array([self.weight[u] for u in units])
        total = w.sum()
        p = w + total / self.config.exploration if total > 0 else np.ones_like(w)
        unit = units[int(self.rng.choice(len(units), p=p / p.sum()))]
        self._last_unit = unit
        return self._item_for(unit, available)

    def observe(self, item_id: str, outcome: Outcome) -> None:
        unit = self._last_unit
        if unit is None or unit not in self.weight or outcome.refused or outcome.correct is None:
            return
        history = self.success[unit]
        history.append(1.0 if outcome.correct else 0.0)
        self.weight[unit] = self.config.beta * self.weight[unit] + self.config.eta * self._reward(unit)
        self._promote()

    # ------------------------------------------------------------------ the bandit
    def _reward(self, unit: str) -> float:
        history = self.success[unit]
        if len(history) <= 2:
            return self.weight[unit]  # kidlearn: too few answers, keep the weight
        span = min(self.config.window, len(history))
        half = span // 2
        recent = np.mean(history[-half:])
        older = np.mean(history[-span:-half])
        return max(0.0, float(recent - older))

    def success_rate(self, unit: str, last: int) -> float:
        answers = self.success[unit][-last:]
        return float(np.mean(answers)) if len(answers) >= self.config.min_answers else 0.0

    def _passed(self, unit: str) -> bool:
        return unit in self.retired or (
            unit in self.opened and self.success_rate(unit, self.config.window // 2) > self.config.open_threshold
        )

    def _open(self, unit: str, weight: float) -> None:
        self.weight[unit] = weight
        self.opened.add(unit)

    def _promote(self) -> None:
        cfg = self.config
        candidates = [u for u in self.area if u not in self.opened and all(self._passed(p) for p in self.prereqs[u])]
        if candidates:
            active = [self.weight[u] for u in self.zpd]
            weight = min(active) * cfg.promote_coeff if active else cfg.initial_weight
            for unit in candidates:
                self._open(unit, weight)
        ready = [(self.success_rate(u, cfg.window), u) for u in self.zpd if len(self.success[u]) >= cfg.window]
        if ready and len(self.weight) > 1:
            rate, best = max(ready, key=lambda pair: pair[0])
            if rate > cfg.close_threshold:
                del self.weight[best]
                self.retired.add(best)


class KTFringePolicy(_AreaPolicy):
    """A knowledge-tracing fringe planner: an independent BKT per standard (``p_init`` 0.2, learn
    0.2, slip 0.1, guess 0.2) and the first standard of the area, in the told graph's learning
    order, that is not mastered (P < ``mastered_at``) and whose prerequisites in the area are; a
    random item on it. With no such standard, the least mastered one."""

    name = "kt-fringe"

    def __init__(
        self,
        lookback: int | None = 0,
        mastered_at: float = 0.95,
        p_init: float = 0.2,
        learn: float = 0.2,
        slip: float = 0.1,
        guess: float = 0.2,
    ):
        super().__init__(lookback)
        self.mastered_at, self.p_init, self.learn, self.slip, self.guess = mastered_at, p_init, learn, slip, guess

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None:
        self._prepare(graph, catalog, goal, rng)
        in_area = set(self.area)
        self.prereqs = {u: [p for p in graph.learning_prerequisites(u) if p in in_area] for u in self.area}
        self.p = dict.fromkeys(self.area, self.p_init)
        self.unit_of = {i: u for u in self.area for i in self.items[u]}
        self._last_unit: str | None = None

    def choose(self, available: frozenset[str] | None = None) -> str:
        mastered = {u for u in self.area if self.p[u] >= self.mastered_at}
        fringe = [u for u in self.area if u not in mastered and all(p in mastered for p in self.prereqs[u])]
        unit = fringe[0] if fringe else min(self.area, key=lambda u: self.p[u])
        self._last_unit = unit
        return self._item_for(unit, available)

    def observe(self, item_id: str, outcome: Outcome) -> None:
        unit = self.unit_of.get(item_id)
        if unit is None or outcome.refused:
            return
        p = self.p[unit]
        if outcome.correct is None:  # an opportunity to learn, unobserved: the transition alone
            post = p
        elif outcome.correct:
            post = p * (1 - self.slip) / (p * (1 - self.slip) + (1 - p) * self.guess)
        else:
            post = p * self.slip / (p * self.slip + (1 - p) * (1 - self.guess))
        self.p[unit] = post + (1 - post) * self.learn


PolicyFactory = Callable[[], Policy]

#: Baseline factories by name; extend with ``{**BASELINES, "zpd": make_zpd_policy}``.
BASELINES: Mapping[str, PolicyFactory] = {
    "random": RandomPolicy,
    "topo": TopoPolicy,
    "zpdes": ZPDESPolicy,
    "kt-fringe": KTFringePolicy,
}
