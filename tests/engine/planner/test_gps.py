from __future__ import annotations

from dataclasses import replace

import pytest

from engine.planner.context import Goal
from engine.planner.gps import DAY, goal_status

from .test_planner import master


def test_route_estimate_and_status(learner) -> None:
    status = goal_status(learner.ctx(goal=Goal(("C",))))
    assert status.route == ["A", "B", "C"] and status.status == "no_date"
    assert status.estimated_activities > 0 and status.estimated_minutes > status.estimated_activities
    far = goal_status(learner.ctx(goal=Goal(("C",), date=60 * DAY)))
    near = goal_status(learner.ctx(goal=Goal(("C",), date=0.01 * DAY)))
    assert near.status == "at_risk" and "only" in near.explanation
    # on track at the planned pace, which a learner with no answer has not shown yet
    assert far.status == "not_started" and far.explanation.startswith("no practice yet; at the planned 45 minutes")
    learner.attempt("A-p1", False, 0.0)
    started = goal_status(learner.ctx(goal=Goal(("C",), date=60 * DAY)))
    assert started.status == "on_track" and started.explanation.startswith("needs about")


def test_the_route_costs_each_standard_once_times_the_route_overhead(learner) -> None:
    """Each standard left costs ``activities_per_standard`` times how far it is from mastery (a
    likely-known one, a check); the route, that sum times ``route_overhead``."""
    ctx = learner.ctx(goal=Goal(("C",)))
    cfg = learner.config
    once = sum(
        1.0
        if ctx.mastery.get(u, 0.0) >= cfg.likely_known
        else cfg.activities_per_standard * max(0.25, 1.0 - ctx.mastery.get(u, 0.0) / cfg.mastery_threshold)
        for u in ("A", "B", "C")
    )
    status = goal_status(ctx)
    assert status.route == ["A", "B", "C"] and status.estimated_activities == round(once * cfg.route_overhead, 1)
    learner.config = cfg.model_copy(update={"route_overhead": 1.0})
    plain = goal_status(learner.ctx(goal=Goal(("C",))))
    assert plain.estimated_activities == round(once, 1)
    assert abs(status.estimated_minutes - cfg.route_overhead * plain.estimated_minutes) < 0.2


def test_a_goal_of_goal_route_counts_its_own_overhead_and_range(learner) -> None:
    plain = goal_status(learner.ctx(goal=Goal(("C",))))
    learner.config = learner.config.model_copy(update={"goal_route": {"C": (1.5, 0.5, 2.0)}})
    own = goal_status(learner.ctx(goal=Goal(("C",))))
    assert own.route_overhead == 1.5 and plain.route_overhead == learner.config.route_overhead
    assert own.estimated_activities == pytest.approx(plain.estimated_activities * 1.5 / plain.route_overhead, abs=0.1)
    assert own.estimated_days_range == pytest.approx((own.estimated_days * 0.5, own.estimated_days * 2.0), abs=0.02)
    # another goal (here C and D) counts route_overhead
    assert goal_status(learner.ctx(goal=Goal(("C", "D")))).route_overhead == learner.config.route_overhead


def test_estimate_shrinks_as_the_learner_advances(learner) -> None:
    before = goal_status(learner.ctx(goal=Goal(("C",))))
    master(learner, "A")
    after = goal_status(learner.ctx(goal=Goal(("C",))))
    assert after.route == ["B", "C"] and after.estimated_minutes < before.estimated_minutes
    master(learner, "B")
    master(learner, "C")
    reached = goal_status(learner.ctx(goal=Goal(("C",))))
    assert reached.status == "reached" and reached.estimated_days_range is None


def test_a_goal_standard_mastered_needs_none_of_its_prerequisites(learner) -> None:
    """The route is what the goal still needs: once C is mastered (here with B never mastered,
    and A reopened after a slip would be the same), its prerequisites are off the route, and the
    goal of C alone is reached."""
    master(learner, "C")
    assert not learner.progress.get("B").mastered
    assert goal_status(learner.ctx(goal=Goal(("C",)))).status == "reached"
    both = goal_status(learner.ctx(goal=Goal(("C", "D"))))
    assert both.route == ["D"] and both.status == "no_date" and both.mastered_on_goal == 1


def test_no_goal(learner) -> None:
    assert goal_status(learner.ctx()).status == "no_goal"


