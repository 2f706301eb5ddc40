"""Simulated learners: the ground truth the planners are evaluated against.

A simulated learner holds one binary *true knowledge* per learnable unit of the **true** graph
(a standard without parts). It is BKT-like but deliberately not the planner's model
(``models.bkt.GraphBKT``): knowledge is binary and hidden, learning is blocked without the true
prerequisites, learners differ in speed, slip and guess, and knowledge decays over simulated time.

The population
    Each learner has a latent position ``theta`` on the grade scale (``theta = 4.0``: has just
    finished grade 3) plus a per-domain offset (stronger in fractions than in geometry, say).
    A unit of grade ``g`` is known at the start with probability
    ``sigmoid((theta + domain_offset - g - 0.5) / grade_softness)`` **and only if all its true
    prerequisites are known**, which leaves realistic gaps just below the learner's grade.

One activity on an item (see :meth:`SimulatedLearner.answer_probability` and :meth:`learn`)
    1. the answer is correct with probability ``1 - slip`` if every unit of the item is known,
       ``guess`` otherwise (slip and guess shift with the item's difficulty);
    2. each unit of the item (an item on a parent standard practises its parts) that is not known
       is learned with probability ``p_learn * modality rate * speed`` when all its true
       prerequisites are known, and ``blocked_factor`` times that otherwise;
    3. a unit already known is consolidated: its half-life is multiplied by ``practice_boost``.

Forgetting
    A known unit is lost over an elapsed time ``dt`` with probability ``1 - 2 ** (-dt / half_life)``
    (exponential, so practice resets the clock). Units known at the start have the long
    ``prior_half_life_days``; newly learned ones start at ``half_life_days``.

Every parameter and its default is in :class:`SimulatorConfig` (and in ``docs/simulator.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.catalog import Modality
from engine.graph import StandardsGraph

__all__ = [
    "DEFAULT_MODALITIES",
    "LearnerProfile",
    "ModalityParams",
    "SimulatedLearner",
    "SimulatorConfig",
    "TruthIndex",
    "draw_learner",
    "draw_learners",
]

MINUTES_PER_DAY = 1440.0
_POOL_STREAM = 0x504F4F4C  # "POOL": keeps learner draws apart from the outcome streams


class ModalityParams(BaseModel):
    """How much one activity of a modality teaches (``rate`` multiplies ``p_learn``), how many
    minutes it really takes (``time_factor`` multiplies the catalog duration) and whether it
    sends an answer (``answers``; otherwise the planner learns only that it was done, as from an
    xAPI statement without a result)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    rate: float = Field(ge=0.0)
    time_factor: float = Field(default=1.0, gt=0.0)
    answers: bool = True


#: Assessments teach little; tutoring and small groups teach most per activity but take longer
#: than their catalog minutes (gathering the group, waiting for the teacher). Videos, readings and
#: the teacher's lessons send no answer (``Modality.answers``): a platform reports a video played
#: or a page read, a teacher the lesson held, not whether it was understood.
DEFAULT_MODALITIES: dict[str, ModalityParams] = {
    m.value: params.model_copy(update={"answers": m.answers})
    for m, params in {
        Modality.ONLINE_PRACTICE: ModalityParams(rate=1.0),
        Modality.VIDEO: ModalityParams(rate=0.6),
        Modality.READING: ModalityParams(rate=0.6),
        Modality.SMALL_GROUP: ModalityParams(rate=1.5, time_factor=1.2),
        Modality.TUTORING: ModalityParams(rate=2.0, time_factor=1.2),
        Modality.PROJECT: ModalityParams(rate=1.2),
        Modality.ASSESSMENT: ModalityParams(rate=0.3),
    }.items()
}


