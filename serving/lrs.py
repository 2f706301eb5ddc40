"""Catching up from a Learning Record Store: read back the statements it stored (xAPI
``GET /statements``, following ``more``) and store them as if they had been forwarded.

An LRS forwards a statement once: Ralph drops a batch zpd refuses or cannot reach, so statements
stored while zpd was down never arrive. ``zpd lrs pull`` reads them from the LRS and stores them
through :meth:`LearnerService.ingest`, the path ``/xapi/statements`` takes, so what arrived before
is a duplicate and changes nothing. Statements are stored a window of pages at a time, each
learner's in one batch: a learner whose statements are older than what it already has (an outage,
a backfill) is refolded once per window, not once per page.

Where to start reading: ``--since``, else the tenant's cursor for this LRS (the newest ``stored``
time of the last complete pull, moved back by an overlap, capped by the LRS's
``X-Experience-API-Consistent-Through``), else everything the LRS holds. A statement zpd refuses
is reported by id and the others are stored (a refused batch is halved until the refused
statements stand alone); the cursor moves only when every statement read was stored, found a
duplicate or reported refused.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin

import httpx

from engine.xapi import StatementError, parse_time
from serving.service import ApiError, LearnerService
from serving.stores.base import VersionConflict

__all__ = ["FILTERS", "LrsError", "PullReport", "cursor_setting", "pull"]

#: the xAPI version zpd speaks to an LRS
XAPI_VERSION = "1.0.3"


class LrsError(RuntimeError):
    """The LRS could not be read (unreachable, refused, or not answering a StatementResult)."""


#: the statement filters of xAPI's ``GET /statements`` a pull may pass on (an LRS shared by
#: several tenants or platforms: the activities, verbs, agent or registration of one of them)
FILTERS = ("agent", "verb", "activity", "registration", "related_activities", "related_agents")


def check_filters(filters: Mapping[str, str]) -> None:
    for name in filters:
        if name not in FILTERS:
            raise LrsError(f"filter {name!r} is not an xAPI statements filter; use one of {', '.join(FILTERS)}")


def cursor_setting(tenant: str, endpoint: str, filters: Mapping[str, str] | None = None) -> str:
    """The setting holding ``tenant``'s cursor for the LRS at ``endpoint`` read with ``filters``
    (each selection of statements has a cursor of its own)."""
    what = json.dumps([endpoint, sorted((filters or {}).items())])
    return f"lrs-cursor@{tenant}@{hashlib.sha256(what.encode()).hexdigest()[:16]}"


@dataclass
class PullReport:
    lrs: str
    tenant: str
    since: str | None  # where reading started (ISO-8601), None: everything
    pages: int = 0
    statements: int = 0  # read from the LRS
    accepted: int = 0
    duplicates: int = 0
    voided: int = 0
    not_evidence: int = 0
    unaligned: int = 0
    warnings: list[dict[str, Any]] = field(default_factory=list)  # kept with a part set aside
    refused: list[dict[str, Any]] = field(default_factory=list)  # {id, field, message}
    not_stored: list[str] = field(default_factory=list)  # learners busy through every retry
    cursor: str | None = None  # the cursor after the pull (unchanged when something was not stored)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: Any, where: str) -> float:
    try:
        return parse_time(value, where)[0]
    except StatementError as exc:
        raise LrsError(str(exc)) from None


def read_pages(client: httpx.Client, endpoint: str, params: dict[str, str]) -> Iterator[tuple[list[Any], float | None]]:
    """The LRS's StatementResult pages for ``params``: each page's statements and the LRS's
    ``X-Experience-API-Consistent-Through`` (epoch seconds, None without the header)."""
    url: str = endpoint
    query: dict[str, str] | None = params
    seen: set[str] = set()
    while True:
        try:
            response = client.get(url, params=query)
        except httpx.HTTPError as exc:
            raise LrsError(f"{url}: the LRS cannot be reached: {exc}") from None
        if response.status_code != 200:
            raise LrsError(f"{response.url}: the LRS answered {response.status_code}: {response.text[:300]}")
        try:
            body = response.json()
        except ValueError:
            raise LrsError(f"{response.url}: the LRS's answer is not JSON: {response.text[:200]!r}") from None
        if not isinstance(body, dict) or not isinstance(body.get("statements"), list):
            raise LrsError(f"{response.url}: expected a StatementResult ({{statements, more}}), got {str(body)[:200]}")
        header = response.headers.get("X-Experience-API-Consistent-Through")
        through = _seconds(header, "X-Experience-API-Consistent-Through") if header else None
        yield body["statements"], through
        more = body.get("more")
        if not more:  # absent, null or "": the last page
            return
        if not isinstance(more, str):
            raise LrsError(f"{response.url}: 'more' must be a URL, got {more!r}")
        url, query = urljoin(endpoint, more), None  # relative to the LRS's root, as xAPI says
        if url in seen:
            raise LrsError(f"{url}: the LRS's 'more' link repeats itself")
        seen.add(url)


#: statements read (over several pages) before they are stored, each actor's together: an LRS
#: pages its statements by time, so one learner's are spread over many pages, and statements older
#: than what a learner already has refold the learner once per batch that holds some of them
WINDOW = 5000


def _batches(statements: Sequence[Any], size: int) -> list[list[Any]]:
    """``statements`` in batches of at most ``size``, each actor's statements in one batch (in the
    order read) unless they are more than a batch holds."""
    groups: dict[str, list[Any]] = {}
    for st in statements:
        groups.setdefault(json.dumps(st.get("actor"), sort_keys=True, default=str), []).append(st)
    batches: list[list[Any]] = []
    current: list[Any] = []
    for group in groups.values():
        for start in range(0, len(group), size):
            part = group[start : start + size]
            if current and len(current) + len(part) > size:
                batches.append(current)
                current = []
            current.extend(part)
    if current:
        batches.append(current)
    return batches


class _Pull:
    """One pull's bookkeeping: stores statements and counts what happened to them."""

    def __init__(self, service: LearnerService, report: PullReport, retries: int, backoff_s: float):
        self.service, self.report, self.retries, self.backoff_s = service, report, retries, backoff_s

    def store(self, statements: Sequence[Any]) -> None:
        for batch in _batches(statements, self.service.engine.config.serving.max_batch_events):
            self._store(batch)

    def _store(self, batch: list[Any], attempt: int = 0) -> None:
        report = self.report
        try:
            result = self.service.ingest(report.tenant, batch)
        except ApiError as exc:
            if exc.status not in (409, 422):
                raise
            if len(batch) > 1:  # nothing of a refused batch was written: find the refused ones
                half = len(batch) // 2
                self._store(batch[:half], attempt)
                self._store(batch[half:], attempt)
                return
            st = batch[0]
            report.refused.append(
                {
                    "id": st.get("id") if isinstance(st, dict) else None,
                    "field": None if exc.field is None else exc.field.replace("events[0]", "statement"),
                    "message": exc.message.replace("events[0]", "statement"),
                }
            )
            return
        for name in ("accepted", "duplicates", "voided", "not_evidence", "unaligned"):
            setattr(report, name, getattr(report, name) + result[name])
        report.warnings.extend(result["warnings"])
        if result["retry"]:  # a learner busy with another write (the API, meanwhile): later
            busy = {r.partition(":")[0] for r in result["retry"]}  # a group member's copy: its statement
            again = [st for st in batch if isinstance(st, dict) and st.get("id") in busy]
            if attempt >= self.retries:
                report.not_stored.extend(str(st.get("id")) for st in again)
                return
            time.sleep(self.backoff_s * 2**attempt)
            self._store(again, attempt + 1)


