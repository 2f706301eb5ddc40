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
    assert near.status == "at_risk" and "only" in near.explanation
    # on track at the planned pace, which a learner with no answer has not shown yet
    assert far.status == "not_started" and far.explanation.startswith("no answer yet; at the planned 45 minutes")
    learner.attempt("A-p1", False, 0.0)
    started = goal_status(learner.ctx(goal=Goal(("C",), date=60 * DAY)))
    assert started.status == "on_track" and started.explanation.startswith("needs about")


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