class SimulatorConfig(BaseModel):
    """Every parameter of the simulated learners, with its default (see ``docs/simulator.md``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- population -----------------------------------------------------------------------------
    start_grade: float | None = None  # mean theta; None: the goal's lowest grade + start_offset
    start_offset: float = 0.0  # 0: learners are starting the goal grade (finished the one before)
    position_sd: float = Field(default=0.5, ge=0.0)  # spread of theta between learners (grades)
    domain_sd: float = Field(default=0.3, ge=0.0)  # per-learner, per-domain offset of theta
    grade_softness: float = Field(default=0.3, gt=0.0)  # width of the known/unknown boundary (grades)
    unknown_grade_prior: float = Field(default=0.5, ge=0.0, le=1.0)  # P(known) of a unit without grade
    speed_sigma: float = Field(default=0.35, ge=0.0)  # log-normal spread of the learning speed
    speed_range: tuple[float, float] = (0.3, 3.0)  # speed multiplier is clipped to this
    slip_range: tuple[float, float] = (0.05, 0.15)  # per-learner slip ~ uniform
    guess_range: tuple[float, float] = (0.10, 0.30)  # per-learner guess ~ uniform
    # -- learning -------------------------------------------------------------------------------
    p_learn: float = Field(
        default=0.3, ge=0.0, le=1.0
    )  # one online-practice activity (several problems), ready, speed 1
    blocked_factor: float = Field(default=0.1, ge=0.0, le=1.0)  # share of p_learn without prerequisites
    max_p_learn: float = Field(default=0.9, ge=0.0, le=1.0)  # cap after rate and speed
    difficulty_effect: float = Field(
        default=0.5, ge=0.0, lt=1.0
    )  # slip x (1 + e*s), guess x (1 - e*s), s = 2*(difficulty - 0.5)
    modalities: dict[str, ModalityParams] = Field(default_factory=lambda: dict(DEFAULT_MODALITIES))
    # -- forgetting -----------------------------------------------------------------------------
    half_life_days: float = Field(default=60.0, gt=0.0)  # a newly learned unit
    prior_half_life_days: float = Field(default=365.0, gt=0.0)  # a unit known at the start
    practice_boost: float = Field(default=2.0, ge=1.0)  # half-life x this per practice when known
    max_half_life_days: float = Field(default=730.0, gt=0.0)
    # -- clock ----------------------------------------------------------------------------------
    session_minutes: float = Field(default=45.0, gt=0.0)  # one session per school day
    school_days_per_week: int = Field(default=5, ge=1, le=7)

    @field_validator("slip_range", "guess_range", "speed_range")
    @classmethod
    def _ordered(cls, value: tuple[float, float]) -> tuple[float, float]:
        low, high = value
        if not 0.0 <= low <= high:
            raise ValueError(f"expected 0 <= low <= high, got {list(value)}")
        return value

    @field_validator("modalities")
    @classmethod
    def _all_modalities(cls, value: dict[str, ModalityParams]) -> dict[str, ModalityParams]:
        missing = [m.value for m in Modality if m.value not in value]
        if missing:
            raise ValueError(f"no parameters for modality {', '.join(missing)}")
        return value


class TruthIndex:
    """The true graph as arrays: learnable units, their prerequisites, grades and domains.

    ``units`` are in one fixed topological order of the learning graph, so drawing knowledge
    in index order sees every prerequisite before its dependents.
    """

    def __init__(self, graph: StandardsGraph):
        self.graph = graph
        learning = graph.learning
        self.units: list[str] = list(nx.lexicographical_topological_sort(learning, key=graph.order_of))
        self.position: dict[str, int] = {u: i for i, u in enumerate(self.units)}
        self.prereqs: list[np.ndarray] = [
            np.array([self.position[p] for p in graph.learning_prerequisites(u)], dtype=np.int64) for u in self.units
        ]
        grades = [graph.standards[u].grade_num for u in self.units]
        self.grade = np.array([np.nan if g is None else float(g) for g in grades])
        domains = [graph.standards[u].domain_code or "" for u in self.units]
        names = sorted(set(domains))
        self.domain_names = names
        self.domain = np.array([names.index(d) for d in domains], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.units)

    def leaves(self, code: str) -> np.ndarray:
        """Indices of the learnable units of ``code`` (itself, or its parts)."""
        return np.array([self.position[leaf] for leaf in self.graph.leaves(self.graph.resolve(code))], dtype=np.int64)


@dataclass(frozen=True)
class LearnerProfile:
    """One learner of the pool: fixed traits and the true knowledge at the start."""

    number: int
    theta: float
    speed: float
    slip: float
    guess: float
    known: np.ndarray  # (n_units,) bool, read-only

    @property
    def known_count(self) -> int:
        return int(self.known.sum())


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def draw_learner(
    index: TruthIndex, config: SimulatorConfig, start_grade: float, seed: int, number: int
) -> LearnerProfile:
    """Learner ``number`` of the pool drawn with ``seed``: the same draw whatever the pool size."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, number, _POOL_STREAM]))
    theta = start_grade + config.position_sd * rng.standard_normal()
    speed = float(np.clip(np.exp(config.speed_sigma * rng.standard_normal()), *config.speed_range))
    slip = float(rng.uniform(*config.slip_range))
    guess = float(rng.uniform(*config.guess_range))
    offsets = config.domain_sd * rng.standard_normal(len(index.domain_names))
    draws = rng.random(len(index))
    level = theta + offsets[index.domain]
    p_known = np.where(
        np.isnan(index.grade),
        config.unknown_grade_prior,
        _sigmoid((level - np.nan_to_num(index.grade) - 0.5) / config.grade_softness),
    )
    known = np.zeros(len(index), dtype=bool)
    for i in range(len(index)):  # topological order: prerequisites are decided first
        known[i] = draws[i] < p_known[i] and bool(known[index.prereqs[i]].all())
    known.flags.writeable = False
    return LearnerProfile(number=number, theta=float(theta), speed=speed, slip=slip, guess=guess, known=known)


