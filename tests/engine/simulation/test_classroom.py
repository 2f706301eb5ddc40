"""A class taught from class plans: learners side by side, timed activities, the served rotation,
the plain baselines, and what the run counts from the truth."""

from __future__ import annotations

import numpy as np
import pytest

from configs import PlannerConfig
from engine.simulation import SimulatedEnvironment, SimulationError, SimulatorConfig, draw_learners
from engine.simulation.classroom import (
    Assignment,
    ClassCore,
    PlaylistClass,
    RotationClass,
    WholeClass,
    run_classes,
    school_day_start,
    summarize_classes,
)
from engine.simulation.learners import MINUTES_PER_DAY
from models.bkt import GraphBKT

from .conftest import FROZEN, profile

#: learning certain when ready, no forgetting, no slips or guesses
SURE = SimulatorConfig(
    p_learn=1.0,
    max_p_learn=1.0,
    slip_range=(0.0, 0.0),
    guess_range=(0.0, 0.0),
    half_life_days=1e9,
    prior_half_life_days=1e9,
    max_half_life_days=1e9,
)


def class_env(graph, catalog, index, learners=6, seed=0, config=None) -> SimulatedEnvironment:
    config = config or SimulatorConfig()
    profiles = draw_learners(index, config, 2.0, seed=seed, count=learners)
    return SimulatedEnvironment(graph, catalog, ["D", "P"], profiles, seed=seed, config=config, index=index)


# ---------------------------------------------------------------------------- the environment
def test_select_keeps_each_learner_where_they_are(graph, catalog, index) -> None:
    """Taught side by side, each learner's outcomes are those of the learner taught alone."""
    items = ["A-practice", "B-practice", "C-practice", "D-practice"] * 3
    alone = class_env(graph, catalog, index)
    expected = {}
    for k in (0, 1):
        alone.reset(k)
        expected[k] = [alone.step(i).correct for i in items]
    side = class_env(graph, catalog, index)
    got: dict[int, list[bool]] = {0: [], 1: []}
    for item in items:
        for k in (0, 1):
            side.select(k)
            got[k].append(side.step(item).correct)
    assert got == expected
    side.select(0)
    assert side.steps == len(items)
    side.reset(0)  # reset starts them again
    assert side.steps == 0


def test_a_timed_step_starts_when_the_timetable_says_and_lasts_its_minutes(graph, catalog, index) -> None:
    env = class_env(graph, catalog, index)
    env.reset(0)
    first = env.step("A-practice", at=2 * MINUTES_PER_DAY + 20, minutes=5)
    assert first.minutes == 5 and first.time == 2 * MINUTES_PER_DAY + 25
    # never before the learner's clock
    assert env.step("B-practice", at=0.0, minutes=10).time == 2 * MINUTES_PER_DAY + 35


@pytest.mark.parametrize(("minutes", "learns"), [(0.0, False), (10.0, True), (30.0, True)])
def test_learning_scales_with_the_minutes_given_to_an_item(graph, catalog, index, minutes, learns) -> None:
    """No time on an item teaches nothing; its full time (or more) teaches an activity's worth."""
    env = SimulatedEnvironment(graph, catalog, ["B"], [profile(index, {"A"})], seed=0, config=SURE, index=index)
    env.reset(0)
    env.step("B-practice", at=0.0, minutes=minutes)
    assert env.truth_known("B") is learns


def test_a_part_of_an_item_teaches_that_share_of_it(graph, catalog, index) -> None:
    """Over many learners, 5 of an item's 10 minutes teach about half as often as all 10."""
    config = SimulatorConfig(p_learn=0.6, half_life_days=1e9, prior_half_life_days=1e9, speed_sigma=0.0)
    learners = [profile(index, {"A"}, number=k) for k in range(400)]
    env = SimulatedEnvironment(graph, catalog, ["B"], learners, seed=3, config=config, index=index)

    def share_learned(minutes: float) -> float:
        learned = 0
        for k in range(len(learners)):
            env.reset(k)
            env.step("B-practice", at=0.0, minutes=minutes)
            learned += env.truth_known("B")
        return learned / len(learners)

    half, whole = share_learned(5.0), share_learned(10.0)
    assert 0.5 <= whole <= 0.7
    assert 0.2 <= half <= 0.4


