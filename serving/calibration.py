"""The GPS's route overhead, measured in a deployment from its own nightly plans.

The GPS counts the activities left to a goal as what mastering each standard of the route once
costs, times ``[planner] route_overhead``: a goal is reached when all its standards are mastered
at once, and on the way the learner reviews, is re-checked and sees standards reopened. The
configured value is measured with the simulator (``docs/benchmarks/gps.md``, 1.6 to 3.4 over five
goals); a school's learners, catalog and goals have their own. ``zpd plan-batch`` measures it:

- the first night a student is planned with a goal not reached yet, their school's record
  (the store setting ``gps-route@TENANT@SCHOOL``, written by that school's task alone) keeps an
  *anchor*: the goal, the day, the activities done so far and what the route then cost to master
  once (the estimate over the overhead it counted). The record is among the student's
  references, so erasing them erases their anchor (:func:`forget_anchors`);
- each night after, the anchor notes the activities done by then (``seen``), and every
  ``SNAPSHOT_EVERY`` it keeps a new estimate of the route left (the GPS estimates every night,
  and the overhead grows toward the goal: the last standards cost more over their cost once);
- the night they are planned with that goal reached, the activities done since each estimate,
  over what the route then cost once, are a *sample* (numbers, a day and the goal, naming
  nobody), and the anchor goes. A goal changed in between drops the anchor. An anchor not seen
  for ``STALE_DAYS`` (the student left the school, or their goal was taken away) becomes a sample
  that says only "more than this": it never arrived while it was watched;
- at the end of a run, the tenant's route overhead is the median of its schools' samples and
  their quartiles over it its spread (the GPS's range) (``gps@TENANT``, :func:`measure`), once
  there are ``MIN_SAMPLES`` arrivals. The students still on their way count as well, as samples
  of "more than what they have done so far": arrivals alone are the fast students early in a
  year (the GPS benchmark's students replayed so, the median of the arrivals measured a quarter
  of what counting every student does on night 60), so the estimate is Kaplan-Meier's, the
  standard one for times to an event that part of a group has not reached yet. A goal with
  ``MIN_SAMPLES`` arrivals of its own is measured on its own too (goals differ). Its GPS counts
  those from then on (``LearnerService.core``, as ``[planner] route_overhead``, ``route_spread``
  and ``goal_route``); until then, the configured ones. Samples older than ``SAMPLE_DAYS``
  describe another year, and go.

Re-running a night adds nothing: the anchors it would set are there, the samples it would take
are taken.
"""

from __future__ import annotations

import collections
import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from configs import PlannerConfig
from engine.planner.gps import goal_key
from serving.stores.base import LearnerStore

if TYPE_CHECKING:
    from engine.planner.gps import GoalStatus

__all__ = [
    "MIN_SAMPLES",
    "SAMPLE_DAYS",
    "SAMPLES_KEPT",
    "STALE_DAYS",
    "forget_anchors",
    "measure",
    "observe",
    "planner_settings",
    "school_setting",
    "survival_quantiles",
    "tenant_setting",
]

#: arrivals a tenant's schools must have seen before their measure replaces the configured overhead
MIN_SAMPLES = 20
#: the latest samples a school keeps
SAMPLES_KEPT = 2000
#: the days a sample counts (the older ones describe another year)
SAMPLE_DAYS = 365
#: the days an anchor stays while its student is not planned with its goal (then it is a sample
#: of "more than what they did", see the module's text)
STALE_DAYS = 60
#: how often an anchor takes a new estimate of the route left (the overhead grows toward the goal:
#: the last standards cost more over their cost once, and the GPS estimates every night)
SNAPSHOT_EVERY = dt.timedelta(days=14)
#: the estimates an anchor keeps at most (a student stuck for months would otherwise weigh in with
#: one every SNAPSHOT_EVERY)
SNAPSHOTS = 4
#: what a goal's status is when no route is left to estimate
_NO_ROUTE = ("reached", "no_goal", "blocked")


def school_setting(tenant: str, school: str) -> str:
    return f"gps-route@{tenant}@{school}"


def tenant_setting(tenant: str) -> str:
    return f"gps@{tenant}"


def _record(store: LearnerStore, name: str) -> dict[str, Any]:
    found = store.get_setting(name)
    return orjson.loads(found[1]) if found else {"anchors": {}, "samples": []}


