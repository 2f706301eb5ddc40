"""The simulated learner model: prerequisite-gated learning, slip/guess, forgetting, the population."""

from __future__ import annotations

import numpy as np
import pytest

from engine.simulation import SimulatedEnvironment, SimulatedLearner, SimulatorConfig, TruthIndex, draw_learners
from engine.simulation.learners import MINUTES_PER_DAY

from .conftest import FROZEN, profile


def learn_rate(index: TruthIndex, config: SimulatorConfig, known: set[str], unit: str, trials: int = 4000) -> float:
    """Share of single activities on ``unit`` after which it is known."""
    rng = np.random.default_rng(1)
    units = index.leaves(unit)
    learned = 0
    for _ in range(trials):
        learner = SimulatedLearner(profile(index, known), index, config)
        learner.learn(units, "online_practice", rng.random(len(index)))
        learned += bool(learner.known[units].all())
    return learned / trials


def test_learning_needs_the_true_prerequisites(index: TruthIndex) -> None:
    config = SimulatorConfig(p_learn=0.3, blocked_factor=0.1)
    ready = learn_rate(index, config, {"A"}, "B")
    blocked = learn_rate(index, config, set(), "B")
    assert ready == pytest.approx(0.30, abs=0.025)
    assert blocked == pytest.approx(0.03, abs=0.012)
    # D needs both B and C: knowing only one of them still blocks it
    assert learn_rate(index, config, {"A", "B"}, "D") == pytest.approx(0.03, abs=0.012)


def test_learning_without_prerequisites_can_be_switched_off(index: TruthIndex) -> None:
    assert learn_rate(index, SimulatorConfig(blocked_factor=0.0), set(), "B", trials=500) == 0.0


def test_modality_rate_and_speed_scale_learning(index: TruthIndex) -> None:
    rng = np.random.default_rng(2)
    config = SimulatorConfig(p_learn=0.2)
    counts = {"tutoring": 0, "assessment": 0}
    for modality in counts:
        for _ in range(3000):
            learner = SimulatedLearner(profile(index, {"A"}), index, config)
            learner.learn(index.leaves("B"), modality, rng.random(len(index)))
            counts[modality] += bool(learner.known[index.position["B"]])
    assert counts["tutoring"] / 3000 == pytest.approx(0.2 * 2.0, abs=0.03)
    assert counts["assessment"] / 3000 == pytest.approx(0.2 * 0.3, abs=0.015)
    fast = SimulatedLearner(profile(index, {"A"}, speed=2.0), index, config)
    u = np.full(len(index), 0.35)  # above p_learn, below p_learn * speed
    fast.learn(index.leaves("B"), "online_practice", u)
    assert fast.known[index.position["B"]]


def test_slip_and_guess_rates(graph, catalog, index) -> None:
    learner = profile(index, {"A"}, slip=0.1, guess=0.25)
    env = SimulatedEnvironment(graph, catalog, ["D"], [learner], seed=3, config=FROZEN, index=index)
    env.reset(0)
    known = np.mean([env.step("A-practice").correct for _ in range(3000)])
    unknown = np.mean([env.step("D-practice").correct for _ in range(3000)])
    assert known == pytest.approx(0.90, abs=0.02)
    assert unknown == pytest.approx(0.25, abs=0.02)


def test_difficulty_shifts_slip_and_guess(index) -> None:
    learner = SimulatedLearner(
        profile(index, {"A"}, slip=0.1, guess=0.2), index, SimulatorConfig(difficulty_effect=0.5)
    )
    a, b = index.leaves("A"), index.leaves("B")
    assert learner.answer_probability(a, None) == pytest.approx(0.9)
    assert learner.answer_probability(a, 1.0) == pytest.approx(1 - 0.1 * 1.5)
    assert learner.answer_probability(b, 0.0) == pytest.approx(0.2 * 1.5)
    assert learner.answer_probability(b, 1.0) == pytest.approx(0.2 * 0.5)


def test_forgetting_follows_the_half_life(index) -> None:
    config = SimulatorConfig(prior_half_life_days=10.0)
    rng = np.random.default_rng(4)
    lost = 0
    for _ in range(4000):
        learner = SimulatedLearner(profile(index, {"A"}), index, config)
        learner.forget(10.0 * MINUTES_PER_DAY, rng.random(len(index)))
        lost += not learner.known[index.position["A"]]
    assert lost / 4000 == pytest.approx(0.5, abs=0.025)
    learner = SimulatedLearner(profile(index, {"A"}), index, config)
    learner.forget(0.0, np.zeros(len(index)))
    assert learner.known[index.position["A"]]


def test_practice_extends_the_half_life(index) -> None:
    config = SimulatorConfig(prior_half_life_days=10.0, practice_boost=2.0, max_half_life_days=30.0)
    learner = SimulatedLearner(profile(index, {"A"}), index, config)
    a = index.leaves("A")
    before = learner.half_life[a[0]]
    learner.learn(a, "online_practice", np.ones(len(index)))
    assert learner.half_life[a[0]] == pytest.approx(2 * before)
    for _ in range(5):
        learner.learn(a, "online_practice", np.ones(len(index)))
    assert learner.half_life[a[0]] == pytest.approx(30.0 * MINUTES_PER_DAY)


def test_population_starts_around_its_grade_with_prerequisite_closed_gaps(bundled_graph) -> None:
    index = TruthIndex(bundled_graph)
    learners = draw_learners(index, SimulatorConfig(), start_grade=4.0, seed=0, count=60)
    known = np.array([p.known for p in learners])  # (learners, units)
    share = {g: known[:, index.grade == g].mean() for g in (1, 3, 4, 5)}
    assert share[1] > 0.9 and share[5] < 0.05
    assert share[1] > share[3] > share[4] > share[5]
    assert 0.5 < share[3] < 0.95  # gaps just below the learner's grade
    for row in known:
        for i in np.flatnonzero(row):
            assert row[index.prereqs[i]].all(), f"{index.units[i]} known without its prerequisites"
    assert len({round(p.speed, 6) for p in learners}) == 60  # heterogeneous learners


def test_a_learner_does_not_depend_on_the_pool_size(index) -> None:
    small = draw_learners(index, SimulatorConfig(), 2.0, seed=5, count=4)
    large = draw_learners(index, SimulatorConfig(), 2.0, seed=5, count=12)
    assert small[3].theta == large[3].theta
    assert np.array_equal(small[3].known, large[3].known)
    other = draw_learners(index, SimulatorConfig(), 2.0, seed=6, count=4)
    assert small[3].theta != other[3].theta
