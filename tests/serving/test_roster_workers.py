"""A tenant's roster changed and read by several workers over one store, in any order hypothesis
finds: imports that replace it, erasures, reads in between or not at all. Changes are written a
few records a version and the store keeps the removals of a few versions only, so readers follow
by changes, fall behind the removals kept and read the whole roster again, and read between the
steps of another worker's change. After every step: what the store holds is the roster the
operations made, every worker's copy read now is that roster (records and membership), and at
every version a write left, each enrollment names a user and a class the roster has.
``ZPD_ROSTER_EXAMPLES=300`` runs a longer search."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import serving.stores.redis
import serving.stores.sqlite
from engine.roster import KINDS, Roster
from serving.rosters import RosterStore
from serving.stores import open_store

from .conftest import store_url

USERS = [f"u{i}" for i in range(8)]
CLASSES = ["c0", "c1", "c2"]
ENROLLMENTS = [f"e{i}" for i in range(12)]
ROLES = ["student", "teacher"]


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def store(request, tmp_path, monkeypatch):
    for module in (serving.stores.sqlite, serving.stores.redis):
        monkeypatch.setattr(module, "ROSTER_HISTORY", 4)
    s = open_store(store_url(request, tmp_path, request.param))
    s.roster_step = 3
    yield s
    s.close()


@st.composite
def rosters(draw) -> Roster:
    """A roster whose enrollments name its own users and classes."""
    users = draw(st.lists(st.sampled_from(USERS), unique=True, max_size=len(USERS)))
    classes = draw(st.lists(st.sampled_from(CLASSES), unique=True, max_size=len(CLASSES)))
    roster = Roster(
        users={u: {"given": u.upper(), "role": draw(st.sampled_from(ROLES)), "grade": None} for u in users},
        classes={c: {"title": c, "grades": draw(st.sampled_from([[], ["4"]])), "school": None} for c in classes},
    )
    if users and classes:
        for key in draw(st.lists(st.sampled_from(ENROLLMENTS), unique=True, max_size=len(ENROLLMENTS))):
            user, cls = draw(st.sampled_from(users)), draw(st.sampled_from(classes))
            roster.enrollments[key] = {"class": cls, "user": user, "role": roster.users[user]["role"]}
    return roster


def as_read(store, tenant: str) -> Roster:
    return Roster.from_records((kind, key, record) for _, kind, key, record in store.roster_changes(tenant, 0).written)


def same(a: Roster, b: Roster) -> None:
    assert a.to_json() == b.to_json()
    for cls in CLASSES:
        for role in (None, *ROLES):
            assert a.members(cls, role) == b.members(cls, role), (cls, role)
    for user in USERS:
        assert a.classes_of(user) == b.classes_of(user), user
        assert a.students_of(user) == b.students_of(user), user
        assert a.classes_taught(user) == b.classes_taught(user), user


def test_workers_follow_any_sequence_of_roster_changes(store) -> None:
    tenants = iter(range(1_000_000))
    write = store.write_roster

    def checked(tenant: str, expected: int, written: Any, removed: Any) -> int:
        version = write(tenant, expected, written, removed)
        now = as_read(store, tenant)
        for key, e in now.enrollments.items():
            assert e["user"] in now.users and e["class"] in now.classes, (version, key)
        return version

    store.write_roster = checked

    class Tenant(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.tenant = f"t{next(tenants)}"
            self.workers = [RosterStore(store) for _ in range(3)]
            self.expected = Roster()

        @rule(worker=st.integers(0, 2), roster=rosters())
        def import_a_roster(self, worker: int, roster: Roster) -> None:
            before, after = self.workers[worker].update(self.tenant, lambda _: Roster.from_json(roster.to_json()))
            assert before.to_json() == self.expected.to_json()
            self.expected = Roster.from_json(roster.to_json())

        @rule(worker=st.integers(0, 2), users=st.lists(st.sampled_from(USERS), max_size=3))
        def erase(self, worker: int, users: list[str]) -> None:
            rostered = self.workers[worker].forget(self.tenant, users)
            assert rostered == {u for u in users if u in self.expected.users}
            kept = self.expected.to_json()  # the model: the users and every enrollment naming them go
            kept["users"] = {u: r for u, r in kept["users"].items() if u not in users}
            kept["enrollments"] = {k: e for k, e in kept["enrollments"].items() if e["user"] not in users}
            self.expected = Roster.from_json(kept)

        @rule(worker=st.integers(0, 2))
        def read(self, worker: int) -> None:
            same(self.workers[worker].get(self.tenant), self.expected)

        @invariant()
        def the_store_holds_the_roster(self) -> None:
            stored = as_read(store, self.tenant)
            same(stored, self.expected)
            numbers = [rid for rid, *_ in store.roster_changes(self.tenant, 0).written]
            assert len(numbers) == len(set(numbers)) == sum(len(getattr(stored, kind)) for kind in KINDS)

    run_state_machine_as_test(
        Tenant,
        settings=settings(
            max_examples=int(os.environ.get("ZPD_ROSTER_EXAMPLES", "15")),
            stateful_step_count=12,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
