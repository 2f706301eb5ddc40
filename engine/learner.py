"""The learner core: one learner's record and everything that happens to it.

Every caller goes through :class:`LearnerCore`: the HTTP API (``serving.service``), ``zpd replay``,
the placement routes, class rotations, the simulator's ``zpd`` policy and the tests. There is one
implementation of "a learner answered" (:meth:`LearnerCore.observe`), of the starting belief, of
the entry diagnostic and of planning, so what the simulator measures is what the API serves.

A :class:`Learner` is the model state (numpy arrays) plus a typed :class:`LearnerMeta`: grade,
interests, goal, teacher overrides, the planner's progress record, the evidence about the
learner's starting state and the entry diagnostics. The core is pure: the model is passed in,
times are given by the caller, nothing is read from or written to a store.

**Starting belief.** A learner whose grade is known (stated, from a class or a roster) starts
from a particle belief about their starting state (:class:`engine.placement.Placement`: knowledge
closed under prerequisites, correlated within a domain, around the grade): its marginals are the
model's priors (``state_with_prior_values``) for every standard without evidence. A first attempt on a
standard nobody has taught yet is evidence about the starting state and reweights the belief, so
a failed ``3.OA.A.3`` also lowers ``3.OA.C.7`` that builds on it. An entry diagnostic asks
questions from the same belief (with the placement configuration). Without a grade and without a
diagnostic, the model's own flat prior is kept.

**Replay.** What users set (grade, interests, goal, overrides, when a diagnostic started) is kept;
everything else (state, progress, belief evidence, diagnostic results) is derived from the
observations, so :meth:`LearnerCore.rebuild` over the event log gives exactly the live record.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, Self

import numpy as np

from configs import PlannerConfig
from engine.catalog import Item, Modality
from engine.graph import grade_number
from engine.observations import Event, ItemSpec
from engine.placement import Placement, PlacementConfig
from engine.planner.context import Goal, Overrides, PlanContext
from engine.planner.gps import GoalStatus, goal_status
from engine.planner.index import PlannerIndex
from engine.planner.planner import PlanResult, recommend
from engine.planner.progress import Attempt, Progress, mark_mastered, record_attempt

__all__ = [
    "KNOWN_GRADE_PRIOR",
    "EXPOSURES_SINCE",
    "META_VERSION",
    "PROGRESS_FIELDS_SINCE",
    "meta_in_layout",
    "Diagnostic",
    "GradeError",
    "Learner",
    "LearnerCore",
    "LearnerMeta",
    "LearnerProfile",
    "Observation",
    "PlacementStatus",
    "PlacementSummary",
    "StandardMastery",
    "StateModel",
    "grade_hint",
]

#: The belief about a learner whose grade is known (no questions): the level is the grade give or
#: take 0.75, a little stronger or weaker per domain, and knowledge is closed under prerequisites.
KNOWN_GRADE_PRIOR = PlacementConfig(max_questions=0, min_questions=0, hint_sd=0.75, steepness=3.0, domain_sd=0.4)

#: the layout of a stored learner's meta: 3 counts the answers shared by several units
#: (``Progress.shared``), 4 the activities per day (``Progress.days``, the learner's own pace), 5
#: folds exposures (an activity that sends no answer: a video watched, a small-group lesson
#: attended) into the learner's recent activities; a record written before lacks them (see
#: ``LearnerService._view``)
META_VERSION = 5

#: the first layout whose fold reads exposures (see :meth:`LearnerCore.observe`)
EXPOSURES_SINCE = 5


#: the progress record's fields a layout added, by the layout that added them
PROGRESS_FIELDS_SINCE = {"shared": 3, "days": 4, "started": 4}


def meta_in_layout(meta: Mapping[str, Any], layout: int) -> dict[str, Any]:
    """A meta of this layout (``LearnerMeta.to_json``) as a record of the older ``layout`` holds
    it: what a check compares a record of that layout with (the next read writes it anew)."""
    progress = dict(meta["progress"])
    for field_, since in PROGRESS_FIELDS_SINCE.items():
        if layout < since:
            progress.pop(field_, None)
    return {**meta, "v": layout, "progress": progress}


class GradeError(ValueError):
    """A grade label the engine cannot place on the grade scale."""


def grade_hint(grade: str | None) -> float | None:
    """The position on the grade scale of a learner in ``grade``: the start of that grade
    (K=0, 1..8, high school 9; grades 9-12 count as high school). None without a grade.

    >>> grade_hint("4"), grade_hint("K"), grade_hint("11"), grade_hint(None)
    (4.0, 0.0, 9.0, None)
    """
    if grade is None:
        return None
    number = grade_number(grade)
    if number is None or number < -1 or number > 12:
        raise GradeError(f"grade {grade!r} is not a grade; expected PK, K, 1-12 or HS")
    return float(min(number, 9))


class StateModel(Protocol):
    """What the core needs of a learner-state model (``models.base.LearnerModel`` is one)."""

    standard_index: dict[str, int]

    def init_state(self) -> dict[str, np.ndarray]: ...

    def update(self, state: dict[str, np.ndarray], event: Event) -> dict[str, np.ndarray]: ...

    def mastery(self, state: dict[str, np.ndarray]) -> dict[str, float]: ...

    def state_with_prior_values(
        self, codes: Sequence[str], values: np.ndarray, state: dict[str, np.ndarray] | None = None
    ) -> dict[str, np.ndarray]: ...

    def encode_items(self, items: Sequence[ItemSpec]) -> Any: ...

    def predict(self, state: dict[str, np.ndarray], items: Any) -> np.ndarray: ...

    def predict_at(self, state: dict[str, np.ndarray], items: Any, positions: np.ndarray) -> np.ndarray: ...

    def item_key(self, item: ItemSpec) -> Hashable: ...


class CatalogPredictions:
    """P(success) over a catalog encoded once, in segments (a deployment's catalog, then a
    tenant's own items), each encoded by its model: of every item, or of the items at some
    positions only (a request ranks a few candidates, not the catalog).

    Items the model cannot tell apart (the same :meth:`StateModel.item_key`: same standards and
    difficulty, no item-level parameter) are predicted once, as the first of them, so they get
    the very same P(success) and a tie between them is decided by the planner's order, not by
    float rounding (a float32 product rounds a row differently depending on where it sits in
    the batch). The rows predicted are the distinct ones in catalog order, whatever order the
    candidates come in: the same candidates always make the same batch."""

    def __init__(self, segments: Sequence[tuple[StateModel, Any]], twins: np.ndarray | None = None):
        self.segments = [(model, batch) for model, batch in segments if len(batch)] or list(segments[:1])
        self.bounds = np.cumsum([0, *(len(batch) for _, batch in self.segments)])
        self.item_pos = {item: k for k, item in enumerate(i for _, batch in self.segments for i in batch.item_ids)}
        #: each position's first twin (itself when the model tells it from every item before it)
        self.twin = np.arange(len(self)) if twins is None else twins
        self._first: tuple[StateModel | None, dict[Hashable, int]] = (None, {})

    @classmethod
    def encode(cls, model: StateModel, items: Iterable[Item]) -> CatalogPredictions:
        """``items`` (a catalog) encoded by ``model``."""
        return cls([], np.empty(0, dtype=np.intp)).extended(model, items)

    def __len__(self) -> int:
        return int(self.bounds[-1])

    def extended(self, model: StateModel, items: Iterable[Item]) -> CatalogPredictions:
        """These predictions plus ``items`` encoded by ``model`` after them."""
        specs = [ItemSpec(i.id, i.standards, i.difficulty) for i in items]
        same, first = self._first
        first = dict(first) if same is model else {}  # twins across segments of one model only
        twins = np.empty(len(specs), dtype=np.intp)
        for k, spec in enumerate(specs):
            twins[k] = first.setdefault(model.item_key(spec), len(self) + k)
        extended = CatalogPredictions(
            [*self.segments, (model, model.encode_items(specs))], np.concatenate([self.twin, twins])
        )
        extended._first = (model, first)
        return extended

    def all(self, state: dict[str, np.ndarray]) -> np.ndarray:
        parts = [model.predict(state, batch) for model, batch in self.segments]
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        return out[self.twin]

    def at(self, state: dict[str, np.ndarray], positions: np.ndarray) -> np.ndarray:
        """``all(state)[positions]``."""
        rows, back = _distinct(self.twin[positions])
        if len(self.segments) == 1:
            model, batch = self.segments[0]
            return model.predict_at(state, batch, rows)[back]
        out = np.empty(len(rows))
        for (model, batch), low, high in zip(self.segments, self.bounds[:-1], self.bounds[1:]):
            inside = (rows >= low) & (rows < high)
            if inside.any():
                out[inside] = model.predict_at(state, batch, rows[inside] - low)
        return out[back]


def _distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.unique(values, return_inverse=True)`` for the few dozen positions of a request, in
    a third fewer NumPy calls (one sort: the distinct values in order, and where each value
    went)."""
    order = values.argsort(kind="stable")
    ordered = values[order]
    first = np.empty(len(ordered), dtype=bool)
    first[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    back = np.empty(len(values), dtype=np.intp)
    back[order] = first.cumsum() - 1
    return ordered[first], back


# ---------------------------------------------------------------------------- records
@dataclass(frozen=True)
class Observation:
    """One answer as the core folds it, or an exposure (``correct`` None: an activity done that
    sends no answer, such as a video watched or a small-group lesson attended). ``time`` in epoch
    seconds (simulated seconds in the simulator); ``source`` is ``native``, ``xapi`` or
    ``placement``; a placement answer names the ``unit`` (learnable standard) its question was
    about."""

    item_id: str
    standards: tuple[str, ...]
    correct: float | None
    time: float
    source: str = "native"
    unit: str | None = None

    @property
    def placement(self) -> bool:
        return self.source == "placement"

    @property
    def exposure(self) -> bool:
        return self.correct is None


@dataclass
class PlacementSummary:
    grade_band: str
    confidence: float
    questions: int
    mastered: list[str]  # what the diagnostic is confident the learner knows (posterior >= mastered_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "grade_band": self.grade_band,
            "confidence": self.confidence,
            "questions": self.questions,
            "mastered": list(self.mastered),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PlacementSummary:
        return cls(
            str(data["grade_band"]),
            float(data["confidence"]),
            int(data["questions"]),
            [str(u) for u in data.get("mastered", ())],
        )


@dataclass
class Diagnostic:
    """An entry diagnostic. Set by the user's request: ``start_event`` (observations folded when
    it started), ``focus``, and ``start_time``: when it started on the learner's timeline, the
    server's clock then, or just after the latest time folded if that was later (a device's
    clock ahead of the server's). Derived: ``asked_before`` (belief evidence before its first
    question), ``finished_event`` and ``result``.

    It begins before the first answer that happened at or after its start: every answer folded
    before the start happened before it, and one that happened before it and arrives after it
    (offline work synced) is a late answer, refolded in time order, so it counts before it, as
    evidence and not as one of its questions. A diagnostic without a start time (a record from
    before they were kept; the simulator, whose answers all come in order) begins after its
    first ``start_event`` observations."""

    start_event: int
    focus: tuple[str, ...] | None = None
    asked_before: int | None = None
    finished_event: int | None = None
    result: PlacementSummary | None = None
    start_time: float | None = None

    @property
    def finished(self) -> bool:
        return self.finished_event is not None

    def begins_before(self, obs: Observation | None, events: int) -> bool:
        """Whether it has begun before ``obs`` is folded (``None``: after the last observation
        of a fold, when every diagnostic started so far has begun), ``events`` observations in."""
        if self.start_time is None:
            return self.start_event <= events
        return obs is None or obs.time >= self.start_time

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "start_event": self.start_event,
            "focus": None if self.focus is None else list(self.focus),
            "asked_before": self.asked_before,
            "finished_event": self.finished_event,
            "result": None if self.result is None else self.result.to_json(),
        }
        if self.start_time is not None:
            data["start_time"] = self.start_time
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Diagnostic:
        focus = data.get("focus")
        result = data.get("result")
        return cls(
            int(data["start_event"]),
            None if focus is None else tuple(focus),
            data.get("asked_before"),
            data.get("finished_event"),
            None if result is None else PlacementSummary.from_json(result),
            None if data.get("start_time") is None else float(data["start_time"]),
        )

    def reset(self) -> Diagnostic:
        """What the user set (for a rebuild): when it started and what it asks about."""
        return Diagnostic(self.start_event, self.focus, start_time=self.start_time)

    def user_set(self) -> tuple[Any, ...]:
        return (self.start_event, self.focus, self.start_time)


@dataclass
class LearnerMeta:
    """Everything about a learner except the model state, as typed values.

    Set by users: ``seed`` (the learner's own random stream), ``grade``, ``interests``, ``goal``,
    ``overrides`` and the start of each diagnostic. Derived from the observations: ``progress``,
    ``answers`` (evidence about the starting state: ``(unit, correct, asked by a diagnostic)``),
    the diagnostics' results and ``events`` (observations folded).
    """

    seed: int = 0
    grade: str | None = None
    interests: tuple[str, ...] = ()
    goal: Goal | None = None
    overrides: Overrides = Overrides()
    progress: Progress = field(default_factory=Progress)
    answers: list[tuple[str, bool, bool]] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    events: int = 0
    #: the latest time folded: of an answer, or a diagnostic's start (None: none yet, or folded
    #: before it was kept); what comes before it is a late answer, refolded in time order
    last_time: float | None = None
    #: earlier states of this learner, kept by the server so an answer that arrives late refolds
    #: only what came after one (``serving.checkpoints``); opaque here, and gone with a rebuild
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> LearnerMeta:
        """The user-set part only, ready to fold the event log into (:meth:`LearnerCore.rebuild`)."""
        return LearnerMeta(
            self.seed,
            self.grade,
            self.interests,
            self.goal,
            self.overrides,
            diagnostics=[d.reset() for d in self.diagnostics],
        )

    def reach(self, time: float) -> None:
        """Fold a time (an answer's, or a diagnostic's start) into :attr:`last_time`."""
        self.last_time = time if self.last_time is None else max(self.last_time, time)

    def folds_after(self, times: Iterable[float]) -> bool:
        """Whether observations at ``times`` come at or after every observation folded so far:
        folding them on then gives what folding the whole log in time order gives. A record that
        has observations but no ``last_time`` (folded before it was kept) says no."""
        if self.last_time is None:
            return self.events == 0
        return all(t >= self.last_time for t in times)

    @property
    def placement(self) -> PlacementSummary | None:
        """The result of the latest finished diagnostic."""
        done = [d.result for d in self.diagnostics if d.result is not None]
        return done[-1] if done else None

    def to_json(self) -> dict[str, Any]:
        goal = None if self.goal is None else {"standards": list(self.goal.standards), "date": self.goal.date}
        o = self.overrides
        return {
            "v": META_VERSION,
            "seed": self.seed,
            "grade": self.grade,
            "interests": list(self.interests),
            "goal": goal,
            "overrides": {
                "pin_standards": list(o.pinned_standards),
                "pin_items": list(o.pinned_items),
                "exclude_items": sorted(o.excluded_items),
                "lock_goal": o.goal_locked,
            },
            "progress": self.progress.to_json(),
            "answers": [[u, c, d] for u, c, d in self.answers],
            "diagnostics": [d.to_json() for d in self.diagnostics],
            "events": self.events,
            "last": self.last_time,
            **({"cp": list(self.checkpoints)} if self.checkpoints else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LearnerMeta:
        """Reads what :meth:`to_json` wrote, and the untyped form of earlier versions."""
        goal = data.get("goal")
        o = data.get("overrides") or {}
        meta = cls(
            seed=int(data.get("seed", 0)),
            grade=data.get("grade"),
            interests=tuple(data.get("interests", ())),
            goal=Goal(tuple(goal["standards"]), goal.get("date")) if goal else None,
            overrides=Overrides(
                tuple(o.get("pin_standards", ())),
                tuple(o.get("pin_items", ())),
                frozenset(o.get("exclude_items", ())),
                bool(o.get("lock_goal", False)),
            ),
            progress=Progress.from_json(data.get("progress") or {}),
            answers=[(str(u), bool(c), bool(d)) for u, c, d in data.get("answers", ())],
            diagnostics=[Diagnostic.from_json(d) for d in data.get("diagnostics", ())],
            events=int(data.get("events", 0)),
            last_time=None if data.get("last") is None else float(data["last"]),
            checkpoints=list(data.get("cp", ())),
        )
        if data.get("v") is None and data.get("placement"):  # version 1: one diagnostic, answers kept apart
            meta.answers = [(str(u), bool(c), True) for u, c in data["placement"].get("answers", ())]
            old = data.get("placement_result")
            meta.diagnostics = [
                Diagnostic(0, None, 0, 0 if old else None, PlacementSummary.from_json(old) if old else None)
            ]
        return meta


@dataclass
class Learner:
    """One learner: the model state and the typed rest."""

    state: dict[str, np.ndarray]
    meta: LearnerMeta

    @property
    def progress(self) -> Progress:
        return self.meta.progress


@dataclass(frozen=True)
class PlacementStatus:
    """Where an entry diagnostic stands: the next question (a learnable standard and an item to
    ask it with) until it is finished, then the placement."""

    active: bool
    asked: int
    max_questions: int
    finished: bool
    question: str | None
    item: Item | None
    grade_band: str
    confidence: float
    mastered: list[str] | None


@dataclass(frozen=True)
class StandardMastery:
    p: float
    uncertainty: float
    evidence: int
    status: str  # mastered | in_progress | likely_known | not_started


@dataclass(frozen=True)
class LearnerProfile:
    mastery: dict[str, StandardMastery]
    mastered: list[str]
    gps: GoalStatus
    level: float | None


# ---------------------------------------------------------------------------- the core
class LearnerCore:
    """The operations on a learner, for one graph, catalog, planner configuration and model.

    ``predictions`` give P(success) over the catalog (encoded once, shared by the cores over
    one content); without them the core encodes the catalog with the model. ``placement`` configures entry
    diagnostics (and the belief once one started); ``grade_prior`` the belief of a learner whose
    grade is known.
    """

    def __init__(
        self,
        index: PlannerIndex,
        config: PlannerConfig,
        model: StateModel,
        predictions: CatalogPredictions | None = None,
        placement: PlacementConfig = PlacementConfig(),
        grade_prior: PlacementConfig = KNOWN_GRADE_PRIOR,
    ):
        self.index, self.config, self.model = index, config, model
        # a graph without grade levels has no grade scale to place a learner on: flat prior
        self.graded = any(index.graph.standards[u].grade_num is not None for u in index.order)
        self.placement_config, self.grade_prior = placement, grade_prior
        if predictions is None:
            predictions = CatalogPredictions.encode(model, index.catalog)
        self.predictions = predictions
        self._primed: dict[float, dict[str, np.ndarray]] = {}  # grade -> the starting state before evidence

    def with_config(self, config: PlannerConfig) -> Self:
        """This core with another planner configuration; its caches (the starting states, the
        catalog's predictions) are shared."""
        other = copy.copy(self)
        other.config = config
        return other

    # ------------------------------------------------------------------ creating
    def new(
        self, seed: int, grade: str | None = None, *, interests: Iterable[str] = (), goal: Goal | None = None
    ) -> Learner:
        """A learner with no evidence yet; a known grade gives the starting belief."""
        grade_hint(grade)  # refuse a grade the scale does not know
        meta = LearnerMeta(seed=seed, grade=grade, interests=tuple(interests), goal=goal)
        learner = Learner(self.model.init_state(), meta)
        self._refresh_priors(learner)
        return learner

    def start(self, meta: LearnerMeta) -> Learner:
        """The learner ``meta``'s user-set part describes before any evidence: :meth:`rebuild` of
        an empty log, without a fold (a record keeps no state until the first event)."""
        learner = self._unfolded(meta)
        self._activate_diagnostics(learner)  # what resume ends with
        return learner

    def rebuild(self, meta: LearnerMeta, observations: Iterable[Observation]) -> Learner:
        """The learner ``meta``'s user-set part describes, after folding ``observations`` (the event
        log's answers in time order, see ``serving.evidence``): exactly what live folding gave."""
        return self.resume(self._unfolded(meta), observations)

    def _unfolded(self, meta: LearnerMeta) -> Learner:
        """The starting point of a fold: ``meta``'s user-set part, its starting belief."""
        learner = Learner(self.model.init_state(), meta.reset())
        self._refresh_priors(learner)
        return learner

    def resume(self, learner: Learner, observations: Iterable[Observation]) -> Learner:
        """Go on folding ``observations`` (in time order) into ``learner``, as :meth:`rebuild` folds
        them: a learner restored as it was after a prefix of its log in time order, resumed with
        the rest, is that rebuild."""
        for obs in observations:
            self._activate_diagnostics(learner, obs)
            self.observe(learner, obs)
        self._activate_diagnostics(learner)
        return learner

    def set_grade(self, learner: Learner, grade: str | None) -> bool:
        """Set the grade of a learner without evidence (the belief follows at once). Returns False
        when the learner has evidence: the caller rebuilds from the event log (:meth:`rebuild`)
        so the belief applies from the start."""
        grade_hint(grade)
        if learner.meta.events:
            learner.meta.grade = grade
            return False
        learner.meta.grade = grade
        learner.meta.checkpoints = []  # kept with the grade before (a rebuild starts without them too)
        learner.state = self.model.init_state()
        self._refresh_priors(learner)
        return True

    # ------------------------------------------------------------------ a learner answered
    def observe(self, learner: Learner, obs: Observation) -> list[str]:
        """Fold one answer into the learner: the model state, the starting belief (a diagnostic
        question, or the first attempt on a standard nobody has taught yet) and the progress
        record (mastery, review, struggle). Returns the progress changes ("mastered 3.NF.A.1").

        An exposure is no evidence on what the learner knows: it is only the learner's latest
        activity (``Progress.recent_items``), so the planner does not offer a video just watched
        again, goes on with the standard just taught, and does not form a small group on it again
        at once."""
        meta = learner.meta
        units = self.units_of(obs)
        if not units:  # an activity aligned to no standard of the graph: no evidence on any
            return []
        if obs.correct is None:
            meta.reach(obs.time)
            meta.progress.note_recent(obs.item_id, self.config.novelty_window)
            return []
        catalog = self.index.catalog
        # the item's standards as the catalog has them, as for its units (an answer received
        # before its activity was aligned has none of its own): every fold reads it alike
        event = Event(obs.item_id, catalog.standards_of(obs.item_id, obs.standards), float(obs.correct), obs.time)
        meta.reach(obs.time)
        if obs.placement:
            unit = obs.unit if obs.unit is not None else (units[0] if units else None)
            learner.state = self.model.update(learner.state, event)
            meta.events += 1
            meta.progress.note_recent(obs.item_id, self.config.novelty_window)
            if unit is not None and unit in self.index.prereqs:
                meta.answers.append((unit, obs.correct >= 0.5, True))
                self._refresh_priors(learner)
                self._maybe_finish(learner, obs.time)
            return []
        first = len(units) == 1 and self._belief_on(meta) and self._untouched(meta, units[0])
        learner.state = self.model.update(learner.state, event)
        meta.events += 1
        if first:
            meta.answers.append((units[0], obs.correct >= 0.5, False))
            self._refresh_priors(learner)
            self._maybe_finish(learner, obs.time)  # practice may tell a running diagnostic enough
        check = catalog[obs.item_id].mastery_check if obs.item_id in catalog else False
        return record_attempt(
            meta.progress,
            Attempt(obs.item_id, units, float(obs.correct), obs.time, check),
            self.model.mastery(learner.state),
            self.index.prereqs,
            self.config,
            self.index.checkable,
        )

    def units_of(self, obs: Observation) -> tuple[str, ...]:
        """The learnable units an answer is evidence on (the fold's reading)."""
        units = self.index.item_units.get(obs.item_id)
        if units is None:  # an item no longer in the catalog: its standards as recorded
            units = tuple(self.index.units(c for c in obs.standards if c in self.index.graph.standards))
        return units

    @staticmethod
    def _untouched(meta: LearnerMeta, unit: str) -> bool:
        """No evidence on ``unit`` yet: its estimate is still the starting belief's."""
        return meta.progress.get(unit).attempts == 0 and all(u != unit for u, _, _ in meta.answers)

    # ------------------------------------------------------------------ starting belief
    def _belief_on(self, meta: LearnerMeta) -> bool:
        return self._grade(meta) is not None or any(d.asked_before is not None for d in meta.diagnostics)

    def _grade(self, meta: LearnerMeta) -> float | None:
        """The learner's place on the grade scale, if the graph has one."""
        return _hint(meta) if self.graded else None

    def belief(self, meta: LearnerMeta) -> Placement | None:
        """The particle belief about the learner's starting state with every answer so far, or
        None (no grade, no diagnostic: the model's flat prior)."""
        hint = self._grade(meta)
        active = [d for d in meta.diagnostics if d.asked_before is not None]
        if active:
            current = active[-1]
            config, focus, before = self.placement_config, current.focus, current.asked_before or 0
        elif hint is not None:
            config, focus, before = self.grade_prior, None, 0
        else:
            return None
        known = self.index.prereqs
        answers = [(u, c, asked) for u, c, asked in meta.answers if u in known]
        before = min(before, len(answers))
        practice = sum(1 for _, _, asked in answers[before:] if not asked) if active else 0
        return Placement(
            self.index,
            config,
            0,
            hint,
            [(u, c) for u, c, _ in answers],
            None if focus is None else frozenset(focus),
            before,
            practice,
        )

    def _refresh_priors(self, learner: Learner) -> None:
        """The belief's marginals become the model's priors of every standard without evidence.

        Before any evidence the result depends on the grade alone (the state is the model's
        initial one, see :meth:`new`, :meth:`rebuild` and :meth:`set_grade`), so it is computed
        once per grade: every new learner of a grade starts from a copy."""
        meta = learner.meta
        fresh = (
            not meta.answers
            and not any(p.attempts for p in meta.progress.units.values())
            and all(d.asked_before is None for d in meta.diagnostics)
        )
        hint = self._grade(meta) if fresh else None
        if hint is not None and hint in self._primed:
            learner.state = {k: v.copy() for k, v in self._primed[hint].items()}
            return
        belief = self.belief(meta)
        if belief is None:
            return
        touched = {u for u, _, _ in meta.answers} | {u for u, p in meta.progress.units.items() if p.attempts}
        priors = belief.marginals()  # in belief.units order; NaN: no prior (the evidence speaks)
        pos = belief.positions
        priors[[pos[u] for u in touched if u in pos]] = np.nan
        if not np.isnan(priors).all():
            learner.state = self.model.state_with_prior_values(belief.units, priors, learner.state)
        if hint is not None:
            self._primed[hint] = {k: v.copy() for k, v in learner.state.items()}

    # ------------------------------------------------------------------ entry diagnostic
    def start_placement(
        self,
        learner: Learner,
        *,
        restart: bool = False,
        focus: Iterable[str] | None = None,
        now: float | None = None,
    ) -> PlacementStatus:
        """Start an entry diagnostic (or resume the current one; ``restart`` begins a new one
        whatever the state). Its questions come from the learner's belief, answers included.
        ``now``: the server's clock, where answers may arrive after later ones (see
        :class:`Diagnostic`)."""
        meta = learner.meta
        if not meta.diagnostics or restart:
            start = now
            if now is not None and meta.last_time is not None and meta.last_time >= now:
                start = math.nextafter(meta.last_time, math.inf)  # after everything folded
            codes = None if focus is None else tuple(sorted(focus))
            meta.diagnostics.append(Diagnostic(meta.events, codes, start_time=start))
            self._activate_diagnostics(learner)
        return self.placement_status(learner)

    def _activate_diagnostics(self, learner: Learner, before: Observation | None = None) -> None:
        """Diagnostics whose start has come (before the observation ``before`` is folded) begin:
        the belief switches to the placement configuration (the priors follow). A start is a
        time folded, like an answer's: an answer from before it is a late one."""
        meta = learner.meta
        for d in meta.diagnostics:  # one at a time, in order, as they started live
            if d.asked_before is None and d.begins_before(before, meta.events):
                d.asked_before = len(meta.answers)
                if d.start_time is not None:
                    meta.reach(d.start_time)
                self._refresh_priors(learner)
                self._maybe_finish(learner, None)  # nothing worth asking: finished at once

    @staticmethod
    def _current(meta: LearnerMeta) -> Diagnostic | None:
        """The diagnostic that runs now (or ran last): the latest one that has started."""
        started = [d for d in meta.diagnostics if d.asked_before is not None]
        return started[-1] if started else None

    def _maybe_finish(self, learner: Learner, time: float | None) -> None:
        meta = learner.meta
        current = self._current(meta)
        if current is None or current.finished or current.asked_before is None:
            return
        belief = self.belief(meta)
        if belief is None or not belief.finished:
            return
        result = belief.result()
        asked_right = {u for u, ok, asked in meta.answers[current.asked_before :] if ok and asked}
        mark_mastered(meta.progress, [u for u in result.mastered if u in asked_right], time or 0.0)
        current.finished_event = meta.events
        current.result = PlacementSummary(
            result.grade_band, round(result.confidence, 4), result.questions, list(result.mastered)
        )

    def placement_status(self, learner: Learner) -> PlacementStatus:
        meta = learner.meta
        current = self._current(meta)
        if current is None:
            return PlacementStatus(False, 0, self.placement_config.max_questions, False, None, None, "", 0.0, None)
        if current.finished and current.result is not None:
            r = current.result
            return PlacementStatus(
                True,
                r.questions,
                self.placement_config.max_questions,
                True,
                None,
                None,
                r.grade_band,
                r.confidence,
                list(r.mastered),
            )
        belief = self.belief(meta)
        assert belief is not None  # an active diagnostic always has a belief
        result = belief.result()
        unit = belief.next_question()
        return PlacementStatus(
            True,
            belief.questions,
            self.placement_config.max_questions,
            False,
            unit,
            belief.item_for(unit) if unit is not None else None,
            result.grade_band,
            result.confidence,
            None,
        )

    def placement_question(self, learner: Learner) -> tuple[str, Item] | None:
        """The current diagnostic question (its standard and an item to ask it with), or None."""
        status = self.placement_status(learner)
        if not status.active or status.finished or status.question is None or status.item is None:
            return None
        return status.question, status.item

    def unplaced(self, meta: LearnerMeta) -> bool:
        """Nothing places the learner yet: an entry diagnostic started and not finished, or no
        grade, no answer and no diagnostic. A grade places a learner well enough: its belief,
        checked by just-in-time test-outs, plans the second day as well as an entry diagnostic
        does, without its time (``docs/benchmarks/rotation.md``); without one, plans start from
        nothing."""
        current = self._current(meta)
        if current is not None:
            return not current.finished
        return not (meta.events or meta.answers or meta.diagnostics) and self._grade(meta) is None

    def entry_question(self, learner: Learner) -> tuple[str, Item] | None:
        """The question an entry diagnostic asks an :meth:`unplaced` learner next (its standard
        and an item to ask it with): the current diagnostic's, or the first one a diagnostic
        started now would ask (the same for every learner without evidence, computed once). None
        for a placed learner, or when there is nothing worth asking."""
        meta = learner.meta
        if not self.unplaced(meta):
            return None
        if self._current(meta) is not None:
            return self.placement_question(learner)
        return self._first_question

    @functools.cached_property
    def _first_question(self) -> tuple[str, Item] | None:
        """What a diagnostic started now asks a learner without grade or evidence first."""
        probe = LearnerMeta(diagnostics=[Diagnostic(0, asked_before=0)])
        return self.placement_question(Learner(self.model.init_state(), probe))

    # ------------------------------------------------------------------ planning
    def context(
        self,
        learner: Learner,
        now: float,
        *,
        goal: Goal | None = None,
        modalities: Iterable[Modality] | None = None,
        available: Iterable[str] | None = None,
        entry_diagnostic: bool = True,
    ) -> PlanContext:
        """The planner's view of the learner at ``now``. The random stream (exploration) is the
        learner's own, advanced by each activity: the same learner at the same point gets the
        same plan. An :meth:`unplaced` learner's context says what an entry diagnostic would ask
        (``entry_diagnostic``: a playlist or a rotation starts with it), unless told not to."""
        state, meta = learner.state, learner.meta
        predictions = self.predictions
        pos = predictions.item_pos

        def predict(items: Sequence[Item]) -> np.ndarray:
            try:  # the catalog's items: only these are predicted
                positions = np.fromiter((pos[i.id] for i in items), np.int64, len(items))
            except KeyError:  # an item the catalog does not hold
                return np.array([self._predict_one(state, i) for i in items])
            return predictions.at(state, positions)

        return PlanContext(
            self.index,
            self.config,
            self.model.mastery(state),
            predict,
            meta.progress,
            now=now,
            goal=goal or meta.goal,
            overrides=meta.overrides,
            interests=meta.interests,
            modalities=None if modalities is None else frozenset(modalities),
            available=None if available is None else frozenset(available),
            level=self.level(learner),
            seed=(meta.seed & 0xFFFFFFFF, meta.progress.activities),
            entry_diagnostic=(lambda: self.entry_question(learner))
            if entry_diagnostic and self.unplaced(meta)
            else None,
        )

    def _predict_one(self, state: dict[str, np.ndarray], item: Item) -> float:
        batch = self.model.encode_items([ItemSpec(item.id, item.standards, item.difficulty)])
        return float(self.model.predict(state, batch)[0])

    def recommend(
        self,
        learner: Learner,
        now: float,
        n: int = 1,
        k_alternatives: int = 2,
        *,
        available: Iterable[str] | None = None,
    ) -> PlanResult:
        return recommend(self.context(learner, now, available=available), n=n, k_alternatives=k_alternatives)

    def status(self, learner: Learner, now: float) -> GoalStatus:
        return goal_status(self.context(learner, now))

    def level(self, learner: Learner) -> float | None:
        """The learner's grade level: the stated grade, else the latest placement's band, else the
        median grade of the standards practised so far."""
        meta = learner.meta
        hint = _hint(meta)
        if hint is not None:
            return hint
        placed = meta.placement
        if placed is not None:
            number = grade_number(placed.grade_band)
            if number is not None:
                return float(number)
        graph = self.index.graph
        grades = sorted(
            g
            for u, p in meta.progress.units.items()
            if p.attempts and u in graph.standards and (g := graph.standards[u].grade_num) is not None
        )
        return float(grades[len(grades) // 2]) if grades else None

    def profile(self, learner: Learner, now: float) -> LearnerProfile:
        """Mastery per standard (P(mastered), an uncertainty that shrinks with evidence, the
        evidence count and a status), the mastered standards and the GPS."""
        ctx = self.context(learner, now)
        graph, progress = self.index.graph, learner.progress
        mastery: dict[str, StandardMastery] = {}
        # an external standard is not learned from this framework
        units_of = {
            code: graph.leaves(code)
            for code in ctx.mastery
            if code in graph.standards and not graph.standards[code].external
        }
        answers = progress.answers_on_each(units_of)  # answers, each once (an item on several parts)
        for code, p in ctx.mastery.items():
            units = units_of.get(code)
            if units is None:
                continue
            evidence = answers[code]
            if all(progress.get(u).mastered for u in units):
                status = "mastered"
            elif evidence:
                status = "in_progress"
            elif p >= self.config.likely_known:
                status = "likely_known"
            else:
                status = "not_started"
            mastery[code] = StandardMastery(
                round(p, 4), round(math.sqrt(p * (1 - p) / (evidence + 3)), 4), evidence, status
            )
        return LearnerProfile(mastery, sorted(progress.mastered, key=graph.order_of), goal_status(ctx), ctx.level)


def _hint(meta: LearnerMeta) -> float | None:
    """The grade hint of a stored record (a label stored before grades were checked counts as none)."""
    try:
        return grade_hint(meta.grade)
    except GradeError:
        return None