def pull(
    service: LearnerService,
    tenant: str,
    client: httpx.Client,
    endpoint: str,
    *,
    since: float | None = None,
    until: float | None = None,
    page_size: int = 100,
    overlap_s: float = 300.0,
    filters: Mapping[str, str] | None = None,
    retries: int = 5,
    backoff_s: float = 0.2,
) -> PullReport:
    """Read the statements the LRS at ``endpoint`` (its statements resource) stored since
    ``since`` (else the cursor less ``overlap_s``, else all), among those ``filters`` select
    (xAPI's statement filters, :data:`FILTERS`), and store them for ``tenant``."""
    filters = dict(filters or {})
    check_filters(filters)
    name = cursor_setting(tenant, endpoint, filters)
    saved = service.store.get_setting(name)
    cursor = json.loads(saved[1])["stored"] if saved else None
    if since is None and cursor is not None:
        since = _seconds(cursor, f"setting {name}") - overlap_s
    report = PullReport(endpoint, tenant, None if since is None else _iso(since), cursor=cursor)
    params = {**filters, "limit": str(page_size), "ascending": "true"}
    if since is not None:
        params["since"] = _iso(since)
    if until is not None:
        params["until"] = _iso(until)
    run = _Pull(service, report, retries, backoff_s)
    newest: float | None = None
    consistent: float | None = None
    read: list[Any] = []  # read and not stored yet (at most a window)
    try:
        for statements, through in read_pages(client, endpoint, params):
            report.pages += 1
            report.statements += len(statements)
            readable = []
            for k, st in enumerate(statements):
                if not isinstance(st, dict) or not isinstance(st.get("id"), str):
                    report.refused.append(
                        {
                            "id": st.get("id") if isinstance(st, dict) else None,
                            "field": "id",
                            "message": f"page {report.pages}, statement {k}: the LRS returned a statement without an id",
                        }
                    )
                    continue
                readable.append(st)
                if st.get("stored") is not None:
                    stored = _seconds(st["stored"], f"statement {st['id']}: stored")
                    newest = stored if newest is None else max(newest, stored)
            if through is not None:
                consistent = through if consistent is None else min(consistent, through)
            read.extend(readable)
            if len(read) >= WINDOW:
                run.store(read)
                read = []
    except LrsError:  # a later page failed: what was read is stored (the cursor stays)
        run.store(read)
        raise
    run.store(read)
    if not report.not_stored and newest is not None:
        mark = newest if consistent is None else min(newest, consistent)
        report.cursor = _advance(service, name, endpoint, mark)
    return report


def _advance(service: LearnerService, name: str, endpoint: str, mark: float) -> str:
    """Move the cursor forward to ``mark`` (never back: another pull may have gone further
    meanwhile); the cursor after."""
    while True:
        current = service.store.get_setting(name)
        version, held = (current[0], json.loads(current[1])["stored"]) if current else (0, None)
        if held is not None and _seconds(held, f"setting {name}") >= mark:
            return str(held)
        try:
            service.store.put_setting(
                name, json.dumps({"endpoint": endpoint, "stored": _iso(mark)}), expected_version=version
            )
            return _iso(mark)
        except VersionConflict:
            continue
