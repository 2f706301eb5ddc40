"""Roster imports sent over HTTP run as jobs (``POST /v1/rosters``, ``GET /v1/rosters/imports``).

A district's OneRoster zip is tens of megabytes, and its import takes from seconds to minutes:
longer than many proxies wait for an answer. So the upload is first kept in the store, then
imported by a job that any worker may finish. The request answers with the result when the
import is done within ``[serving] roster_wait_s``, else 202 and the job to follow.

What the store holds (settings, so every worker and replica sees them):

- ``roster-import@TENANT@ID``: the job: its status (``storing``, ``queued``, ``running``,
  ``done``, ``failed``), progress, result or error, and the lease of the worker running it.
- ``roster-upload@TENANT@ID@K``: the upload's parts (base64). They hold people's names, so they
  are deleted, their bytes with them (``delete_settings``), as soon as the job ends.
- ``roster-imports``: the open jobs in the order they were accepted. A tenant's jobs run one at
  a time in that order (a delta sent after a bulk file applies after it).
- ``roster-imports@TENANT``: the tenant's last :data:`HISTORY` jobs, newest first; older job
  records are deleted.

An erasure while a job is open notes the erased on it (``erased``, see
:mod:`serving.import_records`): its upload was stored before and may name them. The worker that
ends the job erases them again once the import has written everything (the roster, the grades),
says so in the result's notes without naming them, and takes them out of the job's messages. A
job that will run again keeps the note for its next start.

Who runs a job: the worker that accepted it, at once unless another job of the tenant is open
(the thread that ends that one runs the next). Every worker looks at the open jobs every
:data:`POLL_S` seconds and takes over a job nobody runs, or whose worker stopped renewing its
lease (a worker that died): the import runs again from the start, which changes nothing that
was done already (an import twice is the same as once). A job fails after :data:`ATTEMPTS`
starts, and at once for a bundle that cannot be read.
"""

from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from engine.roster import RosterError, open_zip, read_zip
from serving.import_records import OPEN, history_setting, job_setting, redact_job, redactor
from serving.stores.base import StoreError, VersionConflict
from serving.views import iso

__all__ = [
    "ATTEMPTS",
    "HISTORY",
    "LEASE_S",
    "PART_BYTES",
    "POLL_S",
    "RosterImports",
    "changes_in_words",
    "doing_now",
    "public",
]

log = logging.getLogger("zpd.serving.imports")

#: an upload is kept in parts of this many bytes (one setting each)
PART_BYTES = 4 * 1024 * 1024
#: seconds a running job's worker holds it without renewing (it renews, with the job's
#: progress, every LEASE_S / 15)
LEASE_S = 30.0
#: seconds between a worker's looks at the open jobs
POLL_S = 10.0
#: starts before a job that keeps stopping fails
ATTEMPTS = 3
#: finished jobs kept per tenant
HISTORY = 50
QUEUE = "roster-imports"


#: what an import is doing, by its progress's phase, as a person is told it
PHASES = {
    "reading": "reading the upload",
    "parsing": "reading its files",
    "merging": "checking it against the roster",
    "roster": "writing the roster, step {done} of {total}",
    "grades": "setting grades, {done} of {total} students",
}


def doing_now(progress: dict[str, Any]) -> str:
    """An import's progress (``phase``, ``done``, ``total``) in words (the roster page, the CLI)."""
    return PHASES[progress["phase"]].format(**progress)


def changes_in_words(changes: dict[str, dict[str, int]]) -> str:
    """An import's changes per kind, as ``users +2 ~1 -0, ...`` ("" when nothing changed)."""
    return ", ".join(
        f"{kind} +{c['added']} ~{c['updated']} -{c['removed']}" for kind, c in changes.items() if any(c.values())
    )


def _claimable(job: dict[str, Any], now: float) -> bool:
    """Whether a worker may start a job: queued, or running under a lease that ran out."""
    return job["status"] == "queued" or (job["status"] == "running" and job["lease_until"] < now)


