"""The GPS view: where the learner is, the route to the goal, time to get there, on track or not."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from configs import PlannerConfig
from engine.catalog import Modality
from engine.planner.context import PlanContext, goal_units
from engine.planner.progress import DAY
from engine.planner.targets import in_place, route_to_goal

__all__ = ["DAY", "GoalStatus", "OwnPace", "daily_pace", "goal_key", "goal_status", "route_factors"]


@dataclass(frozen=True)
class OwnPace:
    """How fast the learner has actually been working: activities per calendar day over the last
    ``days`` days, and the days the rest of the route takes at that pace (None without a goal, or
    when they have done nothing over those days)."""

    activities_per_day: float
    days: int
    estimated_days: float | None
    #: the days within which half of the learners at this pace arrive (``route_spread``)
    estimated_days_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class GoalStatus:
    goal: tuple[str, ...]
    route: list[str]
    mastered_on_goal: int
    goal_units: int
    estimated_activities: float
    estimated_minutes: float
    estimated_days: float
    due: float | None
    status: str  # reached | on_track | not_started | at_risk | no_date | no_goal | blocked
    explanation: str
    #: the learner's own pace, once they have worked ``PACE_MIN_DAYS`` days (None before)
    own_pace: OwnPace | None = None
    #: the route overhead the estimate counted (``[planner] route_overhead``, or the tenant's
    #: measured one: ``serving.calibration``)
    route_overhead: float = 1.0
    #: the days within which half of the learners arrive at the planned pace (``route_spread``);
    #: None when there is no route to estimate
    estimated_days_range: tuple[float, float] | None = None


def daily_pace(cfg: PlannerConfig) -> float:
    """The planned minutes of work per calendar day (the daily minutes over the school week):
    the pace the time to a goal is counted in."""
    return cfg.minutes_per_day * cfg.school_days_per_week / 7.0


def _practice_minutes(ctx: PlanContext, unit: str) -> float:
    items = [i for i in ctx.index.items_for.get(unit, ()) if i.modality is Modality.ONLINE_PRACTICE]
    items = items or list(ctx.index.items_for.get(unit, ()))
    return sum(i.duration_minutes for i in items) / len(items) if items else 10.0


def goal_status(ctx: PlanContext) -> GoalStatus:
    """Route, estimated activities and minutes to the goal, and on-track status for its date.

    The route is what is left to learn (:func:`engine.planner.targets.route_to_goal`: what the
    learner has mastered or is believed to know is not on it). A standard the learner likely
    knows but has not shown yet costs one activity (a mastery check); any other costs
    ``activities_per_standard`` scaled by how far its P(mastered) is from the threshold. That is
    what mastering each standard once costs; the goal is reached when all of them are mastered at
    the same time, and on the way the learner reviews, is re-checked, is sent back to
    prerequisites and sees standards reopened after a slip: the sum is multiplied by
    ``route_overhead`` (measured with the simulator, ``benchmarks/gps_bench.py``; a goal of
    ``goal_route`` counts its own, see :func:`route_factors`). Minutes use the
    mean duration of each standard's practice items; days use the configured daily minutes and
    school week. With each estimate goes a range, the estimate times ``route_spread``: the days
    within which half of the learners arrive.

    The estimate is at the planned pace; once the learner has worked for
    ``PACE_MIN_DAYS`` days, their own pace (activities per calendar day over the last four
    weeks, :meth:`Progress.pace`) gives a second one, and on track or not is judged on it: a
    navigation system times the route at the speed the car goes. A learner who has not practised
    yet (an entry diagnostic is no practice) is ``not_started`` rather than ``on_track``: the
    estimate holds at the planned pace, which nothing shows yet (a learner the estimate already
    puts past the date is ``at_risk`` all the same).
    """
    cfg = ctx.config
    if ctx.goal is None:
        own = _own_pace(ctx, None, cfg.route_spread)
        return GoalStatus((), [], 0, 0, 0.0, 0.0, 0.0, None, "no_goal", "no goal is set", own, cfg.route_overhead)
    units = goal_units(ctx)
    mastered = ctx.progress.mastered
    route = route_to_goal(ctx, in_place(ctx, mastered))
    activities = minutes = 0.0
    for unit in route:
        m = ctx.mastery.get(unit, 0.0)
        if ctx.progress.get(unit).attempts == 0 and m >= cfg.likely_known:
            n = 1.0  # a check confirms it
        else:
            n = cfg.activities_per_standard * max(0.25, (cfg.mastery_threshold - m) / cfg.mastery_threshold)
        activities += n
        minutes += n * _practice_minutes(ctx, unit)
    overhead, spread = route_factors(cfg, ctx.goal.standards)
    activities *= overhead  # the goal is reached when all of it is mastered at once
    minutes *= overhead
    per_day = daily_pace(cfg)
    days = minutes / per_day if per_day > 0 else float("inf")
    own = _own_pace(ctx, activities, spread)
    done = sum(1 for u in units if u in mastered)
    goal = ctx.goal.standards
    # a goal standard nothing in the catalog practises cannot be reached, whatever the pace (the
    # route passes over other standards without items: see ``engine.planner.index.gating``)
    blocked = [u for u in route if u not in ctx.index.practised]
    if not route:
        status, text = "reached", "every goal standard is mastered"
    elif blocked:
        status, text = (
            "blocked",
            f"{ctx.index.unpractised(blocked)}: the goal cannot be reached until practice or a check for "
            f"{'it' if len(blocked) == 1 else 'them'} is added",
        )
    elif ctx.goal.date is None:
        left_to_learn = f"{len(route)} standard{'s' if len(route) != 1 else ''} to go"
        status, text = "no_date", f"{left_to_learn}, about {minutes:.0f} minutes of work"
    else:
        left = (ctx.goal.date - ctx.now) / DAY
        if own is not None:
            status, text = _on_own_pace(own, left)
        elif days <= left and not ctx.progress.activities:
            status, text = (
                "not_started",
                f"no practice yet; at the planned {cfg.minutes_per_day:.0f} minutes a school day it needs about "
                f"{days:.1f} days of {left:.1f} left",
            )
        elif days <= left:
            status, text = "on_track", f"needs about {days:.1f} days of {left:.1f} left"
        else:
            status, text = "at_risk", f"needs about {days:.1f} days but only {max(left, 0):.1f} are left"
    return GoalStatus(
        goal,
        route,
        done,
        len(units),
        round(activities, 1),
        round(minutes, 1),
        round(days, 2),
        ctx.goal.date,
        status,
        text,
        own,
        overhead,
        _spread(days, spread) if route else None,
    )


def goal_key(standards: Iterable[str]) -> str:
    """How ``[planner] goal_route`` names a goal: its codes, sorted, joined by "+"."""
    return "+".join(sorted(standards))


def route_factors(cfg: PlannerConfig, goal: Iterable[str]) -> tuple[float, tuple[float, float]]:
    """The route overhead and spread an estimate for ``goal`` counts: the goal's own
    (``goal_route``), else ``route_overhead`` and ``route_spread``."""
    own = cfg.goal_route.get(goal_key(goal))
    return (cfg.route_overhead, cfg.route_spread) if own is None else (own[0], (own[1], own[2]))


def _spread(days: float, spread: tuple[float, float]) -> tuple[float, float]:
    """The days within which half of the learners arrive, for an estimate of ``days``."""
    low, high = spread
    return round(days * low, 2), round(days * high, 2)


def _own_pace(ctx: PlanContext, activities: float | None, spread: tuple[float, float]) -> OwnPace | None:
    """The learner's own pace once they have worked ``PACE_MIN_DAYS`` days, with the days
    ``activities`` take at it (None: no goal)."""
    measured = ctx.progress.pace(ctx.now)
    if measured is None:
        return None
    rate, over = measured
    if activities is None or rate <= 0:
        return OwnPace(round(rate, 2), over, None)
    days = activities / rate
    return OwnPace(round(rate, 2), over, round(days, 2), _spread(days, spread) if activities > 0 else None)


def _on_own_pace(own: OwnPace, left: float) -> tuple[str, str]:
    """On track or not for a goal date ``left`` days away, at the learner's own pace."""
    pace = f"{own.activities_per_day:.1f} activities a day over the last {own.days} days"
    if own.estimated_days is None:
        return "at_risk", f"no activity in the last {own.days} days; {max(left, 0):.1f} days are left"
    if own.estimated_days <= left:
        return (
            "on_track",
            f"needs about {own.estimated_days:.1f} days of {left:.1f} left at the learner's pace ({pace})",
        )
    return (
        "at_risk",
        f"at the learner's pace ({pace}) it needs about {own.estimated_days:.1f} days but only "
        f"{max(left, 0):.1f} are left",
    )