def observe(
    store: LearnerStore, tenant: str, school: str, date: str, seen: Mapping[str, tuple[GoalStatus, int]]
) -> dict[str, int]:
    """Record one night of a school: ``seen`` maps each student planned to their GPS status and
    the activities they have done. Returns the anchors set and the samples taken."""
    name = school_setting(tenant, school)
    record = _record(store, name)
    anchors: dict[str, dict[str, Any]] = record["anchors"]
    samples: list[dict[str, Any]] = record["samples"]
    anchored: list[str] = []
    taken = 0
    changed = False
    for learner, (status, activities) in seen.items():
        goal = list(status.goal)
        anchor = anchors.get(learner)
        if anchor is not None and anchor["goal"] != goal:  # another goal: the old one's route is moot
            del anchors[learner]
            anchor = None
            changed = True
        on_route = status.status not in _NO_ROUTE and status.estimated_activities > 0
        once = round(status.estimated_activities / status.route_overhead, 3) if on_route else 0.0
        if status.status == "reached":
            if anchor is not None:
                overheads = [_overhead(s, activities) for s in _snapshots(anchor) if date > s[0] and activities > s[1]]
                if overheads:
                    samples.append({"date": date, "overheads": overheads, "goal": goal_key(anchor["goal"])})
                    taken += 1
                del anchors[learner]
                changed = True
        elif anchor is None and on_route:
            anchors[learner] = {"goal": goal, "date": date, "activities": activities, "once": once}
            anchored.append(learner)
        elif anchor is not None and date > max(anchor["date"], anchor.get("seen", [""])[0]):
            anchor["seen"] = [date, activities]  # on the way: at least this much
            last = _snapshots(anchor)[-1][0]
            if (
                on_route
                and len(anchor.get("later", ())) < SNAPSHOTS - 1
                and dt.date.fromisoformat(date) >= dt.date.fromisoformat(last) + SNAPSHOT_EVERY
            ):
                anchor.setdefault("later", []).append([date, activities, once])  # an estimate of the route left
            changed = True
    day = dt.date.fromisoformat(date)
    stale = (day - dt.timedelta(days=STALE_DAYS)).isoformat()
    for learner, anchor in list(anchors.items()):
        last, done = anchor.get("seen", [anchor["date"], anchor["activities"]])
        if last < stale:  # no longer watched: it had not arrived by then
            overheads = [_overhead(s, done) for s in _snapshots(anchor)]
            samples.append({"date": last, "overheads": overheads, "goal": goal_key(anchor["goal"]), "censored": True})
            del anchors[learner]
            changed = True
    oldest = (day - dt.timedelta(days=SAMPLE_DAYS)).isoformat()
    kept = [sample for sample in samples if sample["date"] >= oldest][-SAMPLES_KEPT:]
    if len(kept) < len(samples):
        samples[:] = kept
        changed = True
    if anchored or changed:
        store.note_references(tenant, [(learner, name) for learner in anchored])  # first: never unnoted
        store.put_setting(name, orjson.dumps(record).decode())
    return {"anchors": len(anchored), "samples": taken}


def _snapshots(anchor: Mapping[str, Any]) -> list[tuple[str, float, float]]:
    """An anchor's estimates of the route: ``(date, activities done, what the route left then
    cost to master once)``, the first night's and one every ``SNAPSHOT_EVERY`` after."""
    return [(anchor["date"], anchor["activities"], anchor["once"]), *(tuple(s) for s in anchor.get("later", ()))]


def _overhead(snapshot: tuple[str, float, float], activities: float) -> float:
    """The activities done since ``snapshot`` over what its route left cost to master once."""
    return round(max(0.0, activities - snapshot[1]) / snapshot[2], 3)


def _values(sample: Mapping[str, Any]) -> list[float]:
    return list(sample["overheads"]) if "overheads" in sample else [sample["overhead"]]  # one per arrival before


def survival_quantiles(
    arrived: Sequence[float], censored: Sequence[float], shares: Sequence[float]
) -> list[float | None]:
    """The Kaplan-Meier estimate of the values by which the ``shares`` of a group arrive, from the
    values of those who did (``arrived``) and lower bounds for those who have not (``censored``:
    no arrival by then). At a tie, arrivals come before the bounds (an arrival at the bound was
    still on its way there). Where the curve sits exactly at a share, the midpoint to the next
    arrival (without bounds, the median is the sample median). None for a share the curve has
    not reached: too many still on their way to tell."""
    arrivals = collections.Counter(arrived)
    bounds = collections.Counter(censored)
    at_risk = len(arrived) + len(censored)
    steps: list[tuple[float, float]] = []  # (value, share still on their way after it)
    survival = 1.0
    for value in sorted(arrivals.keys() | bounds.keys()):
        if arrivals[value]:
            survival *= 1.0 - arrivals[value] / at_risk
            steps.append((value, survival))
        at_risk -= arrivals[value] + bounds[value]
    out: list[float | None] = []
    for share in shares:
        left = 1.0 - share
        found: float | None = None
        for k, (value, survival) in enumerate(steps):
            if survival <= left + 1e-12:
                exact = abs(survival - left) <= 1e-12 and k + 1 < len(steps)
                found = (value + steps[k + 1][0]) / 2 if exact else value
                break
        out.append(found)
    return out