def draw_learners(
    index: TruthIndex, config: SimulatorConfig, start_grade: float, seed: int, count: int
) -> list[LearnerProfile]:
    """A pool of ``count`` learners (learner ``i`` does not depend on ``count``)."""
    return [draw_learner(index, config, start_grade, seed, i) for i in range(count)]


class SimulatedLearner:
    """The mutable true state of one learner during a run. Randomness comes from the caller as
    uniforms indexed by unit, so the same draws give the same outcome (common random numbers)."""

    def __init__(self, profile: LearnerProfile, index: TruthIndex, config: SimulatorConfig):
        self.profile = profile
        self.index = index
        self.config = config
        self.known = profile.known.copy()
        day = MINUTES_PER_DAY
        self.half_life = np.where(self.known, config.prior_half_life_days * day, config.half_life_days * day)
        self._max_half_life = config.max_half_life_days * day

    def forget(self, elapsed_minutes: float, uniforms: np.ndarray) -> None:
        """Lose each known unit with probability ``1 - 2 ** (-elapsed / half_life)``."""
        if elapsed_minutes <= 0:
            return
        p_lose = -np.expm1(-math.log(2.0) * elapsed_minutes / self.half_life)
        self.known &= ~(uniforms < p_lose)

    def answer_probability(self, units: np.ndarray, difficulty: float | None) -> float:
        shift = 0.0 if difficulty is None else 2.0 * (difficulty - 0.5) * self.config.difficulty_effect
        if self.known[units].all():
            return 1.0 - min(1.0, self.profile.slip * (1.0 + shift))
        return max(0.0, self.profile.guess * (1.0 - shift))

    def ready(self, unit: int) -> bool:
        """All true prerequisites of ``unit`` are known."""
        return bool(self.known[self.index.prereqs[unit]].all())

    def learn(self, units: np.ndarray, modality: str, uniforms: np.ndarray, share: float = 1.0) -> None:
        """One activity on ``units`` (``share``: the part of its time spent on it, which scales
        ``p_learn``); readiness is judged on the knowledge before the activity."""
        cfg = self.config
        base = cfg.p_learn * cfg.modalities[modality].rate * self.profile.speed * share
        ready = [self.ready(int(u)) for u in units]
        for unit, is_ready in zip(units.tolist(), ready):
            if self.known[unit]:
                self.half_life[unit] = min(self.half_life[unit] * cfg.practice_boost, self._max_half_life)
                continue
            p = min(cfg.max_p_learn, base if is_ready else base * cfg.blocked_factor)
            if uniforms[unit] < p:
                self.known[unit] = True
                self.half_life[unit] = cfg.half_life_days * MINUTES_PER_DAY
