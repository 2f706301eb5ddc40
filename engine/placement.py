"""Placement diagnostic: an adaptive entry assessment that places a new learner on the graph.

The belief over the learner's knowledge is a cloud of weighted *particles*, each a plausible
knowledge state: a level ``theta`` on the grade scale (K=0 ... 8, high school 9+) and the set of
learnable standards known, drawn so that a standard is known with a probability that falls with
its grade above ``theta`` and **only if all its prerequisites are known** (knowledge states are
closed under prerequisites). An answer reweights the particles with slip/guess likelihoods, so a
success on a standard is evidence for its ancestors and a failure is evidence against its
dependents, through the particles' structure.

Each question is the standard with the highest expected information gain about the state (among
``focus`` when given), asked with an item on that standard alone when there is one. The
diagnostic stops when the grade band is known with the configured confidence (after a minimum
number of questions), when no question is expected to gain ``min_gain``, or at the maximum
length. It is deterministic given its seed and answers, so a server can keep just
``(seed, answers)`` and rebuild it; the prior cloud for a (graph, config, seed, grade hint) is
drawn once per process and shared read-only (answers only move each diagnostic's weights).

With ``max_questions=0`` the same object is a *belief* about a learner's starting state: the
planner policy uses its marginals as the model's priors and feeds it first attempts
(``engine.planner.policy``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.catalog import Item
from engine.planner.index import PlannerIndex

__all__ = ["Placement", "PlacementConfig", "PlacementResult", "grade_band", "placement_accuracy", "run_placement"]

HS_SPAN = 3.0  # high-school standards are spread over grades 9-11 by their graph depth
_PRIOR_CACHE: dict[tuple, tuple] = {}  # (id(index), config, seed, hint) -> the drawn prior particles
_SHAPE_CACHE: dict[int, tuple] = {}  # id(index) -> (index, units, positions, grade scale, domains, domain of unit)
#: entries kept in each cache: every grade of a scale (K-12 and HS) for a couple of indexes, since a
#: server asked for learners of many grades would otherwise draw a grade's particles again and again
_CACHE_SIZE = 32


def _remember(cache: dict, key: Any, value: tuple) -> None:
    """Keep ``value`` under ``key``, dropping the oldest entry when the cache is full."""
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[key] = value


@dataclass(frozen=True)
class PlacementConfig:
    max_questions: int = 30
    min_questions: int = 12
    confidence: float = 0.95
    particles: int = 4000
    slip: float = 0.1
    guess: float = 0.15
    steepness: float = 2.5
    domain_sd: float = 0.5  # spread (in grades) of a learner's level between domains
    hint_sd: float = 1.5  # spread (in grades) of the level around a grade hint
    mastered_at: float = 0.8  # posterior P(known) to hand a standard over as mastered
    min_gain: float = 0.0  # stop early when no question is expected to teach us this much (nats)


@dataclass(frozen=True)
class PlacementResult:
    mastery: dict[str, float]
    mastered: list[str]
    grade_band: str
    confidence: float
    questions: int
    finished: bool


def _grade_scale(index: PlannerIndex) -> np.ndarray:
    """A difficulty position per unit: its grade, with high school spread by depth in the graph."""
    units = list(index.order)
    depth: dict[str, int] = {}
    for unit in units:  # index.order is a topological order
        pres = index.prereqs[unit]
        depth[unit] = 1 + max((depth[p] for p in pres), default=0)
    hs = [depth[u] for u in units if (index.graph.standards[u].grade_num or 0) >= 9]
    lo, hi = (min(hs), max(hs)) if hs else (0, 1)
    scale = []
    for unit in units:
        grade: float | None = index.graph.standards[unit].grade_num
        if grade is None:
            grade = 4
        if grade >= 9:
            grade = 9 + HS_SPAN * (depth[unit] - lo) / max(1, hi - lo)
        scale.append(float(grade))
    return np.array(scale)


@dataclass
class Placement:
    """One learner's diagnostic. Ask :meth:`next_question`, give :meth:`answer`, read :meth:`result`."""

    index: PlannerIndex
    config: PlacementConfig = PlacementConfig()
    seed: int = 0
    grade_hint: float | None = None
    answers: list[tuple[str, bool]] = field(default_factory=list)
    focus: frozenset[str] | None = None  # ask only about these units (e.g. what a goal builds on)
    asked_before: int = 0  # answers given before the diagnostic began: evidence, not its questions
    practice: int = 0  # answers since it began that it did not ask (practice): evidence, not its questions

    def __post_init__(self) -> None:
        shape = _SHAPE_CACHE.get(id(self.index))
        if shape is None or shape[0] is not self.index:
            units = list(self.index.order)
            domains = [self.index.graph.standards[u].domain_code or "" for u in units]
            names = sorted(set(domains))
            column = {d: k for k, d in enumerate(names)}
            shape = (
                self.index,
                units,
                {u: i for i, u in enumerate(units)},
                _grade_scale(self.index),
                names,
                np.array([column[d] for d in domains], dtype=np.intp),
            )
            _remember(_SHAPE_CACHE, id(self.index), shape)
        # the units, grade scale and domains of an index: computed once, shared read-only
        _, self.units, self._pos, self._scale, self._domains, self._domain_of = shape
        key = (id(self.index), self.config, self.seed, self.grade_hint)
        cached = _PRIOR_CACHE.get(key)
        if cached is None or cached[0] is not self.index:
            theta, known = self._draw()
            grades, bands = self._particle_bands(known)
            # float32, one row per unit (a bool matmul converts each time; a unit's particles contiguous)
            weights_of = np.ascontiguousarray(known.T, dtype=np.float32)
            for array in (theta, known, bands, weights_of):
                array.flags.writeable = False
            cached = (self.index, theta, known, grades, bands, weights_of)
            _remember(_PRIOR_CACHE, key, cached)
        # the prior cloud depends only on (index, config, seed, hint): drawn once, shared read-only
        _, self._theta, self._known, self._grades, self._bands, self._known_t = cached
        self._logw = np.zeros(len(self._theta))
        replay, self.answers = list(self.answers), []
        if replay:  # every earlier answer at once: the log-likelihoods add up over the answers
            for unit, _ in replay:
                if unit not in self._pos:
                    raise KeyError(f"unknown standard {unit!r}: placement asks about learnable standards only")
            cfg = self.config
            right = np.array([bool(c) for _, c in replay])
            if_known = np.where(right, math.log(1 - cfg.slip), math.log(cfg.slip))
            if_not = np.where(right, math.log(cfg.guess), math.log(1 - cfg.guess))
            rows = self._known_t[[self._pos[u] for u, _ in replay]]  # float32: a fast product
            self._logw = ((if_known - if_not).astype(np.float32) @ rows).astype(float) + if_not.sum()
            self.answers = [(u, bool(c)) for u, c in replay]

    def _draw(self) -> tuple[np.ndarray, np.ndarray]:
        cfg, rng = self.config, np.random.default_rng(self.seed)
        n = cfg.particles
        if self.grade_hint is None:
            theta = rng.uniform(-0.5, 9.0 + HS_SPAN, n)
        else:
            theta = self.grade_hint + rng.normal(0.0, cfg.hint_sd, n)
        # knowledge is correlated within a domain (a learner weak in fractions): per-particle,
        # per-domain offsets of the level; per-unit noise makes gaps; prerequisites gate knowledge
        offsets = rng.normal(0.0, cfg.domain_sd, (n, len(self._domains)))
        level = theta[:, None] + offsets[:, self._domain_of]
        p_known = 1.0 / (1.0 + np.exp(-cfg.steepness * (level - self._scale[None, :] - 0.5)))
        draw = rng.random(p_known.shape) < p_known
        known = np.zeros_like(draw)
        for j, unit in enumerate(self.units):
            ok = draw[:, j]
            for pre in self.index.prereqs[unit]:
                ok = ok & known[:, self._pos[pre]]
            known[:, j] = ok
        return theta, known

    def _particle_bands(self, known: np.ndarray) -> tuple[list[str], np.ndarray]:
        """Each particle's grade band: the last grade of the unbroken run, from the lowest grade up,
        in which it knows at least half of the grade's standards (-1 -> band 0, "below K")."""
        grades = sorted({self.index.graph.standards[u].grade_num or 0 for u in self.units})
        member = np.array(
            [[(self.index.graph.standards[u].grade_num or 0) == g for g in grades] for u in self.units], dtype=float
        ).reshape(len(self.units), len(grades))  # (a framework without learnable units: 0 x 0)
        share = (known.astype(float) @ member) / member.sum(axis=0)
        passed = np.cumprod(share >= 0.5, axis=1)
        return [band_label(g) for g in grades], passed.sum(axis=1).astype(int)

    # ------------------------------------------------------------------ belief
    def _weights(self) -> np.ndarray:
        w = np.exp(self._logw - self._logw.max())
        return w / w.sum()

    @property
    def positions(self) -> Mapping[str, int]:
        """Each unit's position in ``units`` (and in :meth:`marginals`)."""
        return self._pos

    def marginals(self) -> np.ndarray:
        """Posterior P(known) for every unit, in ``self.units`` order."""
        return (self._known_t @ self._weights().astype(np.float32)).astype(float)

    def _grade_posterior(self) -> tuple[int, float]:
        """The most probable grade band and its posterior probability (neighbours count half)."""
        w = self._weights()
        mass = np.bincount(self._bands, weights=w, minlength=len(self._grades))
        best = int(mass.argmax())
        neighbour = max(mass[best - 1] if best > 0 else 0.0, mass[best + 1] if best + 1 < len(mass) else 0.0)
        return best, float(mass[best] + 0.5 * neighbour)

    # ------------------------------------------------------------------ questions
    def next_question(self) -> str | None:
        """The unit to ask about next, or None when the diagnostic is finished."""
        if self._finished_by_count():
            return None
        unit, gain = self._best_question()
        if unit is None or gain < self.config.min_gain:
            return None  # nothing left to ask, or no question is worth its time
        return unit

    def _best_question(self) -> tuple[str | None, float]:
        """The unit with the highest expected information gain about the state, and that gain."""
        if not self.units:  # a framework without learnable units: nothing to ask about
            return None, 0.0
        cfg = self.config
        pi = self.marginals()
        p_right = pi * (1 - cfg.slip) + (1 - pi) * cfg.guess

        def entropy(p: np.ndarray) -> np.ndarray:
            p = np.clip(p, 1e-9, 1 - 1e-9)
            return -(p * np.log(p) + (1 - p) * np.log(1 - p))

        gain = entropy(p_right) - (pi * entropy(np.array(1 - cfg.slip)) + (1 - pi) * entropy(np.array(cfg.guess)))
        gain[self._unaskable()] = -np.inf
        for unit, _ in self.answers:
            gain[self._pos[unit]] = -np.inf
        best = int(np.argmax(gain))
        return (None, 0.0) if not np.isfinite(gain[best]) else (self.units[best], float(gain[best]))

    def _unaskable(self) -> np.ndarray:
        cached = getattr(self, "_unaskable_cache", None)
        if cached is None or cached[0] is not self.focus:  # nothing to ask with, or outside the focus
            mask = np.array(
                [u not in self.index.practised or (self.focus is not None and u not in self.focus) for u in self.units],
                dtype=bool,
            )
            self._unaskable_cache = cached = (self.focus, mask)
        return cached[1]

    def item_for(self, unit: str) -> Item | None:
        """A question item for ``unit``: a mastery check if there is one, else any aligned item
        that sends an answer (``Modality.answers``: not a video, a reading or a lesson); items on
        ``unit`` alone first (an answer on a multi-standard item says less about it). None: no
        item can ask about it."""
        items: Sequence[Item] = [i for i in self.index.items_for.get(unit, ()) if i.modality.answers]
        alone = [i for i in items if self.index.item_units.get(i.id) == (unit,)]
        items = alone or items
        checks = [i for i in items if i.mastery_check]
        pool = checks or list(items)
        return min(pool, key=lambda i: (i.duration_minutes, i.id)) if pool else None

    def answer(self, unit: str, correct: bool) -> None:
        if unit not in self._pos:
            raise KeyError(f"unknown standard {unit!r}: placement asks about learnable standards only")
        cfg = self.config
        known = self._known[:, self._pos[unit]]
        if correct:
            like = np.where(known, 1 - cfg.slip, cfg.guess)
        else:
            like = np.where(known, cfg.slip, 1 - cfg.guess)
        self._logw += np.log(like)
        self.answers.append((unit, bool(correct)))

    @property
    def questions(self) -> int:
        """Questions of this diagnostic answered so far."""
        return max(0, len(self.answers) - self.asked_before - self.practice)

    def _finished_by_count(self) -> bool:
        n = self.questions
        if n >= self.config.max_questions:
            return True
        return n >= self.config.min_questions and self._grade_posterior()[1] >= self.config.confidence

    @property
    def finished(self) -> bool:
        """At the maximum length, confident about the grade band (after the minimum length), or
        no remaining question is expected to gain ``min_gain``."""
        if self._finished_by_count():
            return True
        if self.config.min_gain <= 0.0:
            return self._best_question()[0] is None
        unit, gain = self._best_question()
        return unit is None or gain < self.config.min_gain

    def result(self) -> PlacementResult:
        pi = self.marginals()
        band, confidence = self._grade_posterior()
        mastery = {u: float(p) for u, p in zip(self.units, pi)}
        mastered = [u for u, p in mastery.items() if p >= self.config.mastered_at]
        if not self._grades:  # a framework without learnable units places no one
            label, confidence = "unknown", 0.0
        else:
            label = "below " + self._grades[0] if band == 0 else self._grades[band - 1]
        return PlacementResult(mastery, mastered, label, confidence, self.questions, self.finished)

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "grade_hint": self.grade_hint,
            "answers": [[u, c] for u, c in self.answers],
            "focus": sorted(self.focus) if self.focus is not None else None,
        }

    @classmethod
    def from_json(cls, index: PlannerIndex, data: dict, config: PlacementConfig = PlacementConfig()) -> Placement:
        focus = data.get("focus")
        return cls(
            index,
            config,
            int(data["seed"]),
            data.get("grade_hint"),
            [(str(u), bool(c)) for u, c in data.get("answers", [])],
            frozenset(focus) if focus is not None else None,
        )


def band_label(grade: int) -> str:
    return "K" if grade == 0 else ("HS" if grade >= 9 else str(grade))


def grade_band(graph, known: set[str] | frozenset[str], units: Sequence[str]) -> str:
    """The band of a known set, defined as for particles: the last grade of the unbroken run of
    grades (from the lowest) in which at least half of the grade's standards are known."""
    grades = sorted({graph.standards[u].grade_num or 0 for u in units})
    label = "below " + band_label(grades[0])
    for g in grades:
        members = [u for u in units if (graph.standards[u].grade_num or 0) == g]
        if sum(u in known for u in members) < 0.5 * len(members):
            break
        label = band_label(g)
    return label


def run_placement(placement: Placement, respond) -> PlacementResult:
    """Drive a diagnostic to the end with ``respond(unit) -> bool`` (a simulated or scripted learner)."""
    while (unit := placement.next_question()) is not None:
        placement.answer(unit, bool(respond(unit)))
    return placement.result()


def placement_accuracy(result: PlacementResult, truth: Sequence[str], units: Sequence[str]) -> float:
    """Share of units whose placed status (mastered or not) matches the truth."""
    known = set(truth)
    placed = set(result.mastered)
    return sum((u in placed) == (u in known) for u in units) / max(1, len(units))
