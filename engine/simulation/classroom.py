"""A class taught school day after school day from a class plan, on simulated learners.

Individual Rotation is planned for a whole class at once (``plan_rotation``: stations with a
number of seats, the teacher's small groups, independent practice in what a block leaves), so
what a school is served is not what the one-learner-at-a-time evaluation
(:func:`engine.simulation.evaluate.simulate`) measures. Here a class of simulated learners
(:class:`engine.simulation.environment.SimulatedEnvironment`, the same learners, learning and
forgetting) works through each school day's plan by its timetable: every activity starts at its
minute of the session and lasts its minutes, and a part of an item's time teaches that share of
an activity (:meth:`SimulatedEnvironment.step`). The planner then observes the answer.

Class planners (:class:`ClassPlanner`):

``rotation``
    the served path: each simulated learner is a learner of the learner core
    (:class:`engine.learner.LearnerCore`, the code behind the API), and each day's plan is
    ``plan_rotation`` over their contexts, as ``POST /v1/classes/{id}/rotation`` plans it.
``playlists``
    each learner's own ``plan_playlist`` (``POST /v1/learners/{id}/playlist``) without the
    teacher: no small group, no tutoring. What the software alone gives.
``whole-class``
    the usual classroom: the class learns the goal's standards in learning order, together:
    a lesson from the teacher (an item of the standard at the small-group table, teacher-led
    for the whole class), then practice on that standard. The class moves on when most of the
    day's answers were right, or after ``max_days`` days on one standard.

Metrics are read from the truth before each activity (the planners never see it): an activity
on a standard whose true prerequisites the learner lacks (a violation), on standards they know
already (not a check), and the share of the goal known at the start and at the end.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from configs import PlannerConfig
from engine.catalog import Catalog, Item, Modality
from engine.graph import StandardsGraph
from engine.learner import Learner, LearnerCore, Observation, StateModel
from engine.planner.context import Goal
from engine.planner.index import PlannerIndex
from engine.planner.playlist import ENTRY_DIAGNOSTIC, plan_playlist, plan_rotation
from engine.simulation.environment import Outcome, SimulatedEnvironment, SimulationError
from engine.simulation.evaluate import bootstrap_ci
from engine.simulation.learners import MINUTES_PER_DAY

__all__ = [
    "Assignment",
    "ClassCore",
    "ClassPlanner",
    "ClassRun",
    "PlaylistClass",
    "RotationClass",
    "WholeClass",
    "run_classes",
    "summarize_classes",
]

#: kinds that check mastery rather than teach (an activity on a known standard is not wasted)
CHECK_KINDS = frozenset({"test_out", "recheck", "reverify"})
TEACHER_LED = frozenset({Modality.SMALL_GROUP.value, Modality.TUTORING.value})


@dataclass(frozen=True)
class Assignment:
    """One activity of a learner's day: when it starts (minutes into the session), how long it
    lasts, the item, the planner's kind of activity and its modality."""

    start_minute: float
    minutes: float
    item_id: str
    kind: str
    modality: str


class ClassPlanner(Protocol):
    """A planner of a class's school days. ``start`` is called once per class with the
    planner-visible graph, the catalog, the goal and the learners' ids (their numbers in the
    pool); ``plan`` gives each learner's assignments for the session that starts at ``start``
    (simulated minutes) once its first ``done`` minutes are over (start minutes in the session's
    time); ``observe`` gives each answer."""

    name: str

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], learners: Sequence[int]) -> None: ...

    def plan(self, start: float, done: float) -> Mapping[int, Sequence[Assignment]]: ...

    def observe(self, learner: int, item_id: str, outcome: Outcome) -> None: ...


ClassPlannerFactory = Callable[[], ClassPlanner]


@dataclass
class ClassRun:
    """Per-learner results of one class planner over the pool (arrays of length ``learners``)."""

    name: str
    days: int
    start: np.ndarray  # share of the goal known at the start
    end: np.ndarray  # ... after the last day
    activities: np.ndarray
    minutes: np.ndarray  # activity minutes
    violations: np.ndarray  # activities on a standard whose true prerequisites were not known
    known_already: np.ndarray  # teaching activities on standards known already
    checks: np.ndarray  # mastery checks and test-outs
    teacher_minutes: np.ndarray  # minutes with the teacher (small groups, tutoring, lessons)
    plan_seconds: list[float] = field(default_factory=list)  # the time each plan took
    #: per kind of activity: [activities, known already, violations]
    kinds: dict[str, list[int]] = field(default_factory=dict)


