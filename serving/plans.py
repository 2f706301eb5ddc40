"""Stored nightly plans (``zpd plan-batch``, :mod:`serving.batch`): where they live in the store,
how the API reads them, and how a learner's deletion reaches them.

A plan is the store setting ``plan@TENANT@CLASS@DATE``; the names of a tenant's plans are kept in
``plans@TENANT``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import orjson

from serving.stores.base import LearnerStore, VersionConflict

__all__ = ["check_date", "forget_learner", "plan_setting", "stored_plan", "update_index"]


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


def update_index(store: LearnerStore, tenant: str, change: Callable[[list[str]], list[str]]) -> None:
    for _ in range(50):
        found = store.get_setting(index_setting(tenant))
        names = orjson.loads(found[1]) if found else []
        updated = change(list(names))
        if updated == names:
            return
        try:
            store.put_setting(index_setting(tenant), orjson.dumps(updated).decode(), found[0] if found else 0)
            return
        except VersionConflict:
            continue
    raise VersionConflict(f"the plan index of tenant {tenant!r} kept changing")


def forget_learner(store: LearnerStore, tenant: str, learner_id: str) -> None:
    """Erase a learner from every stored plan of the tenant (a learner's deletion)."""
    found = store.get_setting(index_setting(tenant))
    for name in orjson.loads(found[1]) if found else []:
        plan = store.get_setting(name)
        if plan is None:
            continue
        data = orjson.loads(plan[1])
        if learner_id not in data.get("learners", []):
            continue
        data["learners"] = [lid for lid in data["learners"] if lid != learner_id]
        data["playlists"].pop(learner_id, None)
        data["gps"].pop(learner_id, None)
        for group in data["groups"]:
            group["learners"] = [lid for lid in group["learners"] if lid != learner_id]
        data["groups"] = [g for g in data["groups"] if g["learners"]]
        store.put_setting(name, orjson.dumps(data).decode())
