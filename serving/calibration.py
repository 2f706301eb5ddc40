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
- the night they are planned with that goal reached, the activities done since, over that cost,
  is a *sample* (a number and a day, naming nobody), and the anchor goes. A goal changed in between
  drops the anchor;
- at the end of a run, once the tenant's schools hold ``MIN_SAMPLES`` samples, their median is
  the tenant's route overhead and their quartiles over it its spread (the GPS's range)
  (``gps@TENANT``, :func:`measure`). Its GPS counts those from then on (``LearnerService.core``);
  until then, the configured ones.

Re-running a night adds nothing: the anchors it would set are there, the samples it would take
are taken.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from serving.stores.base import LearnerStore

if TYPE_CHECKING:
    from engine.planner.gps import GoalStatus

__all__ = [
    "MIN_SAMPLES",
    "SAMPLES_KEPT",
    "forget_anchors",
    "measure",
    "observe",
    "planner_settings",
    "school_setting",
    "tenant_setting",
]

#: arrivals a tenant's schools must have seen before their measure replaces the configured overhead
MIN_SAMPLES = 20
#: the latest samples a school keeps (the older ones describe another year)
SAMPLES_KEPT = 2000
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
    taken = dropped = 0
    for learner, (status, activities) in seen.items():
        goal = list(status.goal)
        anchor = anchors.get(learner)
        if anchor is not None and anchor["goal"] != goal:  # another goal: the old one's route is moot
            del anchors[learner]
            anchor = None
            dropped += 1
        if status.status == "reached":
            if anchor is not None:
                if date > anchor["date"] and activities > anchor["activities"]:
                    overhead = (activities - anchor["activities"]) / anchor["once"]
                    samples.append({"date": date, "overhead": round(overhead, 3)})
                    taken += 1
                del anchors[learner]
                dropped += 1
        elif anchor is None and status.status not in _NO_ROUTE and status.estimated_activities > 0:
            once = status.estimated_activities / status.route_overhead
            anchors[learner] = {"goal": goal, "date": date, "activities": activities, "once": round(once, 3)}
            anchored.append(learner)
    if anchored or dropped:
        del samples[:-SAMPLES_KEPT]
        store.note_references(tenant, [(learner, name) for learner in anchored])  # first: never unnoted
        store.put_setting(name, orjson.dumps(record).decode())
    return {"anchors": len(anchored), "samples": taken}


def measure(store: LearnerStore, tenant: str, schools: Iterable[str]) -> dict[str, Any]:
    """The tenant's route overhead from its schools' samples, stored (``gps@TENANT``, what
    ``GET /v1/gps`` reads) and returned: ``route_overhead`` None while there are fewer than
    ``MIN_SAMPLES``."""
    values = []
    for school in schools:
        values += [s["overhead"] for s in _record(store, school_setting(tenant, school))["samples"]]
    measured: dict[str, Any] = {"route_overhead": None, "quartiles": None}
    if len(values) >= MIN_SAMPLES:
        low, _, high = statistics.quantiles(values, n=4)
        measured = {"route_overhead": round(statistics.median(values), 2), "quartiles": [round(low, 2), round(high, 2)]}
    measured.update(
        samples=len(values), needed=MIN_SAMPLES, measured_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    )
    store.put_setting(tenant_setting(tenant), orjson.dumps(measured).decode())
    return measured


def planner_settings(measured: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a tenant's measure sets of its ``[planner]`` configuration: the route overhead (the
    median) and spread (the quartiles over it); None while too few arrivals are measured."""
    if measured["route_overhead"] is None:
        return None
    median = float(measured["route_overhead"])
    low, high = measured["quartiles"]
    return {"route_overhead": median, "route_spread": (min(1.0, low / median), max(1.0, high / median))}


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