class ClassCore:
    """One learner core per planner-visible graph and catalog, shared by a pool's classes
    (``model_factory(graph)``: the learner-state model over the planner's graph)."""

    def __init__(self, model_factory: Callable[[StandardsGraph], StateModel], config: PlannerConfig):
        self.model_factory, self.config = model_factory, config
        self._cache: dict[tuple[int, int], LearnerCore] = {}

    def core(self, graph: StandardsGraph, catalog: Catalog) -> LearnerCore:
        key = (id(graph), id(catalog))
        if key not in self._cache:
            self._cache = {key: LearnerCore(PlannerIndex.build(graph, catalog), self.config, self.model_factory(graph))}
        return self._cache[key]


class _ServedClass:
    """Learners of the learner core, as the API keeps them: the belief of their grade, the goal,
    every answer folded by ``observe``."""

    name = "served"

    def __init__(self, core: ClassCore, grade: str | None):
        self._core, self.grade = core, grade

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], learners: Sequence[int]) -> None:
        self.core = self._core.core(graph, catalog)
        self.learners: dict[int, Learner] = {k: self.core.new(k, self.grade, goal=Goal(tuple(goal))) for k in learners}

    def observe(self, learner: int, item_id: str, outcome: Outcome) -> None:
        if outcome.refused:
            return
        item = self.core.index.catalog[item_id]
        correct = None if outcome.correct is None else float(outcome.correct)
        obs = Observation(item_id, item.standards, correct, float(outcome.time) * 60.0)
        self.core.observe(self.learners[learner], obs)

    @staticmethod
    def _assignments(activities) -> list[Assignment]:
        out = []
        for a in activities:
            if a.kind == ENTRY_DIAGNOSTIC:  # learners are placed by their grade here
                raise SimulationError("the classroom simulation starts learners from their grade, not a diagnostic")
            out.append(Assignment(a.start_minute, a.minutes, a.item.id, a.kind, str(a.item.modality)))
        return out