def part_setting(tenant: str, job_id: str, k: int) -> str:
    return f"roster-upload@{tenant}@{job_id}@{k}"


def public(job: dict[str, Any]) -> dict[str, Any]:
    """A job as the API shows it (``RosterImportJobOut``): no lease, no worker."""
    return {
        "import_id": job["id"],
        "status": job["status"],
        "submitted": iso(job["submitted"]),
        "started": iso(job.get("started")),
        "finished": iso(job.get("finished")),
        "bytes": job["bytes"],
        "attempts": job.get("attempts", 0),
        "progress": job.get("progress"),
        "result": {**job["result"], "import_id": job["id"]} if job.get("result") else None,
        "error": job.get("error"),
    }


class RosterImports:
    """The roster import jobs of one worker process over a shared store (see the module)."""

    def __init__(
        self,
        run: Callable[[str, Any, Callable[[str, int, int], None]], dict[str, Any]],
        store: Any,
        erase: Callable[[str, list[str]], tuple[list[str], dict[str, int]]],
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.time,
        on_attempt: Callable[[str, float], None] | None = None,
        apart: tuple[str, str] | None = None,
        apart_bytes: int = 0,
        on_drained: Callable[[str], None] | None = None,
    ):
        #: ``run(tenant, bundle, progress)``: the import itself (``LearnerService.import_roster``)
        self.run, self.store, self.lease_s, self.clock = run, store, lease_s, clock
        #: ``erase(tenant, ids)``: erase again the learners an erasure noted on a job while it was
        #: open, once its import wrote everything; returns those it had brought back and the
        #: roster's counts then (``LearnerService.erase_noted``)
        self.erase = erase
        #: told each attempt's outcome (done, failed, retried) and seconds (the server's metrics)
        self.on_attempt = on_attempt
        #: (the configuration as JSON, the store's URL): an upload of ``apart_bytes`` or more is
        #: imported in a process of its own (:func:`import_apart`); None: always in this one
        self.apart, self.apart_bytes = apart, apart_bytes
        #: told a tenant whose open jobs this process's thread ran to the end (the server brings
        #: its copy of the roster up to date then, so that a teacher's next request does not wait)
        self.on_drained = on_drained
        #: told each phase of the jobs this process runs (``run_here``'s progress bar)
        self.on_progress: Callable[[str, int, int], None] | None = None
        self.owner = uuid.uuid4().hex
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # tenants one of this process's threads runs jobs of
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ the job record
    def _read(self, tenant: str, job_id: str) -> tuple[int, dict[str, Any]] | None:
        found = self.store.get_setting(job_setting(tenant, job_id))
        return None if found is None else (found[0], orjson.loads(found[1]))

    def _write(self, job: dict[str, Any], version: int | None = None) -> int:
        return self.store.put_setting(job_setting(job["tenant"], job["id"]), orjson.dumps(job).decode(), version)

    def _write_held(self, job: dict[str, Any], version: int, owner: str) -> int:
        """Write a job over ``version``. An erasure may have noted learners on it meanwhile: while
        ``owner`` still holds the job, the note is kept and the write tried again; otherwise the
        :class:`VersionConflict` is raised (another worker took the job)."""
        while True:
            try:
                return self._write(job, version)
            except VersionConflict:
                got = self._read(job["tenant"], job["id"])
                if got is None or got[1]["owner"] != owner:
                    raise
                version = got[0]
                if got[1].get("erased"):
                    job["erased"] = sorted(set(job.get("erased", ())).union(got[1]["erased"]))

    def _change(self, name: str, change: Callable[[list[Any]], list[Any]]) -> list[Any]:
        """Apply ``change`` to a list setting, retrying when another worker wrote it meanwhile."""
        while True:
            found = self.store.get_setting(name)
            version, value = (found[0], orjson.loads(found[1])) if found else (0, [])
            new = change(value)
            try:
                self.store.put_setting(name, orjson.dumps(new).decode(), version)
                return new
            except VersionConflict:
                continue

    def get(self, tenant: str, job_id: str) -> dict[str, Any] | None:
        found = self._read(tenant, job_id)
        return None if found is None or found[1]["status"] == "storing" else public(found[1])

    def listing(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's last jobs, newest first."""
        found = self.store.get_setting(history_setting(tenant))
        jobs = [self._read(tenant, job_id) for job_id in (orjson.loads(found[1]) if found else [])]
        return [public(job) for _, job in filter(None, jobs) if job["status"] != "storing"]

    # ------------------------------------------------------------------ accepting an upload
    def submit(self, tenant: str, data: bytes, source: str = "body") -> str:
        """Take an upload, from the API or the roster page: refused at once when it is no zip at
        all (:class:`RosterError`, naming ``source``), else kept and its import started in this
        process (after the tenant's open imports). Returns the job's id."""
        open_zip(data, source)  # its directory only: what the bundle holds is the job's to read
        job_id = self.accept(tenant, data, source)
        self.start(tenant)
        return job_id

    def accept(self, tenant: str, data: bytes, source: str = "body") -> str:
        """Keep an upload in the store and queue its import (its messages name ``source``).
        Returns the job's id. Once this returns, the import is not lost: a worker that dies leaves
        it to another."""
        job_id = uuid.uuid4().hex[:16]
        parts = [data[k : k + PART_BYTES] for k in range(0, len(data), PART_BYTES)] or [b""]
        now = self.clock()
        job = {
            "id": job_id,
            "tenant": tenant,
            "status": "storing",
            "submitted": now,
            "bytes": len(data),
            "source": source,
            "parts": len(parts),
            "attempts": 0,
            "owner": self.owner,
            "lease_until": now + self.lease_s,
        }
        # first in the queue, storing: an upload cut off half-way is found and its parts deleted
        version = self._write(job)
        self._change(QUEUE, lambda queue: [*queue, [tenant, job_id]])
        try:
            for k, part in enumerate(parts):
                self.store.put_setting(part_setting(tenant, job_id, k), base64.b64encode(part).decode())
            job.update(status="queued", submitted=self.clock(), owner="", lease_until=0.0)
            self._write_held(job, version, self.owner)
            # accepted now: last in the tenant's order (an upload accepted meanwhile goes first)
            self._change(QUEUE, lambda queue: [e for e in queue if e != [tenant, job_id]] + [[tenant, job_id]])
        except BaseException:
            self._abandon(tenant, job_id, len(parts))
            raise
        self._change(history_setting(tenant), lambda ids: [job_id, *ids])
        self._trim(tenant)
        return job_id

    def _abandon(self, tenant: str, job_id: str, parts: int) -> None:
        """Forget an upload that was never accepted: its parts, its record, its place."""
        self._tidy(tenant, job_id, parts, job_setting(tenant, job_id))

    def _tidy(self, tenant: str, job_id: str, parts: int, *also: str) -> None:
        """After a job ended: its upload's parts go (their bytes with them, and the settings
        ``also`` names), then its place among the open jobs."""
        self.store.delete_settings([part_setting(tenant, job_id, k) for k in range(parts)] + list(also))
        self._drop(tenant, job_id)

    def _drop(self, tenant: str, job_id: str) -> None:
        """Take a job out of the open ones."""
        self._change(QUEUE, lambda queue: [e for e in queue if e != [tenant, job_id]])

    def _trim(self, tenant: str) -> None:
        """Delete the records of the tenant's finished jobs beyond the last :data:`HISTORY`."""
        dropped: list[str] = []

        def keep(ids: list[str]) -> list[str]:
            dropped[:] = []
            kept = []
            for k, job_id in enumerate(ids):
                found = self._read(tenant, job_id) if k >= HISTORY else None
                if found is not None and found[1]["status"] not in OPEN:
                    dropped.append(job_id)
                elif found is not None or k < HISTORY:
                    kept.append(job_id)
            return kept

        self._change(history_setting(tenant), keep)
        self.store.delete_settings([job_setting(tenant, job_id) for job_id in dropped])

    # ------------------------------------------------------------------ running jobs
    def start(self, tenant: str) -> None:
        """Run the tenant's open jobs in a thread of this process, unless one already does."""
        with self._lock:
            if tenant in self._busy:
                return
            self._busy.add(tenant)
            thread = threading.Thread(target=self._run_tenant, args=(tenant,), daemon=True, name="roster-import")
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def poll(self) -> None:
        """Start the jobs nobody runs: queued ones, running ones whose lease ran out; forget
        uploads cut off while being stored."""
        found = self.store.get_setting(QUEUE)
        queue = orjson.loads(found[1]) if found else []
        seen: set[str] = set()
        now = self.clock()
        for tenant, job_id in queue:
            got = self._read(tenant, job_id)
            if got is None:
                self._drop(tenant, job_id)
                continue
            job = got[1]
            if job["status"] in ("done", "failed"):  # its worker stopped before tidying up
                self._tidy(tenant, job_id, job["parts"])
                continue
            if job["status"] == "storing":
                if job["lease_until"] < now:
                    log.warning("roster upload %s of tenant %s was cut off while stored; forgotten", job_id, tenant)
                    self._abandon(tenant, job_id, job["parts"])
                continue
            if tenant in seen:
                continue
            seen.add(tenant)
            if _claimable(job, now):
                self.start(tenant)

    def run_here(self, tenant: str, job_id: str, wait_s: float = 0.5) -> dict[str, Any]:
        """Run the tenant's open jobs in this thread, in their order, until ``job_id`` is over
        (``zpd roster import``); while another worker runs one of them, wait for it. Returns the
        job as the API shows it."""
        while True:
            self._run_tenant(tenant)
            job = self.get(tenant, job_id)
            if job is None:
                raise StoreError(f"roster import {job_id} of tenant {tenant!r} is gone from the store")
            if job["status"] in ("done", "failed"):
                return job
            if job["progress"] is not None and self.on_progress is not None:  # a server runs it
                self.on_progress(job["progress"]["phase"], job["progress"]["done"], job["progress"]["total"])
            time.sleep(wait_s)

    def wait(self, timeout: float = 30.0) -> None:
        """Wait for this process's job threads (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _first_open(self, tenant: str) -> str | None:
        found = self.store.get_setting(QUEUE)
        for owner, job_id in orjson.loads(found[1]) if found else []:
            if owner == tenant:
                got = self._read(tenant, job_id)
                if got is not None and got[1]["status"] in ("queued", "running"):
                    return job_id  # (an upload being stored is not accepted yet; an ended job is tidied next)
        return None

    def _run_tenant(self, tenant: str) -> None:
        ran = False
        try:
            while (job_id := self._first_open(tenant)) is not None:
                claimed = self._claim(tenant, job_id)
                if claimed is None:
                    break  # another worker runs it (and the tenant's next ones)
                self._execute(*claimed)
                ran = True
        except StoreError as exc:  # the store went away: the lease runs out and a poll retries
            log.error("roster imports of tenant %s stopped: %s", tenant, exc)
            ran = False
        finally:
            with self._lock:
                self._busy.discard(tenant)
        if ran and self.on_drained is not None:
            try:
                self.on_drained(tenant)
            except Exception as exc:  # the import stands; a request reads the roster instead
                log.warning("tenant %s: roster not read after its import: %s", tenant, exc)

    def _claim(self, tenant: str, job_id: str) -> tuple[int, dict[str, Any]] | None:
        while (got := self._read(tenant, job_id)) is not None:
            version, job = got
            now = self.clock()
            if not _claimable(job, now):
                return None
            if job["status"] == "running":
                log.warning("roster import %s of tenant %s: its worker stopped; started again", job_id, tenant)
            job.update(
                status="running",
                owner=self.owner,
                lease_until=now + self.lease_s,
                attempts=job.get("attempts", 0) + 1,
                started=now,
                progress={"phase": "reading", "done": 0, "total": job["parts"]},
            )
            try:
                return self._write(job, version), job
            except VersionConflict:
                continue  # another worker claimed it first (it is not claimable then), or an erasure noted
        return None

    def _execute(self, version: int, job: dict[str, Any]) -> None:
        tenant, job_id = job["tenant"], job["id"]
        state = {"version": version, "progress": job["progress"], "ours": True}
        stop = threading.Event()

        def renew() -> None:  # the lease and the progress
            while not stop.wait(self.lease_s / 15):
                job.update(progress=state["progress"], lease_until=self.clock() + self.lease_s)
                try:
                    state["version"] = self._write_held(job, state["version"], self.owner)
                except VersionConflict:
                    state["ours"] = False  # taken over after a stall: the other worker finishes it
                    return
                except StoreError as exc:
                    log.warning("roster import %s: lease not renewed: %s", job_id, exc)

        def progress(phase: str, done: int, total: int) -> None:
            state["progress"] = {"phase": phase, "done": done, "total": total}
            if self.on_progress is not None:
                self.on_progress(phase, done, total)

        renewer = threading.Thread(target=renew, daemon=True, name="roster-import-lease")
        renewer.start()
        began = time.monotonic()
        outcome: dict[str, Any]
        try:  # (an interrupt, ^C in the CLI, stops the renewal too: the lease runs out, a server takes over)
            try:
                if self.apart is not None and job["bytes"] >= self.apart_bytes:
                    result = self._run_apart(job, progress)
                else:
                    bundle = read_upload(self.store, job, progress)
                    result = self.run(tenant, bundle, progress)
                outcome = {"status": "done", "result": result}
            except RosterError as exc:
                outcome = {
                    "status": "failed",
                    "error": {"code": "invalid_roster", "message": str(exc), "field": "body"},
                }
            except Exception as exc:  # the store, a conflict that kept coming back, a bug: try again
                log.exception("roster import %s of tenant %s failed (attempt %d)", job_id, tenant, job["attempts"])
                # (a conflict is a store error too: it is named first)
                code = (
                    "busy"
                    if isinstance(exc, VersionConflict)
                    else "unavailable"
                    if isinstance(exc, StoreError)
                    else "failed"
                )
                error = {"code": code, "message": f"the import failed {ATTEMPTS} times: {exc}", "field": None}
                outcome = {"status": "retried"} if job["attempts"] < ATTEMPTS else {"status": "failed", "error": error}
        finally:
            stop.set()
            renewer.join()
        self._attempted(outcome["status"], began)
        if not state["ours"]:
            return
        ended = self._end(job, outcome)
        if ended is None or ended["status"] == "queued":  # taken over; or queued again, for the loop
            return
        self._tidy(tenant, job_id, job["parts"])
        log.info("roster import %s of tenant %s: %s", job_id, tenant, ended["status"])

    def _end(self, job: dict[str, Any], outcome: dict[str, Any]) -> dict[str, Any] | None:
        """Write a job's outcome (queued again for a ``retried`` one), once the learners an
        erasure noted on it meanwhile are erased again: the import has written all it writes, so
        nothing of it brings them back after this. Returns the job as written, or None when
        another worker took it over (it ends it)."""
        tenant, job_id = job["tenant"], job["id"]
        result = outcome.get("result")
        erased: set[str] = set()
        brought_back: set[str] = set()
        counts = None
        while True:
            got = self._read(tenant, job_id)
            if got is None or got[1]["owner"] != self.owner:
                return None
            version, stored = got
            noted = set(stored.get("erased", ()))
            if noted - erased:
                taken, counts = self.erase(tenant, sorted(noted - erased))
                brought_back.update(taken)
                erased |= noted
            ended = {**stored, "progress": None, "owner": "", "lease_until": 0.0}
            if outcome["status"] == "retried":
                ended["status"] = "queued"  # (the note stays, for the next start's end)
            else:
                ended.update(outcome, finished=self.clock())
                ended.pop("erased", None)
                if result is not None and counts is not None:  # the roster as the erasures left it
                    notes = result["notes"]
                    if brought_back:
                        who = (
                            "1 person this upload names was"
                            if len(brought_back) == 1
                            else f"{len(brought_back)} people this upload names were"
                        )
                        notes = [
                            *notes,
                            f"{who} erased while it waited or ran, and taken out of the roster again",
                        ]
                    ended["result"] = {**result, "counts": counts, "notes": notes}
                redact_job(ended, redactor(tenant, erased))
            try:
                self._write(ended, version)
                return ended
            except VersionConflict:
                continue  # an erasure noted more, or a poll: once more, on what is stored

    def _attempted(self, outcome: str, began: float) -> None:
        if self.on_attempt is not None:
            self.on_attempt(outcome, time.monotonic() - began)

    def _run_apart(self, job: dict[str, Any], progress: Callable[[str, int, int], None]) -> dict[str, Any]:
        """The import in a process of its own (:func:`import_apart`): its memory is given back when
        it ends, and it does not hold this worker's interpreter lock. Raises as the import
        would."""
        config_json, store_url = self.apart or ("", "")
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        child = context.Process(
            target=import_apart, args=(config_json, store_url, job, sender), name=f"roster-import-{job['id']}"
        )
        child.start()
        sender.close()
        try:
            while child.is_alive() or receiver.poll():
                if not receiver.poll(0.5):
                    continue
                try:
                    message = receiver.recv()
                except EOFError:
                    break
                kind, *rest = message
                if kind == "progress":
                    progress(*rest)
                elif kind == "done":
                    return rest[0]
                else:
                    raise _RAISED.get(kind, RuntimeError)(rest[0])
            raise RuntimeError(f"the import's process stopped (exit code {child.exitcode})")
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()
                child.join()


#: what an import apart reports, by the kind of failure, raised again in the worker
_RAISED: dict[str, type[Exception]] = {"invalid": RosterError, "store": StoreError, "conflict": VersionConflict}


def read_upload(store: Any, job: dict[str, Any], progress: Callable[[str, int, int], None]) -> Any:
    """The bundle of a job's upload: its parts read back from the store, then its files parsed."""
    data = []
    for k in range(job["parts"]):
        progress("reading", k, job["parts"])
        found = store.get_setting(part_setting(job["tenant"], job["id"], k))
        if found is None:
            raise StoreError(f"part {k} of roster upload {job['id']} is missing from the store")
        data.append(base64.b64decode(found[1]))
    progress("parsing", 0, 1)
    return read_zip(b"".join(data), job.get("source", "body"))


def import_apart(config_json: str, store_url: str, job: dict[str, Any], report: Any) -> None:
    """A job's import in a process of its own: the engine and the deployment's model as a worker
    has them, the store opened afresh; progress and the outcome are sent through ``report``."""
    from configs import ZPDConfig
    from serving.deployment import served_engine
    from serving.service import LearnerService
    from serving.stores import open_store

    def progress(phase: str, done: int, total: int) -> None:
        report.send(("progress", phase, done, total))

    parent = os.getppid()

    def orphaned() -> None:  # the worker died (the lease runs out, another worker imports again)
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=orphaned, daemon=True, name="roster-import-parent").start()
    try:
        with open_store(store_url) as store:
            # the bundle first: a district's rows built beside the engine's start cost 200 MB more
            bundle = read_upload(store, job, progress)
            engine = served_engine(ZPDConfig.model_validate_json(config_json), store)  # the workers' model
            report.send(("done", LearnerService(engine, store).import_roster(job["tenant"], bundle, progress)))
    except RosterError as exc:
        report.send(("invalid", str(exc)))
    except VersionConflict as exc:
        report.send(("conflict", str(exc)))
    except StoreError as exc:
        report.send(("store", str(exc)))
    except Exception as exc:
        report.send(("failed", f"{type(exc).__name__}: {exc}"))
    finally:
        report.close()
