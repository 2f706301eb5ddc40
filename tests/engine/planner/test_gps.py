from __future__ import annotations

from engine.planner.context import Goal
from engine.planner.gps import DAY, goal_status

from .test_planner import master


def test_route_estimate_and_status(learner) -> None:
    status = goal_status(learner.ctx(goal=Goal(("C",))))
    assert status.route == ["A", "B", "C"] and status.status == "no_date"
    assert status.estimated_activities > 0 and status.estimated_minutes > status.estimated_activities
    far = goal_status(learner.ctx(goal=Goal(("C",), date=60 * DAY)))
    near = goal_status(learner.ctx(goal=Goal(("C",), date=0.01 * DAY)))
    assert far.status == "on_track" and near.status == "at_risk"
    assert "only" in near.explanation


def test_estimate_shrinks_as_the_learner_advances(learner) -> None:
    before = goal_status(learner.ctx(goal=Goal(("C",))))
    master(learner, "A")
    after = goal_status(learner.ctx(goal=Goal(("C",))))
    assert after.route == ["B", "C"] and after.estimated_minutes < before.estimated_minutes
    master(learner, "B")
    master(learner, "C")
    assert goal_status(learner.ctx(goal=Goal(("C",)))).status == "reached"


def test_no_goal(learner) -> None:
    assert goal_status(learner.ctx()).status == "no_goal"
