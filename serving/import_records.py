"""The records of roster imports that the rest of the server reads (see :mod:`serving.imports`):
where a job and a tenant's list of jobs are kept, and how an erasure takes a learner out of them.
Kept apart from the jobs' machinery, which imports the learner service for an import run in a
process of its own, while the learner service reaches these records on every erasure."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import orjson

from engine.xapi import account_id
from serving.stores.base import VersionConflict

__all__ = ["forget_learners", "history_setting", "job_setting"]


def job_setting(tenant: str, job_id: str) -> str:
    return f"roster-import@{tenant}@{job_id}"


def history_setting(tenant: str) -> str:
    return f"roster-imports@{tenant}"


#: a value a message quotes (``repr``: single quotes, double ones around a value holding one);
#: none holds a space, which keeps an apostrophe of the prose around it from opening a quote
_QUOTED = re.compile(r"'([^'\s]+)'|\"([^\"\s]+)\"")


def forget_learners(store: Any, tenant: str, learner_ids: Collection[str]) -> None:
    """Erasure: the tenant's import records no longer name these learners. An error or a note
    quotes a row's ``sourcedId`` as the file had it (an e-mail address, say), so a quoted value is
    taken out when it becomes an erased learner's id (``account_id``), and the ids themselves
    wherever they stand. The values overwritten leave the files with the rewrite that the
    store's deletion of the learners, which follows, always starts."""
    erased = set(learner_ids)
    if not erased:
        return
    scope = f"{tenant}\x1fusers"  # as Roster.apply makes a user's id
    plain = re.compile("|".join(rf"(?<![\w.@-]){re.escape(i)}(?![\w.@-])" for i in sorted(erased, key=len)[::-1]))

    def redact(text: str) -> str:
        text = _QUOTED.sub(
            lambda m: "'[erased]'" if account_id(m.group(1) or m.group(2), scope) in erased else m.group(0), text
        )
        return plain.sub("[erased]", text)

    found = store.get_setting(history_setting(tenant))
    for job_id in orjson.loads(found[1]) if found else []:
        name = job_setting(tenant, job_id)
        got = store.get_setting(name)
        if got is None:
            continue
        job = orjson.loads(got[1])
        before = orjson.dumps(job)
        if job.get("error"):
            job["error"]["message"] = redact(job["error"]["message"])
        if job.get("result"):
            job["result"]["notes"] = [redact(note) for note in job["result"].get("notes", [])]
        if orjson.dumps(job) != before:
            try:
                store.put_setting(name, orjson.dumps(job).decode(), got[0])
            except VersionConflict:  # its worker wrote it meanwhile: once more, on what it wrote
                forget_learners(store, tenant, learner_ids)
                return
