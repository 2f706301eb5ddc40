"""The simulated environment: determinism, common random numbers, the clock, truth accessors."""

from __future__ import annotations

import numpy as np
import pytest

from engine.simulation import Environment, SimulatedEnvironment, SimulationError, SimulatorConfig, draw_learners
from engine.simulation.learners import MINUTES_PER_DAY

from .conftest import FROZEN, profile

ITEMS = ["A-practice", "B-practice", "B-tutoring", "C-practice", "D-practice", "P-lesson", "D-check"] * 6


def outcomes(env: SimulatedEnvironment, learner: int, items=ITEMS) -> list[tuple[bool, float]]:
    env.reset(learner)
    return [(o.correct, o.time) for o in (env.step(i) for i in items)]


def pool_env(graph, catalog, index, seed=0, learners=4, config=None) -> SimulatedEnvironment:
    config = config or SimulatorConfig()
    profiles = draw_learners(index, config, 2.0, seed=seed, count=learners)
    return SimulatedEnvironment(graph, catalog, ["D", "P"], profiles, seed=seed, config=config, index=index)


def test_it_implements_the_protocol(graph, catalog, index) -> None:
    assert isinstance(pool_env(graph, catalog, index), Environment)


def test_same_seed_same_items_same_outcomes(graph, catalog, index) -> None:
    first = pool_env(graph, catalog, index, seed=7)
    second = pool_env(graph, catalog, index, seed=7)
    assert outcomes(first, 2) == outcomes(second, 2)
    # resetting replays the learner from the start, whatever happened before
    outcomes(first, 1)
    assert outcomes(first, 2) == outcomes(second, 2)
    assert outcomes(pool_env(graph, catalog, index, seed=8), 2) != outcomes(second, 2)


def test_step_t_draws_do_not_depend_on_earlier_items(graph, catalog, index) -> None:
    """Common random numbers: after different items (one unit or two), the same item at the same
    step and in the same true state gives the same answer."""
    learner = profile(index, {"A", "B", "C"})
    env = SimulatedEnvironment(graph, catalog, ["D"], [learner], seed=1, config=FROZEN, index=index)

    def answers_on_d(other: str) -> list[bool]:
        env.reset(0)
        found = []
        for _ in range(40):
            env.step(other)
            found.append(env.step("D-practice").correct)
        return found

    assert answers_on_d("A-practice") == answers_on_d("P-lesson")


def test_teacher_led_activities_send_no_answer_and_draw_as_answered_ones_do(graph, catalog, index) -> None:
    """A small group or tutoring sends no answer (``Modality.answers``), configurable per
    modality; whether it answers changes no draw: every other outcome is the same."""
    answering = SimulatorConfig().model_copy(
        update={
            "modalities": {k: v.model_copy(update={"answers": True}) for k, v in SimulatorConfig().modalities.items()}
        }
    )
    silent, answered = (
        outcomes(pool_env(graph, catalog, index), 1),
        outcomes(pool_env(graph, catalog, index, config=answering), 1),
    )
    for item, (c_silent, t_silent), (c_answered, t_answered) in zip(ITEMS, silent, answered, strict=True):
        assert t_silent == t_answered
        if item in ("B-tutoring", "P-lesson"):
            assert c_silent is None and isinstance(c_answered, bool)
        else:
            assert c_silent == c_answered and isinstance(c_silent, bool)


def test_reset_gives_every_policy_the_same_learner(graph, catalog, index) -> None:
    env = pool_env(graph, catalog, index, learners=3)
    env.reset(1)
    start = env.known_units()
    for item in ITEMS:
        env.step(item)
    env.reset(1)
    assert np.array_equal(env.known_units(), start)


def test_clock_fills_sessions_then_skips_nights_and_weekends(graph, catalog, index) -> None:
    config = SimulatorConfig(session_minutes=45, school_days_per_week=5)
    env = pool_env(graph, catalog, index, config=config)
    env.reset(0)
    ends = [env.step("P-lesson").time for _ in range(12)]  # 20 min x 1.2 (small-group time factor) = 24
    day = MINUTES_PER_DAY
    assert ends[0] == pytest.approx(24)
    assert ends[1] == pytest.approx(day + 24)  # 48 > 45: the second lesson goes to the next day
    assert ends[4] == pytest.approx(4 * day + 24)
    assert ends[5] == pytest.approx(7 * day + 24)  # after five school days, the weekend
    assert env.step("A-practice").minutes == 10.0


def test_a_learner_who_works_some_days_skips_the_others_whole(graph, catalog, index) -> None:
    """With an attendance share, a day off is skipped whole (the weekends still fall where the school
    week puts them), drawn from a stream of its own: a learner who works every day keeps the answers
    and the clock of a pool without attendance."""
    config = SimulatorConfig(session_minutes=45, school_days_per_week=5)
    profiles = draw_learners(index, config, 2.0, seed=0, count=2)

    def run(attendance):
        env = SimulatedEnvironment(graph, catalog, ["D", "P"], profiles, seed=0, config=config, index=index,
                                   attendance=attendance)  # fmt: skip
        env.reset(0)
        return [env.step("P-lesson") for _ in range(400)]  # one lesson a day worked

    every, some, full = run(None), run([0.4, 1.0]), run([1.0, 1.0])
    assert [(o.correct, o.time) for o in full] == [(o.correct, o.time) for o in every]
    worked = {int(o.time // MINUTES_PER_DAY) for o in some}
    school_days = {d for d in range(max(worked) + 1) if d % 7 < 5}
    assert worked <= school_days and 0.33 < len(worked) / len(school_days) < 0.47
    with pytest.raises(SimulationError, match="attendance"):
        run([0.0, 1.0])


def test_goal_score_and_truth_accessors(graph, catalog, index) -> None:
    learner = profile(index, {"A", "B", "P.a"})
    env = SimulatedEnvironment(graph, catalog, ["B", "P", "D"], [learner], seed=0, config=FROZEN, index=index)
    env.reset(0)
    assert env.goal_score() == pytest.approx(1 / 3)  # B only: P needs both its parts
    assert env.truth_known("B") and not env.truth_known("P")
    assert env.violates("D-practice")  # C is not known
    assert not env.violates("C-practice")  # A is known
    assert not env.violates("P-lesson")  # P.b's prerequisite P.a is part of the item itself
    assert not env.violates("P.b-practice")
    assert env.violates("P.a-practice") is False


def test_bad_inputs_name_what_is_wrong(graph, catalog, index) -> None:
    env = pool_env(graph, catalog, index)
    with pytest.raises(SimulationError, match="reset"):
        env.step("A-practice")
    env.reset(0)
    with pytest.raises(SimulationError, match="unknown item 'nope'"):
        env.step("nope")
    with pytest.raises(SimulationError, match="outside the pool"):
        env.reset(99)
    with pytest.raises(SimulationError, match="goal is empty"):
        SimulatedEnvironment(graph, catalog, [], [], seed=0)
