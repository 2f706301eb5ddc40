"""The records of roster imports that the rest of the server reads (see :mod:`serving.imports`):
where a job and a tenant's list of jobs are kept, and how an erasure reaches them. Kept apart
from the jobs' machinery, which imports the learner service for an import run in a process of its
own, while the learner service reaches these records on every erasure.

An erasure reaches an import in two ways. The messages of ended imports stop quoting the erased
(:func:`forget_learners`). An import still open (its upload stored, waiting or running) may name
them too, and would bring them back when it applies: so the erasure first notes their ids on
every open job (also :func:`forget_learners`, the job's ``erased``), and the worker that ends the job
erases them again once the import has written everything (``RosterImports``). The note comes
before the rest of the erasure, and the worker reads the notes after the import's last write:
whichever comes last, the erased stay erased."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

import orjson

from engine.xapi import account_id
from serving.stores.base import VersionConflict

__all__ = ["OPEN", "forget_learners", "history_setting", "job_setting", "redact_job", "redactor"]

#: the states of a job not over yet: its upload is being stored, it waits, or it runs
OPEN = ("storing", "queued", "running")


def job_setting(tenant: str, job_id: str) -> str:
    return f"roster-import@{tenant}@{job_id}"


def history_setting(tenant: str) -> str:
    return f"roster-imports@{tenant}"


#: a value a message quotes (``repr``: single quotes, double ones around a value holding one);
#: none holds a space, which keeps an apostrophe of the prose around it from opening a quote
_QUOTED = re.compile(r"'([^'\s]+)'|\"([^\"\s]+)\"")


def redactor(tenant: str, learner_ids: Collection[str]) -> Callable[[str], str]:
    """A function that takes these learners out of an import's message. A message quotes a
    row's ``sourcedId`` as the file had it (an e-mail address, say), so a quoted value is taken
    out when it becomes an erased learner's id (``account_id``), and the ids themselves wherever
    they stand."""
    erased = set(learner_ids)
    if not erased:
        return lambda text: text
    scope = f"{tenant}\x1fusers"  # as Roster.apply makes a user's id
    plain = re.compile("|".join(rf"(?<![\w.@-]){re.escape(i)}(?![\w.@-])" for i in sorted(erased, key=len)[::-1]))

    def redact(text: str) -> str:
        text = _QUOTED.sub(
            lambda m: "'[erased]'" if account_id(m.group(1) or m.group(2), scope) in erased else m.group(0), text
        )
        return plain.sub("[erased]", text)

    return redact


def redact_job(job: dict[str, Any], redact: Callable[[str], str]) -> None:
    """Take the erased out of a job's error and result notes (in place)."""
    if job.get("error"):
        job["error"]["message"] = redact(job["error"]["message"])
    if job.get("result"):
        job["result"]["notes"] = [redact(note) for note in job["result"].get("notes", [])]


def forget_learners(store: Any, tenant: str, learner_ids: Collection[str]) -> None:
    """Erasure, before the rest of it: the tenant's ended imports no longer name these learners
    in their messages, and each open one notes them (its ``erased``), so the worker that ends it
    erases them again after its last write. A job already right is not written. The values
    overwritten leave the files with the rewrite that the store's deletion of the learners, which
    follows, always starts."""
    erased = set(learner_ids)
    redact = redactor(tenant, erased)
    found = store.get_setting(history_setting(tenant)) if erased else None
    for job_id in orjson.loads(found[1]) if found else []:
        name = job_setting(tenant, job_id)
        while (got := store.get_setting(name)) is not None:
            job = orjson.loads(got[1])
            before = orjson.dumps(job)
            if job["status"] in OPEN:
                job["erased"] = sorted(erased.union(job.get("erased", ())))
            else:
                redact_job(job, redact)
            if orjson.dumps(job) == before:
                break
            try:
                store.put_setting(name, orjson.dumps(job).decode(), got[0])
                break
            except VersionConflict:  # its worker wrote it meanwhile (its lease, its end): once more
                continue