def measure(store: LearnerStore, tenant: str, schools: Iterable[str]) -> dict[str, Any]:
    """The tenant's route overhead from its schools' samples and the students still on their way,
    stored (``gps@TENANT``, what ``GET /v1/gps`` reads) and returned: ``route_overhead`` None while
    there are fewer than ``MIN_SAMPLES`` arrivals, or while fewer than half of the students
    watched have arrived or gone past the median; the upper quartile None while fewer than three
    quarters have. Under ``goals``, the same for each goal that has its own by those rules
    (``goal_key`` -> measure): goals differ (in the GPS benchmark, 1.8 to 4.2)."""
    pools: dict[str | None, _Pool] = {None: _Pool()}  # None: every goal

    def add(goal: str | None, values: list[float], arrived: bool) -> None:
        for pool in (pools[None], pools.setdefault(goal, _Pool())) if goal else (pools[None],):
            (pool.arrived if arrived else pool.censored).extend(values)
            if arrived:
                pool.arrivals += 1
            else:
                pool.on_the_way += 1

    for school in schools:
        record = _record(store, school_setting(tenant, school))
        for sample in record["samples"]:
            add(sample.get("goal"), _values(sample), not sample.get("censored"))
        for anchor in record["anchors"].values():
            if "seen" in anchor:
                done = anchor["seen"][1]
                add(goal_key(anchor["goal"]), [_overhead(s, done) for s in _snapshots(anchor)], False)
    measured = pools.pop(None).measure()
    goals = {goal: m for goal, pool in sorted(pools.items()) if (m := pool.measure())["route_overhead"] is not None}
    measured.update(
        needed=MIN_SAMPLES,
        measured_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        goals=goals,
    )
    store.put_setting(tenant_setting(tenant), orjson.dumps(measured).decode())
    return measured


class _Pool:
    """Samples of one goal (or of all): the overheads of arrivals and the bounds of students on
    their way, and how many students each counts."""

    def __init__(self) -> None:
        self.arrived: list[float] = []
        self.censored: list[float] = []
        self.arrivals = self.on_the_way = 0

    def measure(self) -> dict[str, Any]:
        out: dict[str, Any] = {"route_overhead": None, "quartiles": None}
        low, median, high = survival_quantiles(self.arrived, self.censored, (0.25, 0.5, 0.75))
        if self.arrivals >= MIN_SAMPLES and median is not None and low is not None:
            out = {"route_overhead": round(median, 2), "quartiles": [round(low, 2), _rounded(high)]}
        return {**out, "samples": self.arrivals, "on_the_way": self.on_the_way}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def planner_settings(measured: Mapping[str, Any], configured: PlannerConfig) -> dict[str, Any] | None:
    """What a tenant's measure sets of its ``[planner]`` configuration: the route overhead (the
    median) and spread (the quartiles over it; the ``configured`` spread's upper factor while the
    upper quartile is not known yet), and the goals measured on their own (``goal_route``, over
    the configured ones); None while nothing is measured."""
    settings: dict[str, Any] = {}
    if measured["route_overhead"] is not None:
        overhead, low, high = _factors(measured, configured.route_spread)
        settings.update(route_overhead=overhead, route_spread=(low, high))
    goals = {goal: _factors(m, configured.route_spread) for goal, m in measured.get("goals", {}).items()}
    if goals:
        settings["goal_route"] = {**configured.goal_route, **goals}
    return settings or None


def _factors(measured: Mapping[str, Any], spread: tuple[float, float]) -> tuple[float, float, float]:
    """A measure's overhead and the factors of its range around it."""
    median = float(measured["route_overhead"])
    low, high = measured["quartiles"]
    return median, min(1.0, low / median), spread[1] if high is None else max(1.0, high / median)


def forget_anchors(store: LearnerStore, tenant: str, learner_ids: Collection[str], references: Collection[str]) -> None:
    """Erase learners' anchors from the school records that hold them (among their
    ``references``: ``serving.plans.learner_references``)."""
    gone = set(learner_ids)
    for name in sorted({n for n in references if n.startswith(school_setting(tenant, ""))}):
        found = store.get_setting(name)
        if found is None:
            continue
        record = orjson.loads(found[1])
        if gone.isdisjoint(record["anchors"]):
            continue
        record["anchors"] = {k: v for k, v in record["anchors"].items() if k not in gone}
        store.put_setting(name, orjson.dumps(record).decode())