def test_knows_item_reads_the_truth_of_every_unit(graph, catalog, index) -> None:
    env = SimulatedEnvironment(graph, catalog, ["D"], [profile(index, {"A", "B", "P.a"})], seed=0, config=FROZEN)
    env.reset(0)
    assert env.knows_item("B-practice") and not env.knows_item("C-practice")
    assert not env.knows_item("P-lesson")  # P's part P.b is not known


# ---------------------------------------------------------------------------- the class runner
def test_school_days_skip_weekends() -> None:
    assert [school_day_start(d) / MINUTES_PER_DAY for d in range(7)] == [0, 1, 2, 3, 4, 7, 8]


class Scripted:
    """A class planner that gives everyone the same timetable (to test the runner)."""

    name = "scripted"

    def __init__(self, day: list[Assignment]):
        self.day, self.calls, self.seen = day, [], []

    def start(self, graph, catalog, goal, learners) -> None:
        self.learners = list(learners)

    def plan(self, start, done):
        self.calls.append((start, done))
        return dict.fromkeys(self.learners, self.day)

    def observe(self, learner, item_id, outcome) -> None:
        self.seen.append((learner, item_id, outcome.time))


def test_the_runner_follows_the_timetable_and_counts_from_the_truth(graph, catalog, index) -> None:
    day = [
        Assignment(0.0, 20.0, "A-practice", "learn", "online_practice"),
        Assignment(20.0, 20.0, "P-lesson", "learn", "small_group"),
        Assignment(40.0, 10.0, "D-check", "test_out", "assessment"),
        Assignment(50.0, 10.0, "E-practice", "practice", "online_practice"),
    ]
    env = SimulatedEnvironment(
        graph, catalog, ["D"], [profile(index, {"A"}), profile(index, set(), number=1)], seed=0, config=FROZEN
    )
    planners: list[Scripted] = []

    def factory() -> Scripted:
        planners.append(Scripted(day))
        return planners[-1]

    run = run_classes("scripted", factory, env, [[0, 1]], 2, planner_graph=graph, catalog=catalog, goal=["D"])
    planner = planners[0]
    assert planner.calls == [(0.0, 0.0), (MINUTES_PER_DAY, 0.0)]  # once a day
    day_two = MINUTES_PER_DAY
    assert [t for k, _, t in planner.seen if k == 0] == [
        20,
        40,
        50,
        60,
        day_two + 20,
        day_two + 40,
        day_two + 50,
        day_two + 60,
    ]
    assert run.activities.tolist() == [8, 8] and run.minutes.tolist() == [120, 120]
    assert run.checks.tolist() == [2, 2]
    # learner 0 knows A (known already twice); P needs B, which neither knows (a violation each day)
    assert run.known_already.tolist() == [2, 0]
    assert run.violations.tolist() == [4, 4]  # P-lesson (B unknown) and D-check (B, C unknown), each day
    assert run.teacher_minutes.tolist() == [40, 40]
    assert run.kinds["test_out"] == [4, 0, 4]


def test_planning_again_each_block_plans_what_is_left(graph, catalog, index) -> None:
    class Blocks(Scripted):
        """Three 20-minute blocks from whenever it is asked (start minutes from then)."""

        def plan(self, now, minutes):
            self.calls.append((now, minutes))
            return dict.fromkeys(self.learners, self.day)

    env = SimulatedEnvironment(graph, catalog, ["D"], [profile(index)], seed=0, config=FROZEN)
    made: list[Scripted] = []

    def factory() -> Scripted:
        made.append(Scripted([Assignment(20.0 * b, 20.0, "A-practice", "learn", "online_practice") for b in range(3)]))
        return made[-1]

    run = run_classes(
        "blocks", factory, env, [[0]], 1, planner_graph=graph, catalog=catalog, goal=["D"], replan_every=20.0
    )
    assert made[0].calls == [(0.0, 0.0), (0.0, 20.0), (0.0, 40.0)]
    # only the next block of each plan is done, at its time of the session
    assert [t for _, _, t in made[0].seen] == [20.0, 40.0, 60.0]
    assert run.activities.tolist() == [3]


def test_an_unknown_item_is_named(graph, catalog, index) -> None:
    env = SimulatedEnvironment(graph, catalog, ["D"], [profile(index)], seed=0, config=FROZEN)
    bad = [Assignment(0.0, 10.0, "nope", "learn", "online_practice")]
    with pytest.raises(SimulationError, match="'nope'"):
        run_classes("bad", lambda: Scripted(bad), env, [[0]], 1, planner_graph=graph, catalog=catalog, goal=["D"])


