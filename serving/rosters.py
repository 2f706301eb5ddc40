"""A tenant's roster (classes, teachers, students, enrollments) in the store, and what follows from it.

The roster is the versioned store setting ``roster@TENANT`` (JSON of :class:`engine.roster.Roster`),
so every worker and replica reads the same one. Importing a bundle updates it under optimistic
concurrency and gives every rostered student their roster grade (which feeds their starting
belief); learning data (events, states, goals) is never touched by an import.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import orjson

from engine.roster import KINDS, Roster, RosterBundle
from serving.stores.base import LearnerStore, VersionConflict

__all__ = ["RosterStore", "changes", "roster_setting"]

_RETRIES = 20


def roster_setting(tenant: str) -> str:
    return f"roster@{tenant}"


class RosterStore:
    """Reads (cached per setting version) and updates of each tenant's roster. ``cache`` may be
    shared by the RosterStores of one process that read the same store (a batch worker opens the
    store per task but should parse a district's roster once)."""

    def __init__(self, store: LearnerStore, cache: dict[str, tuple[int, Roster]] | None = None):
        self.store = store
        self._cache: dict[str, tuple[int, Roster]] = {} if cache is None else cache

    def get(self, tenant: str) -> Roster:
        name = roster_setting(tenant)
        version = self.store.setting_versions([name]).get(name, 0)
        cached = self._cache.get(tenant)
        if cached is not None and cached[0] == version:
            return cached[1]
        found = self.store.get_setting(name)
        roster = Roster.from_json(orjson.loads(found[1])) if found else Roster()
        self._cache[tenant] = (found[0] if found else 0, roster)
        return roster

    def update(self, tenant: str, change: Callable[[Roster], Roster]) -> tuple[Roster, Roster]:
        """Apply ``change`` to the current roster and store the result unless it is the same;
        returns (before, after). Raises what ``change`` raises."""
        name = roster_setting(tenant)
        for _ in range(_RETRIES):
            found = self.store.get_setting(name)
            before = Roster.from_json(orjson.loads(found[1])) if found else Roster()
            after = change(Roster.from_json(before.to_json()))
            if after.to_json() == before.to_json():
                return before, after
            try:
                self.store.put_setting(
                    name, orjson.dumps(after.to_json()).decode(), expected_version=found[0] if found else 0
                )
            except VersionConflict:
                continue
            return before, after
        raise VersionConflict(f"the roster of tenant {tenant!r} kept changing; retry")

    def apply(self, tenant: str, bundle: RosterBundle) -> tuple[Roster, Roster]:
        return self.update(tenant, lambda roster: roster.apply(bundle, tenant))

    def forget(self, tenant: str, user_ids: Collection[str]) -> set[str]:
        """Erase users from the roster (learners' deletion), in one update however many; returns
        those that were rostered."""
        current = self.get(tenant)
        rostered = {u for u in user_ids if u in current.users or current.classes_of(u)}

        def change(roster: Roster) -> Roster:
            roster.without_users(rostered)
            return roster

        if rostered:
            self.update(tenant, change)
        return rostered


def changes(before: Roster, after: Roster) -> dict[str, dict[str, int]]:
    """Per kind of record: how many were added, updated and removed."""
    out: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        old: dict[str, Any] = getattr(before, kind)
        new: dict[str, Any] = getattr(after, kind)
        out[kind] = {
            "added": sum(1 for k in new if k not in old),
            "updated": sum(1 for k in new if k in old and old[k] != new[k]),
            "removed": sum(1 for k in old if k not in new),
        }
    return out
