"""Statements whose actor is an anonymous group, and their voids.

A group's statement is about each of its members (:func:`serving.schemas.normalize_event`): each
member's log keeps a copy under an id of its own, ``STATEMENT_ID:MEMBER_HASH``
(:func:`copy_id`). A voiding statement names the group statement's id, which no member holds, so
the members are kept where a void can find them:

- the store setting ``xapi-group@TENANT@STATEMENT_ID`` lists the members (the learners whose logs
  hold a copy), and is among the store's references of each of them
  (``LearnerStore.note_references``), so erasing a learner rewrites the records that name them;
- the statement's own id is claimed by :data:`GROUP_OWNER` once its record is written, so a void
  that finds that claim finds the record, and one that arrives first (its target claimed by
  ``VOIDED_OWNER``) voids the members' copies on their arrival.

A void of the group statement is then one void per member, under ``VOID_ID:MEMBER_HASH``,
naming that member's copy: stored and folded as any void is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Mapping, Sequence

import orjson

from serving.stores.base import LearnerStore, VersionConflict

__all__ = ["GROUP_OWNER", "copy_id", "forget_learners", "group_members", "group_setting", "record_groups"]

#: the holder of an anonymous group statement's own id (its members hold their copies' ids)
GROUP_OWNER = "~group"


def copy_id(statement_id: str, member: str) -> str:
    """The id of a member's copy of a group's statement (the same whatever the members' order)."""
    return f"{statement_id}:{hashlib.sha256(member.encode()).hexdigest()[:12]}"


def group_setting(tenant: str, statement_id: str) -> str:
    return f"xapi-group@{tenant}@{statement_id}"


def group_members(store: LearnerStore, tenant: str, statement_id: str) -> list[str]:
    """The members of the tenant's group statement as recorded (none when there is no record)."""
    found = store.get_setting(group_setting(tenant, statement_id))
    return [] if found is None else list(orjson.loads(found[1])["members"])


def record_groups(store: LearnerStore, tenant: str, groups: Mapping[str, Sequence[str]]) -> None:
    """Record the members of each group statement (statement id -> members) before its id is
    claimed: a void that finds the claim must find the record. A statement sent again with other
    members (the same id) adds them, with a conditional write, so two such batches at once both
    count; nothing is written for a resend."""
    for statement_id, members in groups.items():
        name = group_setting(tenant, statement_id)
        while True:
            found = store.get_setting(name)
            known = [] if found is None else orjson.loads(found[1])["members"]
            if set(members) <= set(known):
                break
            everyone = sorted({*known, *members})
            store.note_references(tenant, [(member, name) for member in everyone])  # first: never unnoted
            try:
                store.put_setting(name, _dumps(everyone), expected_version=0 if found is None else found[0])
                break
            except VersionConflict:  # another batch wrote it meanwhile: add to what it wrote
                continue


def forget_learners(
    store: LearnerStore, tenant: str, learner_ids: Collection[str], references: Collection[str]
) -> None:
    """Take erased learners out of the group records that name them (a record left with no
    member goes; the store's deletion then drops the references and reclaims the bytes).
    ``references``: theirs (``serving.plans.learner_references``)."""
    gone = set(learner_ids)
    names = sorted({name for name in references if name.startswith("xapi-group@")})
    emptied = []
    for name in names:
        while True:
            found = store.get_setting(name)
            if found is None:
                break
            members = orjson.loads(found[1])["members"]
            kept = [m for m in members if m not in gone]
            if len(kept) == len(members):
                break
            if not kept:
                emptied.append(name)
                break
            try:
                store.put_setting(name, _dumps(kept), expected_version=found[0])
                break
            except VersionConflict:  # a batch added a member meanwhile: take the erased out of that
                continue
    if emptied:
        store.delete_settings(emptied)


def _dumps(members: list[str]) -> str:
    return orjson.dumps({"members": members}).decode()
