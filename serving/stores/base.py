"""The store interface: learner records, their event log, idempotency keys and API keys.

Each learner's record (model state, progress, goal, overrides, placement) is updated atomically
with the append of the events that produced it and their idempotency keys: a commit either
lands whole or not at all. Concurrent writers are detected with the record's version number
(optimistic concurrency): a stale commit raises :class:`VersionConflict` and the caller retries.

Event ingestion is a *group commit*: the records and idempotency keys of every learner in a batch
are read in one round trip and all their commits are written with one durable flush
(:meth:`LearnerStore.commit_many`: one Redis pipeline, one SQLite transaction). Each learner's
commit is still atomic on its own: a conflicting learner is refused and retried alone while the
others land.

Idempotency keys are scoped to (tenant, learner, event id), so every key of one learner lives
with that learner (one Redis Cluster hash slot) and is erased with it.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, overload

import orjson

__all__ = [
    "ApiKeyRecord",
    "Commit",
    "LearnerRecord",
    "LearnerStore",
    "NumberedRecord",
    "RecordPages",
    "RosterChanges",
    "RosterKey",
    "RosterRecord",
    "StoreError",
    "StoreUnavailable",
    "StoredEvent",
    "Unaligned",
    "VersionConflict",
    "page_of",
    "parse_meta",
]


class StoreError(RuntimeError):
    """A store operation failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached (the API answers 503)."""


class VersionConflict(StoreError):
    """The learner record changed since it was read; re-read and retry."""


#: how far ahead of the time it arrived an event's time may be before it is taken for a device's
#: clock set wrong (seconds); a constant, so that every replay folds the same times
CLOCK_AHEAD_S = 300.0


def event_time(sent: float, received: float) -> float:
    """The time an event counts at: as sent, or when it arrived if that is more than
    :data:`CLOCK_AHEAD_S` earlier (a device's clock set wrong)."""
    return received if sent > received + CLOCK_AHEAD_S else sent


def chronological(log: Iterable[StoredEvent]) -> list[StoredEvent]:
    """A learner's events in the order they happened (:attr:`StoredEvent.time`; events of the
    same time in the log's order): how the learner's state counts them, so every view of a log
    lists them so too. The log itself is in the order events arrived."""
    return sorted(log, key=_happened)


def _happened(event: StoredEvent) -> float:
    return event.time


@dataclass(frozen=True)
class StoredEvent:
    id: str
    item_id: str
    standards: tuple[str, ...]
    correct: float | None  # None: not an answer (see ``kind``)
    timestamp: float
    received: float
    content_hash: str
    source: str = "native"  # native | xapi | placement
    unit: str | None = None  # the standard a placement question was about
    kind: str = "answer"  # answer | exposure | ignored | void (only answers are evidence)
    voids: str | None = None  # the event id a void event voids

    @property
    def time(self) -> float:
        """When it happened, for the learner's state: the time as sent, or the time it arrived when
        the time as sent is more than :data:`CLOCK_AHEAD_S` after it (a device's clock set wrong,
        which would put the answer after everything the learner does until then). The time as
        sent is kept (``timestamp``); folds, replays and exports all read this."""
        return event_time(self.timestamp, self.received)

    def to_json(self) -> str:
        data = {name: getattr(self, name) for name in _EVENT_FIELDS}
        data["standards"] = list(self.standards)
        for name, default in (("unit", None), ("kind", "answer"), ("voids", None)):
            if data[name] == default:  # the common case stays as compact as before
                del data[name]
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> StoredEvent:
        data = json.loads(text)
        data["standards"] = tuple(data["standards"])
        return cls(**data)


_EVENT_FIELDS = tuple(f.name for f in fields(StoredEvent))


def content_hash(payload: dict[str, Any]) -> str:
    """Hash of an event's meaningful content (what a repeat must match to count as identical)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class LearnerRecord:
    tenant: str
    learner_id: str
    version: int = 0
    model_version: str = ""
    state: bytes = b""
    meta: dict[str, Any] = field(default_factory=dict)  # progress, goal, overrides, interests, placement
    event_count: int = 0
    created: float = 0.0
    updated: float = 0.0

    def meta_json(self) -> str:
        return orjson.dumps(self.meta, option=orjson.OPT_SORT_KEYS).decode()


def parse_meta(text: str | bytes) -> dict[str, Any]:
    """The record's meta as stored by :meth:`LearnerRecord.meta_json` (read on every request)."""
    return orjson.loads(text)


@dataclass
class Commit:
    """One learner's atomic write: check the record still has ``expected_version``, append
    ``events`` with their idempotency keys, write ``record`` (its version bumped)."""

    record: LearnerRecord
    expected_version: int
    events: Sequence[StoredEvent] = ()


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    secret_hash: str
    created: float
    revoked: bool = False
    label: str = ""
    user: str = ""  # the roster user (a teacher) the key belongs to; "" for a tenant-wide key


@dataclass(frozen=True)
class Unaligned:
    """Answers (and exposures) seen on one activity the tenant's catalog does not align yet."""

    item_id: str
    events: int
    learners: int
    first_seen: float  # epoch seconds: the earliest time of an event on it


#: a roster record to write: (kind, id, record); one to remove: (kind, id)
RosterRecord = tuple[str, str, dict[str, Any]]
RosterKey = tuple[str, str]

#: how many versions of a tenant's roster a store keeps the removals of: a reader further behind
#: reads the whole roster again
ROSTER_HISTORY = 1000
#: the most written records a reader is sent as changes: beyond, it reads the whole roster, page
#: by page (a Redis script runs alone; and a reader builds a whole roster paced, see
#: ``serving.rosters``)
ROSTER_CHANGES_MAX = 10_000
#: roster records a page of a long read holds (read and decoded at a time: a few milliseconds)
ROSTER_PAGE = 2000


#: a roster record as a store reads it: (record number, kind, id, record)
NumberedRecord = tuple[int, str, str, dict[str, Any]]


class RecordPages(Sequence[NumberedRecord]):
    """The records of a long roster read, kept as the store sent them, one JSON array of
    ``[number, kind, id, record]`` items per page, and decoded a page at a time as they are
    iterated (each iteration decodes them again; ``len`` and indexing decode them all).

    A reader builds its own compact copy from them. Had every record been decoded first, or kept
    as many small objects, the copy's strings would lie among half a million dead objects in
    memory the allocator cannot give back: a district's copy cost a worker 260-440 MB that way,
    against about 170 MB built from pages (one block of bytes each) as they are decoded.

    ``skip``: numbers whose records in the pages are stale (written again or removed while the
    pages were read); ``then``: records yielded after the pages; ``unique``: a number seen
    before is skipped (a scan may return a record twice)."""

    def __init__(
        self,
        pages: Sequence[bytes],
        skip: Collection[int] = (),
        then: Sequence[NumberedRecord] = (),
        unique: bool = False,
    ):
        self._pages, self._skip, self._then, self._unique = pages, skip, then, unique

    def __iter__(self) -> Iterator[NumberedRecord]:
        # the numbers seen, a byte each (numbers count up from 1): a set of a district's 612,000
        # numbers, freed at the end of the read, stalled the requests beside it for 20-40 ms
        skip, seen = self._skip, bytearray()
        for page in self._pages:
            for rid, kind, key, record in orjson.loads(page):
                if rid in skip:
                    continue
                if self._unique:
                    if rid >= len(seen):
                        seen.extend(bytes(max(rid + 1 - len(seen), len(seen))))
                    elif seen[rid]:
                        continue
                    seen[rid] = 1
                yield rid, kind, key, record
        yield from self._then

    def __len__(self) -> int:
        return sum(1 for _ in self)

    @overload
    def __getitem__(self, i: int) -> NumberedRecord: ...

    @overload
    def __getitem__(self, i: slice) -> list[NumberedRecord]: ...

    def __getitem__(self, i: int | slice) -> NumberedRecord | list[NumberedRecord]:
        return list(self)[i]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordPages({len(self._pages)} pages)"


def page_of(items: Iterable[bytes]) -> bytes:
    """One page of :class:`RecordPages` from its items' JSON arrays."""
    return b"[" + b",".join(items) + b"]"


@dataclass(frozen=True)
class RosterChanges:
    """What changed in a tenant's roster after a reader's version (:meth:`LearnerStore.roster_changes`)."""

    version: int  # the roster's version now (0: it has no record)
    full: bool  # ``written`` is the whole roster: a reader starts over (``removed`` is empty)
    written: Sequence[NumberedRecord]  # (record number, kind, id, record); a long read's, as RecordPages
    removed: list[int]  # the numbers of the records removed


class LearnerStore(ABC):
    """What the API needs from a store; both implementations pass one contract suite."""

    url: str
    #: the most roster records one versioned write holds (a long change is written in steps of
    #: this many, see :class:`~serving.rosters.RosterStore`)
    roster_step: int = 5000
    #: the share of the store's time a change written in steps may take: after each step the
    #: writer waits for the rest (1: no wait). A store whose readers wait for its writer lowers it.
    bulk_share: float = 1.0

    @abstractmethod
    def get(self, tenant: str, learner_id: str) -> LearnerRecord | None: ...

    @abstractmethod
    def get_many(self, tenant: str, learner_ids: Sequence[str]) -> dict[str, LearnerRecord]:
        """The records of those learners that have one (one round trip)."""

    @abstractmethod
    def event_hashes_many(self, tenant: str, event_ids: Mapping[str, Sequence[str]]) -> dict[str, dict[str, str]]:
        """Per learner, the content hashes of the given event ids already stored (one round trip);
        learners with none are left out."""

    def event_hashes(self, tenant: str, learner_id: str, event_ids: Sequence[str]) -> dict[str, str]:
        """Content hashes of the given event ids already stored for this learner."""
        return self.event_hashes_many(tenant, {learner_id: event_ids}).get(learner_id, {})

    @abstractmethod
    def commit_many(self, commits: Sequence[Commit]) -> list[VersionConflict | None]:
        """Apply every commit, each atomically on its own, with one durable flush for all.

        Returns, in order, ``None`` for a commit that landed (durable when this returns; its
        record's version, event count and times are updated in place) or the
        :class:`VersionConflict` that refused it (nothing of it was written). Raises
        :class:`StoreUnavailable` if the store cannot be reached; commits that landed before the
        failure stay (a client's retry is then acknowledged as duplicates)."""

    def commit(self, record: LearnerRecord, expected_version: int, events: Sequence[StoredEvent] = ()) -> None:
        """One learner's :class:`Commit`; raises :class:`VersionConflict` if it was refused."""
        (conflict,) = self.commit_many([Commit(record, expected_version, events)])
        if conflict is not None:
            raise conflict

    @abstractmethod
    def claim_event_ids(self, tenant: str, claims: Mapping[str, str]) -> dict[str, str]:
        """Event ids are unique per tenant: claim each id (event id -> learner) unless another
        learner holds it, and return each id's holder (the claimant, or who had it first). A claim
        stays when its events are never committed (the same learner may send them again)."""

    @abstractmethod
    def event_owners(self, tenant: str, event_ids: Sequence[str]) -> dict[str, str]:
        """The learner holding each of these event ids, for the ids that are held."""

    @abstractmethod
    def events(self, tenant: str, learner_id: str, start: int = 0) -> list[StoredEvent]:
        """The learner's event log, in append order: from its ``start``-th event (0, the first) on.
        Reading from ``start`` costs what is read, not the whole log."""

    @abstractmethod
    def learners(self, tenant: str | None = None) -> Iterator[tuple[str, str]]:
        """(tenant, learner) pairs that have a record."""

    @abstractmethod
    def learner_page(self, tenant: str, limit: int, *, after: str = "", offset: int = 0) -> tuple[list[str], int]:
        """One page of the tenant's listed learners in id order: at most ``limit`` ids after the
        id ``after`` ("" for the first), skipping ``offset`` of them; and how many are listed in
        all. Costs the page, not the tenant (a cursor pages through a million learners)."""

    @abstractmethod
    def delete_learner(self, tenant: str, learner_id: str) -> bool:
        """Erase every trace: record, events, idempotency keys, event-id claims, the learner's
        entries among the unaligned activities and their references. True if anything existed."""

    def delete_learners(self, tenant: str, learner_ids: Sequence[str]) -> set[str]:
        """:meth:`delete_learner` for each (a store may share the work of several: one rewrite of
        its files); returns those of whom anything existed."""
        return {learner_id for learner_id in dict.fromkeys(learner_ids) if self.delete_learner(tenant, learner_id)}

    # -- documents that name a learner (a stored class plan names its students): per learner, the
    #    names of those documents, so erasing a learner rewrites those, not every document
    @abstractmethod
    def note_references(self, tenant: str, pairs: Sequence[tuple[str, str]]) -> None:
        """Add ``(learner_id, name)`` pairs: the document ``name`` names the learner."""

    @abstractmethod
    def references(self, tenant: str, learner_id: str) -> list[str]:
        """The names of the documents that name the learner, sorted."""

    # -- activities answered that the catalog does not align yet: per (activity, learner), the
    #    events seen, so an admin sees what to align and the learners are refolded once it is.
    #    Adding is an increment (no read-modify-write), so concurrent batches never conflict.
    @abstractmethod
    def note_unaligned(self, tenant: str, seen: Sequence[tuple[str, str, int, float]]) -> None:
        """Add ``(item_id, learner_id, events, time)`` entries: the events are added to the
        pair's count, the earliest time is kept per activity."""

    @abstractmethod
    def unaligned(self, tenant: str) -> list[Unaligned]:
        """The tenant's unaligned activities, by item id."""

    @abstractmethod
    def unaligned_learners(self, tenant: str, item_ids: Sequence[str]) -> list[str]:
        """The learners with events on any of these activities, sorted."""

    @abstractmethod
    def drop_unaligned(self, tenant: str, item_ids: Sequence[str]) -> None:
        """Forget these activities (they are aligned now)."""

    # -- a tenant's roster (:class:`engine.roster.Roster`) record by record: a change writes the
    #    records it changes, and a reader that holds one version reads what changed since, not the
    #    roster. Each record has a number of its own, never reused; a removal is kept as that
    #    number alone (nothing of the person) for :data:`ROSTER_HISTORY` versions.
    @abstractmethod
    def roster_version(self, tenant: str) -> int:
        """The version of the tenant's roster (0: never written); one cheap read."""

    @abstractmethod
    def roster_changes(self, tenant: str, since: int, pace: Callable[[], None] | None = None) -> RosterChanges:
        """The records written and removed after version ``since``, read at one version. For
        ``since`` 0, or older than the removals kept, or newer than the roster (a store restored
        from a backup), the whole roster (``full``); a store may also answer the whole roster when
        the changes are many. A long read is done in pages, ``pace`` called between them (see
        :mod:`serving.pacing`)."""

    @abstractmethod
    def write_roster(
        self, tenant: str, expected: int, written: Sequence[RosterRecord], removed: Sequence[RosterKey]
    ) -> int:
        """Write ``(kind, id, record)`` records and remove ``(kind, id)`` ones in one atomic change,
        refused with :class:`VersionConflict` unless the roster is still at version ``expected``;
        returns the new version. Removed records leave no bytes behind (as a learner's deletion)."""

    @abstractmethod
    def put_key(self, key: ApiKeyRecord) -> None: ...

    @abstractmethod
    def get_key(self, key_id: str) -> ApiKeyRecord | None: ...

    @abstractmethod
    def list_keys(self, tenant: str | None = None) -> list[ApiKeyRecord]: ...

    @abstractmethod
    def revoke_key(self, key_id: str) -> bool: ...

    # -- deployment settings: what every worker and replica must agree on (served model, catalog
    #    additions, imported framework), versioned so a worker can tell it is behind
    @abstractmethod
    def get_setting(self, name: str) -> tuple[int, str] | None:
        """(version, value) of a deployment setting, or None if it was never set."""

    @abstractmethod
    def setting_versions(self, names: Sequence[str]) -> dict[str, int]:
        """The current version of each named setting that was ever set (cheap: no values)."""

    @abstractmethod
    def put_setting(self, name: str, value: str, expected_version: int | None = None) -> int:
        """Store a setting and return its new version (one more than before). With
        ``expected_version``, refuse with :class:`VersionConflict` if it changed meanwhile."""

    @abstractmethod
    def delete_settings(self, names: Sequence[str]) -> None:
        """Remove settings (a roster upload's parts once imported), their bytes from the store's
        files too, as a deleted learner's: they may hold people's names. Setting one again
        starts at version 1."""

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`StoreUnavailable` if the store cannot serve requests."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> LearnerStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
