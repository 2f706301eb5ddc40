"""The environment protocol planners are evaluated through, and the simulated environment.

Any simulator that implements :class:`Environment` (``reset``, ``step``, ``goal_score``) can be
plugged into :func:`engine.simulation.evaluate.evaluate`; a policy only ever sees the
:class:`Outcome` of each step. The simulated environment also exposes *truth accessors*
(``truth_known``, ``known_units``, ``violates``) that the evaluator uses for metrics and that
policies must never call.

Determinism: learner ``k``'s outcome stream is seeded by ``(seed, k)`` and every step consumes
the same number of uniforms whatever the item, so step ``t`` of learner ``k`` always sees the
same random numbers. Two policies that give the same item to the same learner in the same true
state observe the same outcome (common random numbers make policy comparisons paired).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from engine.catalog import Catalog
from engine.graph import StandardsGraph
from engine.simulation.learners import (
    MINUTES_PER_DAY,
    LearnerProfile,
    SimulatedLearner,
    SimulatorConfig,
    TruthIndex,
)

__all__ = ["Environment", "Outcome", "Policy", "SimulatedEnvironment", "SimulationError"]

_STEP_STREAM = 0x53544550  # "STEP"
_ATTENDANCE_STREAM = 0x44415953  # "DAYS"


class SimulationError(ValueError):
    """A simulation input is invalid (unknown item, empty goal, item without standards...)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a policy observes after one activity. ``correct``: the answer, or None when the
    activity sends none (a video, a reading, a teacher's lesson: ``ModalityParams.answers``; the
    policy learns only that it was done). ``time``: simulated minutes since the learner started,
    at the end of the activity (school nights and weekends included). ``refused``: the activity
    was not available and did not happen (no answer: ``correct`` is False and means nothing).
    ``learned``: whether the activity taught anything, when the environment can tell (None: it
    cannot; a real classroom cannot)."""

    correct: bool | None
    minutes: float
    time: float
    refused: bool = False
    learned: bool | None = None


@runtime_checkable
class Environment(Protocol):
    """A pool of learners a planner can teach, one learner at a time. An environment may also
    say which items are available at the next step (``available() -> frozenset[str] | None``,
    None: all of them); the evaluator passes that to the policy's ``choose``."""

    def reset(self, learner: int) -> None:
        """Start learner number ``learner`` of the pool from its initial state."""

    def step(self, item_id: str) -> Outcome:
        """Give the current learner an item; observe the outcome (the clock advances)."""

    def goal_score(self) -> float:
        """Share of the goal standards the current learner truly masters now."""


@runtime_checkable
class Policy(Protocol):
    """A planner under evaluation. ``graph`` in :meth:`start` is what the planner is told (it may
    be misspecified); ``rng`` is the planner's own random stream for this learner."""

    name: str

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], rng: np.random.Generator) -> None: ...

    def choose(self, available: frozenset[str] | None = None) -> str:
        """The next item; when ``available`` is given, one of those items."""
        ...

    def observe(self, item_id: str, outcome: Outcome) -> None: ...


