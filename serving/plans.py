"""Stored nightly plans (``zpd plan-batch``, :mod:`serving.batch`): where they live in the store,
how the API reads them, and how a learner's deletion reaches them.

A plan is the store setting ``plan@TENANT@CLASS@DATE``; storing one notes it among the store's
references of each of its learners (``LearnerStore.note_references``), so erasing a learner
rewrites the plans that name them, not every plan of the tenant. Stores written before kept the
names of a tenant's plans in one list, ``plans@TENANT``; its plans are referenced once
(:func:`reference_plans`), and ``plans-referenced@TENANT`` records that it was done.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import orjson

from serving.stores.base import LearnerStore

__all__ = [
    "check_date",
    "forget_learners",
    "learner_references",
    "plan_setting",
    "reference_plans",
    "store_plan",
    "stored_plan",
]


def plan_setting(tenant: str, class_id: str, date: str) -> str:
    return f"plan@{tenant}@{class_id}@{date}"


def index_setting(tenant: str) -> str:
    return f"plans@{tenant}"


def check_date(date: str) -> str:
    try:
        return dt.date.fromisoformat(date).isoformat()
    except ValueError:
        raise ValueError(f"date must be an ISO-8601 day (YYYY-MM-DD), got {date!r}") from None


def stored_plan(store: LearnerStore, tenant: str, class_id: str, date: str) -> dict[str, Any] | None:
    found = store.get_setting(plan_setting(tenant, class_id, date))
    return None if found is None else orjson.loads(found[1])


def _old_index(tenant: str) -> str:
    return f"plans@{tenant}"


def _referenced(tenant: str) -> str:
    return f"plans-referenced@{tenant}"


def store_plan(store: LearnerStore, tenant: str, plan: dict[str, Any]) -> str:
    """Store a class's plan for its date (replacing one stored before) and note it among the
    references of each of its learners. Returns its name."""
    name = plan_setting(tenant, plan["class_id"], plan["date"])
    store.note_references(tenant, [(learner, name) for learner in plan["learners"]])  # first: never unnoted
    store.put_setting(name, orjson.dumps(plan).decode())
    return name


def reference_plans(store: LearnerStore, tenant: str) -> None:
    """Note the plans of the tenant's old list (from before plans were referenced) among their
    learners' references, once."""
    if store.get_setting(_referenced(tenant)) is not None:
        return
    found = store.get_setting(_old_index(tenant))
    for name in orjson.loads(found[1]) if found else []:
        plan = store.get_setting(name)
        if plan is not None:
            store.note_references(tenant, [(learner, name) for learner in orjson.loads(plan[1]).get("learners", [])])
    store.put_setting(_referenced(tenant), "1")


def learner_references(store: LearnerStore, tenant: str, learner_ids: Collection[str]) -> set[str]:
    """The store's references of these learners (the records an erasure rewrites: plans, group
    records, the GPS's anchors), the plans stored before references existed among them."""
    reference_plans(store, tenant)
    return {name for learner in learner_ids for name in store.references(tenant, learner)}


def forget_learners(
    store: LearnerStore, tenant: str, learner_ids: Collection[str], references: Collection[str]
) -> None:
    """Erase learners from every stored plan that names them (learners' deletion; the store's
    deletion then drops the references). A plan naming several of them is rewritten once.
    ``references``: theirs (:func:`learner_references`)."""
    gone = set(learner_ids)
    for name in sorted({name for name in references if name.startswith("plan@")}):
        plan = store.get_setting(name)
        if plan is None:
            continue
        data = orjson.loads(plan[1])
        if not gone & set(data.get("learners", [])):
            continue
        data["learners"] = [lid for lid in data["learners"] if lid not in gone]
        for learner_id in gone:
            data["playlists"].pop(learner_id, None)
            data["gps"].pop(learner_id, None)
        for group in data["groups"]:
            group["learners"] = [lid for lid in group["learners"] if lid not in gone]
        data["groups"] = [g for g in data["groups"] if g["learners"]]
        if "diagnostic_unseated" in data:  # plans stored before it have none
            data["diagnostic_unseated"] = [lid for lid in data["diagnostic_unseated"] if lid not in gone]
        store.put_setting(name, orjson.dumps(data).decode())