def test_a_goal_no_item_practises_is_blocked_not_on_its_way(config) -> None:
    """With no item on C (a tenant's partial catalog), a goal of C cannot be reached: the GPS
    says so and names it, instead of an estimate of minutes that no work can spend."""
    from engine.catalog import Catalog
    from engine.planner.index import PlannerIndex

    from .conftest import Learner, world

    graph, catalog = world()
    learner = Learner(PlannerIndex.build(graph, Catalog([i for i in catalog if "C" not in i.standards])), config)
    status = goal_status(learner.ctx(goal=Goal(("C",), date=60 * DAY)))
    assert status.status == "blocked" and status.route == ["A", "B", "C"]
    assert "practises C:" in status.explanation
    one_left = goal_status(learner.ctx(goal=Goal(("A",))))
    assert one_left.explanation.startswith("1 standard to go,")

    # only a lesson and a reading on C: taught, but nothing can show it learned
    lessons = [i for i in catalog if "C" not in i.standards or not i.modality.answers]
    taught = Learner(PlannerIndex.build(graph, Catalog(lessons)), config)
    status = goal_status(taught.ctx(goal=Goal(("C",), date=60 * DAY)))
    assert status.status == "blocked" and status.route == ["A", "B", "C"]
    assert "sends an answer practises C (lessons" in status.explanation


def _work(learner, days: list[float]) -> None:
    """One answer on each of ``days`` (in days since the epoch), alternating right and wrong on A's
    practice so nothing gets mastered and the route stays whole."""
    for k, when in enumerate(days):
        learner.attempt("A-p1", k % 2 == 0, when * DAY)


def test_the_own_pace_is_measured_after_a_week_over_the_last_four_weeks(learner) -> None:
    _work(learner, [0.5, 1.5, 2.5])
    assert learner.progress.pace(5.9 * DAY) is None  # days 0-5: too early to tell
    assert learner.progress.pace(6.0 * DAY) == (3 / 7, 7)  # days 0-6, the first and today included
    _work(learner, [10.5] * 4)
    assert learner.progress.pace(27.5 * DAY) == (7 / 28, 28)
    assert learner.progress.pace(30.2 * DAY) == (4 / 28, 28)  # days 0-2 left the window
    assert learner.progress.pace(60 * DAY) == (0.0, 28)
    _work(learner, [40.5 + d for d in range(40)])  # the days kept stay within the window
    assert len(learner.progress.days) <= 28 and min(learner.progress.days) > 79 - 28


def test_on_track_or_not_is_judged_at_the_learner_s_own_pace(learner) -> None:
    """The planned pace says the route to C takes a few days. A learner who answers once every
    four days is not on track for a date that the planned pace makes: the GPS says so, with the
    numbers, as one who keeps the pace is."""
    goal = Goal(("C",), date=40 * DAY)
    planned = goal_status(learner.ctx(now=20 * DAY, goal=goal))
    assert planned.status == "not_started" and planned.own_pace is None and planned.estimated_days < 20
    _work(learner, [0.5, 4.5, 8.5, 12.5, 16.5])
    slow = goal_status(learner.ctx(now=20 * DAY, goal=goal))
    assert slow.own_pace is not None and slow.own_pace.activities_per_day == round(5 / 21, 2)
    assert slow.own_pace.estimated_days > 20 > slow.estimated_days
    assert slow.status == "at_risk" and "at the learner's pace (0.2 activities a day over the last 21 days)" in (
        slow.explanation
    )
    _work(learner, [17 + k / 10 for k in range(30)])  # a catch-up: 30 answers in three days
    fast = goal_status(learner.ctx(now=20 * DAY, goal=goal))
    assert fast.status == "on_track" and fast.own_pace.estimated_days <= 20 and "learner's pace" in fast.explanation
    no_goal = goal_status(learner.ctx(now=20 * DAY))  # the pace is the learner's, goal or not
    assert no_goal.status == "no_goal"
    assert no_goal.own_pace == replace(fast.own_pace, estimated_days=None, estimated_days_range=None)
    # with each estimate, the days within which half of the learners arrive
    low, high = learner.config.route_spread
    for days, span in (
        (fast.estimated_days, fast.estimated_days_range),
        (fast.own_pace.estimated_days, fast.own_pace.estimated_days_range),
    ):
        assert (
            span is not None
            and span[0] == pytest.approx(days * low, abs=0.02)
            and span[1] == pytest.approx(days * high, abs=0.02)
        )
    assert no_goal.estimated_days_range is None
    idle = goal_status(learner.ctx(now=60 * DAY, goal=Goal(("C",), date=90 * DAY)))
    assert idle.status == "at_risk" and idle.own_pace.estimated_days is None
    assert idle.explanation.startswith("no activity in the last 28 days")