class SimulatedEnvironment:
    """Simulated learners (``engine.simulation.learners``) on the **true** graph.

    Parameters
    ----------
    graph : the true graph the learners follow.
    catalog : the items; each must be aligned to standards of ``graph``.
    goal : goal standard codes (any spelling; parents count as all their parts).
    profiles : the learner pool (``draw_learners``); ``reset(k)`` starts ``profiles[k]``.
    seed : seeds the per-learner outcome streams.
    config : learning, forgetting and clock parameters.
    attendance : per learner of ``profiles``, the share of school days they work (a day off is
        skipped whole, drawn from a stream of its own); None: every learner works every school day.

    Examples
    --------
    >>> from engine.graph import Standard, StandardsGraph
    >>> from engine.catalog import Catalog, Item, Modality
    >>> from engine.simulation.learners import TruthIndex, draw_learners
    >>> g = StandardsGraph([Standard("A", grade_num=1), Standard("B", grade_num=2)], [("A", "B")])
    >>> cat = Catalog([Item("a1", "A practice", ("A",), Modality.ONLINE_PRACTICE, 10)])
    >>> cfg = SimulatorConfig()
    >>> env = SimulatedEnvironment(g, cat, ["B"], draw_learners(TruthIndex(g), cfg, 1.0, 0, 2), seed=0)
    >>> env.reset(0); env.step("a1").minutes
    10.0
    """

    def __init__(
        self,
        graph: StandardsGraph,
        catalog: Catalog,
        goal: Sequence[str],
        profiles: Sequence[LearnerProfile],
        *,
        seed: int,
        config: SimulatorConfig | None = None,
        index: TruthIndex | None = None,
        attendance: Sequence[float] | None = None,
    ):
        if attendance is not None and (len(attendance) != len(profiles) or not all(0.0 < a <= 1.0 for a in attendance)):
            raise SimulationError("attendance: one share in (0, 1] per learner of the pool")
        self.attendance = None if attendance is None else [float(a) for a in attendance]
        self.graph = graph
        self.config = config or SimulatorConfig()
        self.index = index or TruthIndex(graph)
        self.profiles = list(profiles)
        self.seed = seed
        if not goal:
            raise SimulationError("the goal is empty; give at least one goal standard")
        self.goal = [graph.resolve(code) for code in goal]
        leaves = [self.index.leaves(code) for code in self.goal]
        width = max(len(g) for g in leaves)
        # padded with each goal's first unit so a row-wise all() is "every part known"
        self._goal_units = np.array([np.concatenate([g, np.repeat(g[:1], width - len(g))]) for g in leaves])
        # item id -> (its units, their prerequisites outside it, modality, minutes, difficulty)
        self._items: dict[str, tuple[np.ndarray, np.ndarray, str, float, float | None]] = {}
        for item in catalog:
            leaves_of_item = [
                leaf for code in item.standards if code in graph.standards for leaf in self.index.leaves(code).tolist()
            ]
            units = np.array(sorted(set(leaves_of_item)), dtype=np.int64)
            outside = sorted({int(p) for u in units for p in self.index.prereqs[u]} - set(units.tolist()))
            modality = item.modality.value
            if modality not in self.config.modalities:
                raise SimulationError(f"item {item.id!r}: no simulator parameters for modality {modality!r}")
            minutes = item.duration_minutes * self.config.modalities[modality].time_factor
            self._items[item.id] = (units, np.array(outside, dtype=np.int64), modality, minutes, item.difficulty)
        self._runs: dict[int, _Run] = {}
        self._run: _Run | None = None

    # ------------------------------------------------------------------ protocol
    def reset(self, learner: int) -> None:
        if not 0 <= learner < len(self.profiles):
            raise SimulationError(f"learner {learner} is outside the pool (0..{len(self.profiles) - 1})")
        self._run = self._runs[learner] = _Run(
            SimulatedLearner(self.profiles[learner], self.index, self.config),
            np.random.default_rng(np.random.SeedSequence([self.seed, learner, _STEP_STREAM])),
            1.0 if self.attendance is None else self.attendance[learner],
            np.random.default_rng(np.random.SeedSequence([self.seed, learner, _ATTENDANCE_STREAM])),
        )

    def select(self, learner: int) -> None:
        """Make ``learner`` the current learner as they are now (from their initial state the
        first time): a class is taught side by side, one learner's activity at a time."""
        run = self._runs.get(learner)
        if run is None:
            self.reset(learner)
        else:
            self._run = run

    def step(self, item_id: str, *, at: float | None = None, minutes: float | None = None) -> Outcome:
        """One activity of the current learner on ``item_id``. Untimed (the default), it starts
        now, or at the next school day's session when it does not fit in this one, and takes the
        item's minutes. A timetable (a class rotation) says when it starts (``at``, in simulated
        minutes; not before the learner's clock) and how long it lasts (``minutes``): a part of
        the item's time teaches that share of an activity, more time more (``p_learn`` scaled by
        the minutes over the item's, within ``max_p_learn``)."""
        run = self._current_run()
        try:
            units, _, modality, item_minutes, difficulty = self._items[item_id]
        except KeyError:
            raise SimulationError(f"unknown item {item_id!r}: not in the simulator's catalog") from None
        if units.size == 0:
            raise SimulationError(f"item {item_id!r} is aligned to no standard of the graph")
        n = len(self.index)
        uniforms = run.rng.random(1 + 2 * n)  # fixed consumption per step (common random numbers)
        took = item_minutes if minutes is None else float(minutes)
        start = self._start_time(took) if at is None else max(float(at), run.clock)
        learner = run.learner
        learner.forget(start - run.last, uniforms[1 + n :])
        answered = bool(uniforms[0] < learner.answer_probability(units, difficulty))
        correct = answered if self.config.modalities[modality].answers else None
        learner.learn(units, modality, uniforms[1 : 1 + n], took / item_minutes if item_minutes > 0 else 1.0)
        run.clock = run.last = start + took
        run.session_used += took
        run.steps += 1
        return Outcome(correct=correct, minutes=float(took), time=float(run.clock))

    def goal_score(self) -> float:
        return float(self._current().known[self._goal_units].all(axis=1).mean())

    # ------------------------------------------------------------------ truth (evaluation only)
    def truth_known(self, code: str) -> bool:
        """True when the current learner knows every learnable unit of ``code``."""
        return bool(self._current().known[self.index.leaves(code)].all())

    def known_units(self) -> np.ndarray:
        """A copy of the true knowledge, indexed like ``self.index.units``."""
        return self._current().known.copy()

    def violates(self, item_id: str) -> bool:
        """True when a unit of the item has a true prerequisite (outside the item) not known now."""
        outside = self._items[item_id][1]
        return bool(outside.size) and not bool(self._current().known[outside].all())

    def knows_item(self, item_id: str) -> bool:
        """True when the current learner knows every unit of the item."""
        return bool(self._current().known[self._items[item_id][0]].all())

    @property
    def clock(self) -> float:
        return self._current_run().clock

    @property
    def steps(self) -> int:
        """Activities the current learner has done."""
        return self._current_run().steps

    # ------------------------------------------------------------------ internals
    def _current_run(self) -> _Run:
        if self._run is None:
            raise SimulationError("no learner started: call reset(learner) first")
        return self._run

    def _current(self) -> SimulatedLearner:
        return self._current_run().learner

    def _start_time(self, minutes: float) -> float:
        """When the next activity starts: now, or the next school day's session if it does not fit."""
        run = self._current_run()
        if run.session_used > 0 and run.session_used + minutes > self.config.session_minutes:
            self._next_school_day(run)
            while run.works < 1.0 and run.days.random() >= run.works:  # a day off
                self._next_school_day(run)
            run.clock = run.day * MINUTES_PER_DAY
            run.session_used = 0.0
        return run.clock

    def _next_school_day(self, run: _Run) -> None:
        run.sessions += 1
        run.day += 1
        if run.sessions % self.config.school_days_per_week == 0:
            run.day += 7 - self.config.school_days_per_week  # the weekend


@dataclass(slots=True)
class _Run:
    """One learner's run: their true state, outcome and attendance streams, and clock."""

    learner: SimulatedLearner
    rng: np.random.Generator
    works: float  # the share of school days they work
    days: np.random.Generator
    clock: float = 0.0
    last: float = 0.0
    session_used: float = 0.0
    day: int = 0
    sessions: int = 0
    steps: int = 0