class RotationClass(_ServedClass):
    """The served class rotation: ``plan_rotation`` over the learners' contexts, for the session
    or, once blocks are over, the rest of it (``blocks_done``)."""

    name = "rotation"

    def __init__(
        self,
        core: ClassCore,
        grade: str | None,
        *,
        session_minutes: float = 60,
        block_minutes: float = 20,
        capacities: Mapping[str, int] | None = None,
        group_capacity: int = 6,
        teachers: int = 1,
    ):
        super().__init__(core, grade)
        self.session_minutes, self.block_minutes = session_minutes, block_minutes
        self.capacities, self.group_capacity, self.teachers = dict(capacities or {}), group_capacity, teachers

    def plan(self, start: float, done: float) -> dict[int, list[Assignment]]:
        contexts = {
            str(k): self.core.context(learner, (start + done) * 60.0, entry_diagnostic=False)
            for k, learner in self.learners.items()
        }
        rotation = plan_rotation(
            contexts,
            self.session_minutes,
            self.block_minutes,
            self.capacities,
            self.group_capacity,
            self.teachers,
            blocks_done=int(done // self.block_minutes),
        )
        return {int(lid): self._assignments(p.activities) for lid, p in rotation.playlists.items()}


class PlaylistClass(_ServedClass):
    """Each learner's own served playlist, without the teacher (no small group, no tutoring)."""

    name = "playlists"
    ALONE = tuple(m for m in Modality if m.value not in TEACHER_LED)

    def __init__(self, core: ClassCore, grade: str | None, *, session_minutes: float = 60):
        super().__init__(core, grade)
        self.session_minutes = session_minutes

    def plan(self, start: float, done: float) -> dict[int, list[Assignment]]:
        out = {}
        for k, learner in self.learners.items():
            ctx = self.core.context(learner, (start + done) * 60.0, modalities=self.ALONE, entry_diagnostic=False)
            playlist = plan_playlist(ctx, self.session_minutes - done, 0)
            out[k] = [replace(a, start_minute=a.start_minute + done) for a in self._assignments(playlist.activities)]
        return out


class WholeClass:
    """The usual classroom (see the module docstring): one standard for everybody, in learning
    order; a lesson from the teacher, then practice; on to the next standard when at least
    ``move_on`` of the day's answers were right, or after ``max_days`` days."""

    name = "whole-class"

    def __init__(
        self, *, session_minutes: float = 60, lesson_minutes: float = 20, move_on: float = 0.7, max_days: int = 3
    ):
        self.session_minutes, self.lesson_minutes = session_minutes, lesson_minutes
        self.move_on, self.max_days = move_on, max_days

    def start(self, graph: StandardsGraph, catalog: Catalog, goal: Sequence[str], learners: Sequence[int]) -> None:
        index = PlannerIndex.build(graph, catalog)
        goal_units = set(index.units(goal))
        self.sequence = [u for u in index.order if u in goal_units and u in index.practised]
        self.items = {u: list(index.items_for[u]) for u in self.sequence}
        self.learners = list(learners)
        self.position, self.days_on, self.answers = 0, 0, [0, 0]

    def _advance(self) -> None:
        right, total = self.answers
        self.days_on += 1
        if total and (right / total >= self.move_on or self.days_on >= self.max_days):
            self.position, self.days_on = min(self.position + 1, len(self.sequence) - 1), 0
        self.answers = [0, 0]

    def plan(self, start: float, done: float) -> dict[int, list[Assignment]]:
        """The whole session (planned once, at its start)."""
        if self.answers[1]:
            self._advance()
        if not self.sequence:
            return {}
        unit = self.sequence[self.position]
        items = self.items[unit]
        lesson = min(items, key=lambda i: (i.modality.value not in TEACHER_LED, i.mastery_check, i.id))
        practice = [i for i in items if i.modality.value not in TEACHER_LED and not i.mastery_check] or items
        day: list[Assignment] = [Assignment(0.0, self.lesson_minutes, lesson.id, "lesson", Modality.SMALL_GROUP.value)]
        t, k = self.lesson_minutes, 0
        while t < self.session_minutes:
            item: Item = practice[k % len(practice)]
            length = min(float(item.duration_minutes), self.session_minutes - t)
            day.append(Assignment(t, length, item.id, "practice", item.modality.value))
            t, k = t + length, k + 1
        return dict.fromkeys(self.learners, day)

    def observe(self, learner: int, item_id: str, outcome: Outcome) -> None:
        if not outcome.refused and outcome.correct is not None:
            self.answers[0] += bool(outcome.correct)
            self.answers[1] += 1


def school_day_start(day: int, days_per_week: int = 5) -> float:
    """Simulated minutes at the start of school day ``day`` (0, 1, ...; weekends skipped)."""
    week, rest = divmod(day, days_per_week)
    return (week * 7 + rest) * MINUTES_PER_DAY


def run_classes(
    name: str,
    factory: ClassPlannerFactory,
    env: SimulatedEnvironment,
    classes: Sequence[Sequence[int]],
    days: int,
    *,
    planner_graph: StandardsGraph,
    catalog: Catalog,
    goal: Sequence[str],
    session_minutes: float = 60,
    replan_every: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> ClassRun:
    """Teach every class of ``classes`` (learner numbers of ``env``'s pool) for ``days`` school
    days of ``session_minutes`` with a planner from ``factory`` (one per class). The session is
    planned at its start, and again every ``replan_every`` minutes when given (the rest of it: a
    teacher who plans again at each block). The truth is read before each activity."""
    n = len(env.profiles)
    activities, minutes, violations, known, checks, teacher = (np.zeros(n) for _ in range(6))
    run = ClassRun(
        name, days, np.full(n, np.nan), np.full(n, np.nan), activities, minutes, violations, known, checks, teacher
    )
    step = replan_every or session_minutes
    for c, learners in enumerate(classes):
        planner = factory()
        planner.start(planner_graph, catalog, goal, learners)
        for k in learners:
            env.reset(k)
            run.start[k] = env.goal_score()
        for day in range(days):
            start = school_day_start(day, env.config.school_days_per_week)
            for done in np.arange(0.0, session_minutes, step).tolist():
                began = _time.perf_counter()
                plan = planner.plan(start, done)
                run.plan_seconds.append(_time.perf_counter() - began)
                for k in learners:
                    env.select(k)
                    for a in sorted(plan.get(k, ()), key=lambda a: a.start_minute):
                        if a.start_minute >= done + step - 1e-9:
                            break  # planned again before it starts
                        if a.start_minute >= done - 1e-9:
                            _do(run, env, planner, name, catalog, k, a, start)
        for k in learners:
            env.select(k)
            run.end[k] = env.goal_score()
        if progress is not None:
            progress(name, c + 1, len(classes))
    return run


def _do(
    run: ClassRun,
    env: SimulatedEnvironment,
    planner: ClassPlanner,
    name: str,
    catalog: Catalog,
    k: int,
    a: Assignment,
    now: float,
) -> None:
    """Learner ``k`` does assignment ``a`` of the session that started at ``now``; the truth is
    read first."""
    if a.item_id not in catalog:
        raise SimulationError(f"planner {name!r} assigned unknown item {a.item_id!r}")
    violates, known = env.violates(a.item_id), env.knows_item(a.item_id)
    teaching = a.kind not in CHECK_KINDS
    run.violations[k] += violates
    run.checks[k] += not teaching
    run.known_already[k] += known and teaching
    tally = run.kinds.setdefault(a.kind, [0, 0, 0])
    tally[0] += 1
    tally[1] += known and teaching
    tally[2] += violates
    outcome = env.step(a.item_id, at=now + a.start_minute, minutes=a.minutes)
    planner.observe(k, a.item_id, outcome)
    run.activities[k] += 1
    run.minutes[k] += a.minutes
    if a.modality in TEACHER_LED or a.kind == "lesson":
        run.teacher_minutes[k] += a.minutes


def learning_gain(run: ClassRun) -> tuple[np.ndarray, np.ndarray]:
    """Each learner's normalised gain ((end - start) / (1 - start)) and whether it counts (a
    learner who knew the whole goal at the start has nothing to gain)."""
    todo = (run.start < 1.0).astype(float)
    gain = np.where(todo > 0, (run.end - run.start) / np.where(todo > 0, 1.0 - run.start, 1.0), 0.0)
    return gain, todo


def summarize_classes(runs: Mapping[str, ClassRun], *, seed: int, baseline: str | None = None) -> dict[str, dict]:
    """Each run's metrics with 95% bootstrap intervals over learners; with ``baseline``, the
    paired difference in learning gain against that run (the same learners)."""
    out: dict[str, dict] = {}
    for name, run in runs.items():
        gain, todo = learning_gain(run)
        m: dict = {}
        m["learning_gain"], m["learning_gain_ci"] = bootstrap_ci(gain, todo, seed=seed)
        activities = run.activities.sum()
        for metric, counts in (("violation", run.violations), ("known_already", run.known_already)):
            m[f"{metric}_rate"], m[f"{metric}_rate_ci"] = bootstrap_ci(
                counts, run.activities, statistic="ratio", seed=seed
            )
        m["check_share"] = float(run.checks.sum() / max(1.0, activities))
        m["activities_per_day"] = float(activities / max(1, len(run.start)) / max(1, run.days))
        m["minutes_per_day"] = float(run.minutes.sum() / max(1, len(run.start)) / max(1, run.days))
        m["teacher_minutes_per_day"] = float(run.teacher_minutes.sum() / max(1, len(run.start)) / max(1, run.days))
        m["start_score"], m["end_score"] = float(run.start.mean()), float(run.end.mean())
        m["kinds"] = {
            kind: dict(zip(("activities", "known_already", "violations"), t)) for kind, t in run.kinds.items()
        }
        m["plan_ms_median"] = float(np.median(run.plan_seconds) * 1000) if run.plan_seconds else None
        if baseline is not None and name != baseline:
            base_gain, base_todo = learning_gain(runs[baseline])
            both = todo * base_todo
            m["gain_vs_baseline"], m["gain_vs_baseline_ci"] = bootstrap_ci(gain - base_gain, both, seed=seed)
        out[name] = m
    return out