# ---------------------------------------------------------------------------- the class planners
@pytest.fixture
def core() -> ClassCore:
    return ClassCore(GraphBKT.from_graph, PlannerConfig())


def run_all(graph, catalog, index, core, days=3):
    env = class_env(graph, catalog, index, learners=6, seed=1)
    arms = {
        "rotation": lambda: RotationClass(core, "2"),
        "playlists": lambda: PlaylistClass(core, "2"),
        "whole-class": lambda: WholeClass(),
    }
    runs = {
        name: run_classes(
            name, f, env, [[0, 1, 2], [3, 4, 5]], days, planner_graph=graph, catalog=catalog, goal=["D", "P"]
        )
        for name, f in arms.items()
    }
    return runs


def test_the_served_rotation_teaches_a_class(graph, catalog, index, core) -> None:
    runs = run_all(graph, catalog, index, core)
    rotation = runs["rotation"]
    # every learner is busy the whole session, every day
    assert rotation.minutes.tolist() == [180.0] * 6
    assert (rotation.end >= 0).all() and not np.isnan(rotation.start).any()
    assert len(rotation.plan_seconds) == 2 * 3
    # the rotation is what plan_rotation gives: teacher-led time only in small groups
    playlists = runs["playlists"]
    assert playlists.teacher_minutes.sum() == 0
    assert set(playlists.kinds) <= {"learn", "test_out", "remediation", "review", "reverify", "recheck", "explore"}
    summary = summarize_classes(runs, seed=0, baseline="rotation")
    assert set(summary) == {"rotation", "playlists", "whole-class"}
    assert "gain_vs_baseline" in summary["playlists"] and "gain_vs_baseline" not in summary["rotation"]
    assert 0.0 <= summary["rotation"]["known_already_rate"] <= 1.0


def test_the_served_rotation_planned_again_each_block(graph, catalog, index, core) -> None:
    """Planned again at each block (``blocks_done``), every block is still filled, and what a
    learner does after the first block follows their answers in it."""
    env = class_env(graph, catalog, index, learners=6, seed=1)

    def run(replan):
        return run_classes(
            "rotation",
            lambda: RotationClass(core, "2"),
            env,
            [[0, 1, 2], [3, 4, 5]],
            2,
            planner_graph=graph,
            catalog=catalog,
            goal=["D", "P"],
            replan_every=replan,
        )

    daily, each_block = run(None), run(20.0)
    assert len(each_block.plan_seconds) == 2 * 2 * 3 and len(daily.plan_seconds) == 2 * 2
    assert each_block.minutes.tolist() == [120.0] * 6
    assert each_block.kinds != daily.kinds


def test_the_same_plans_and_learners_give_the_same_run(graph, catalog, index, core) -> None:
    first = run_all(graph, catalog, index, core, days=2)["rotation"]
    second = run_all(graph, catalog, index, core, days=2)["rotation"]
    assert first.end.tolist() == second.end.tolist() and first.kinds == second.kinds


def test_the_whole_class_moves_on_when_most_answers_are_right(graph, catalog, index) -> None:
    everyone_knows = [profile(index, {"A", "B", "C", "D"}, slip=0.0, number=k) for k in range(3)]
    env = SimulatedEnvironment(graph, catalog, ["D"], everyone_knows, seed=0, config=FROZEN)
    made: list[WholeClass] = []

    def factory() -> WholeClass:
        made.append(WholeClass())
        return made[-1]

    run_classes("whole", factory, env, [[0, 1, 2]], 3, planner_graph=graph, catalog=catalog, goal=["D"])
    # the goal's route in learning order (D's own; a goal teaches its standards only)
    assert made[0].sequence == ["D"]
    nobody_knows = [profile(index, set(), guess=0.0, number=k) for k in range(3)]
    env = SimulatedEnvironment(graph, catalog, ["D", "P"], nobody_knows, seed=0, config=FROZEN)
    run_classes("whole", factory, env, [[0, 1, 2]], 4, planner_graph=graph, catalog=catalog, goal=["D", "P"])
    stuck = made[-1]
    # every answer wrong: it still moves on after max_days (3) days
    assert stuck.position == 1
