"""A tenant's roster (classes, teachers, students, enrollments) in the store, and what follows from it.

The store keeps each tenant's roster record by record (:meth:`LearnerStore.write_roster`), so a
change writes what it changes (an erased student: their user and enrollments; a nightly import:
the rows that differ) and every worker and replica reads only what changed since the version it
holds (:meth:`LearnerStore.roster_changes`), not a district's whole roster. Importing a bundle
updates it under optimistic concurrency and gives every rostered student their roster grade (which
feeds their starting belief); learning data (events, states, goals) is never touched by an import.

Stores written before kept the roster as one JSON document, the setting ``roster@TENANT``: it is
moved into records on first read, and blanked.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import queue
import sys
import threading
import time
from array import array
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from engine.roster import KINDS, PAUSE_EVERY, Records, Roster, RosterBundle, held_id
from serving.pacing import Pace
from serving.stores.base import LearnerStore, NumberedRecord, RosterKey, RosterRecord, VersionConflict

__all__ = ["CachedRoster", "Progress", "RecordNumbers", "RosterStore", "changes", "roster_setting"]

log = logging.getLogger("zpd.serving")

_RETRIES = 20
#: how far a long roster change has come: ``progress(phase, done, total)``
Progress = Callable[[str, int, int], None]


def roster_setting(tenant: str) -> str:
    """Where stores written before kept a tenant's roster (one JSON document)."""
    return f"roster@{tenant}"


@dataclass(frozen=True)
class CachedRoster:
    """A worker's copy of a tenant's roster at one version, with each record's number in the
    store (the store names a removed record by its number alone)."""

    version: int
    roster: Roster
    numbers: RecordNumbers


#: a kind's position in ``KINDS``, as :class:`RecordNumbers` holds it
_KIND_AT = {kind: k for k, kind in enumerate(KINDS)}
_KIND_NAMES = list(KINDS)


class RecordNumbers:
    """The number in the store of each record of a worker's copy (the store names a removed
    record by its number alone): the numbers sorted in one array, their kinds in another and
    their ids in a list beside them, 17 bytes a record (as a dict they cost a district's copy
    45 MB more). A change makes new ones: other threads may be reading these."""

    __slots__ = ("_keys", "_kinds", "_numbers")

    def __init__(self, numbers: np.ndarray, kinds: np.ndarray, keys: list[str]):
        self._numbers, self._kinds, self._keys = numbers, kinds, keys

    @classmethod
    def build(cls, numbers: Sequence[int], kinds: Sequence[int], keys: list[str]) -> RecordNumbers:
        """From parallel sequences in any order (``kinds``: positions in ``KINDS``; ``keys`` is
        kept, or replaced by a sorted copy)."""
        held, codes = np.asarray(numbers, dtype=np.int64), np.asarray(kinds, dtype=np.uint8)
        if len(held) > 1 and not bool(np.all(held[1:] > held[:-1])):  # SQLite's come sorted, Redis's not
            order = np.argsort(held, kind="stable")
            held, codes = held[order], codes[order]
            keys = [keys[i] for i in order.tolist()]  # bytecode: the loop gets the interpreter meanwhile
        return cls(held, codes, keys)

    def __len__(self) -> int:
        return len(self._numbers)

    def named(self) -> dict[int, tuple[str, str]]:
        """Every number with its (kind, id)."""
        kinds = self._kinds.tolist()
        return {n: (_KIND_NAMES[k], key) for n, k, key in zip(self._numbers.tolist(), kinds, self._keys)}

    def changed(
        self, removed: Sequence[int], written: Sequence[tuple[int, str, str]]
    ) -> tuple[RecordNumbers, list[tuple[str, str]]]:
        """These numbers after a change: the ``removed`` numbers gone, each ``written`` (number,
        kind, id) held; and the (kind, id) that each removed number named."""
        gone = self._positions(np.asarray(removed, dtype=np.int64))
        named = [(_KIND_NAMES[int(self._kinds[i])], self._keys[i]) for i in gone.tolist()]
        numbers = np.asarray([n for n, _, _ in written], dtype=np.int64)
        drop = np.union1d(gone, self._positions(numbers))
        held, kinds = np.delete(self._numbers, drop), np.delete(self._kinds, drop)
        keys = _spliced(self._keys, [(p, p + 1, None) for p in drop.tolist()])
        if len(numbers):
            order = np.argsort(numbers, kind="stable")
            at = np.searchsorted(held, numbers[order])
            held = np.insert(held, at, numbers[order])
            codes = np.asarray([_KIND_AT[kind] for _, kind, _ in written], dtype=np.uint8)
            kinds = np.insert(kinds, at, codes[order])
            keys = _spliced(keys, [(p, p, written[i][2]) for p, i in zip(at.tolist(), order.tolist())])
        return RecordNumbers(held, kinds, keys), named

    def _positions(self, numbers: np.ndarray) -> np.ndarray:
        """The positions of those of ``numbers`` held here."""
        at = np.searchsorted(self._numbers, numbers)
        inside = at < len(self._numbers)
        inside[inside] &= self._numbers[at[inside]] == numbers[inside]
        return at[inside]


def _spliced(items: list[str], edits: Sequence[tuple[int, int, str | None]]) -> list[str]:
    """``items`` with each ``(start, end, item)`` edit (in order of position): ``items[start:end]``
    replaced by ``item`` (None: by nothing)."""
    out: list[str] = []
    done = 0
    for start, end, item in edits:
        out += items[done:start]  # a list's slice is copied whole (chaining the pieces: 3x the time)
        if item is not None:
            out.append(item)
        done = end
    out += items[done:]
    return out


class RosterStore:
    """Reads (a cached copy, brought up to date with the store's changes) and updates of each
    tenant's roster. ``cache`` may be shared by the RosterStores of one process that read the
    same store (a batch worker opens the store per task but should read a district's roster once)."""

    def __init__(self, store: LearnerStore, cache: dict[str, CachedRoster] | None = None, read_share: float = 1.0):
        """``read_share``: the share of the time a read of a whole roster may take (see
        :mod:`serving.pacing`); a server's worker gives its requests the rest."""
        self.store = store
        self.read_share = read_share
        self._cache: dict[str, CachedRoster] = {} if cache is None else cache
        # one refresh of a tenant's copy at a time; another tenant's read (a roster read at start,
        # a district's) does not hold a request for this one
        self._locks: dict[str, threading.Lock] = {}
        self._locks_lock = threading.Lock()
        self._moved: set[str] = set()  # tenants whose old roster document was looked for

    def get(self, tenant: str) -> Roster:
        return self.current(tenant).roster

    def _lock(self, tenant: str) -> threading.Lock:
        with self._locks_lock:
            return self._locks.setdefault(tenant, threading.Lock())

    def refresh(self, tenant: str) -> None:
        """Bring this process's copy of the tenant's roster up to date, if it holds one (a copy
        nobody asked for is not read: a district's costs a worker 170 MB)."""
        if tenant in self._cache:
            self.current(tenant)

    def current(self, tenant: str) -> CachedRoster:
        """The tenant's roster at the store's version (one cheap read when the copy is current)."""
        if tenant not in self._moved:
            self._move_document(tenant)
        version = self.store.roster_version(tenant)
        cached = self._cache.get(tenant)
        if cached is not None and cached.version == version:
            return cached
        with self._lock(tenant), _collector_paused():
            cached = self._cache.get(tenant)
            if cached is not None and cached.version == version:
                return cached
            pace = Pace(self.read_share)
            found = self.store.roster_changes(tenant, cached.version if cached else 0, pace)
            version = found.version
            if found.full or cached is None:
                roster, numbers = _whole(found.written, pace)
                del found  # the pages read: their memory is given back below
                # a copy kept long, of millions of objects: out of the collector's generations,
                # or its first pass after this one scans them all at once in whichever thread
                # allocates next (a worker's event loop stopped for 0.3 s, then 0.2 s at each full
                # pass). Only after a whole read (a start, a large import): what is alive now stays
                # out of every later pass, cycles that die later included.
                gc.freeze()
                _free_memory_back()
            else:
                numbers, removed = cached.numbers.changed(
                    found.removed, [(rid, kind, key) for rid, kind, key, _ in found.written]
                )
                written = [(kind, key, record) for _, kind, key, record in found.written]
                roster = cached.roster.with_changes(written, removed)
                roster.indexed()
            fresh = CachedRoster(version, roster, numbers)
            self._cache[tenant] = fresh
            if cached is not None:  # the copy replaced: taken apart paced, once nothing else holds it
                _retired.put(cached, self.read_share)
                del cached
            return fresh

    def update(
        self, tenant: str, change: Callable[[Roster], Roster], progress: Progress | None = None
    ) -> tuple[Roster, Roster]:
        """Store ``change(roster)`` (a new roster; the argument is left as it is): the records
        that differ are written, those gone removed. Returns (before, after); raises what
        ``change`` raises. ``progress("roster", done, total)`` follows the steps of the write."""
        for _ in range(_RETRIES):
            current = self.current(tenant)
            before = current.roster
            after = change(before)
            written, removed = _differences(before, after)
            if not written and not removed:
                return before, after
            try:
                self._write(tenant, current.version, after, written, removed, progress)
            except VersionConflict:
                continue  # another writer came in between: write what still differs from theirs
            return before, after
        raise VersionConflict(f"the roster of tenant {tenant!r} kept changing; retry")

    def _write(
        self,
        tenant: str,
        version: int,
        after: Roster,
        written: list[RosterKey],
        removed: list[RosterKey],
        progress: Progress | None = None,
    ) -> int:
        """Write a change in steps of at most the store's ``roster_step`` records, each one
        version: a district's first import is hundreds of thousands of records, and one write of
        them all would hold the store (a Redis script runs alone) for seconds. A change that fits
        in one step is one version. In a larger one the enrollments removed go first, then the
        records written (a user or class before the enrollments that name it), then the other
        removals (no enrollment names them any more), so every version between is a roster whose
        references hold. Between steps the writer waits so that the steps take at most the
        store's ``bulk_share`` of its time: the API's requests are served in between.

        ``written`` names the records of ``after`` to write; each is read from it (a new dict)
        when its step is written, not all at once (a district's 612,000 cost 160 MB that way)."""

        def records(keys: Sequence[RosterKey]) -> list[RosterRecord]:
            return [(kind, key, getattr(after, kind)[key]) for kind, key in keys]

        step = self.store.roster_step
        if len(written) + len(removed) <= step:  # one version: whole at once
            return self.store.write_roster(tenant, version, records(written), removed)
        order = {kind: k for k, kind in enumerate(KINDS)}
        last = "enrollments"  # the kind that names the others
        phases: list[tuple[list[RosterKey], list[RosterKey]]] = [
            ([], [r for r in removed if r[0] == last]),
            (sorted(written, key=lambda r: order[r[0]]), []),
            ([], sorted((r for r in removed if r[0] != last), key=lambda r: -order[r[0]])),
        ]
        steps = [
            (writes[start : start + step], removals[start : start + step])
            for writes, removals in phases
            for start in range(0, max(len(writes), len(removals)), step)
        ]
        pace = Pace(self.store.bulk_share, slice_s=0.0)
        for done, (writes, removals) in enumerate(steps):
            if done:
                pace()
            if progress is not None:
                progress("roster", done, len(steps))
            version = self.store.write_roster(tenant, version, records(writes), removals)
        return version

    def apply(self, tenant: str, bundle: RosterBundle, progress: Progress | None = None) -> tuple[Roster, Roster]:
        return self.update(tenant, lambda roster: roster.apply(bundle, tenant), progress)

    def forget(self, tenant: str, user_ids: Collection[str]) -> set[str]:
        """Erase users from the roster (learners' deletion): their records and enrollments, in one
        change however many (in steps beyond the store's ``roster_step`` records); returns those that were
        rostered."""
        for _ in range(_RETRIES):
            current = self.current(tenant)
            removed = current.roster.records_of_users(user_ids)
            if not removed:
                return set()
            enrolled = current.roster.enrollments
            rostered = {key if kind == "users" else enrolled.value(key, "user") for kind, key in removed}
            try:
                self._write(tenant, current.version, current.roster, [], removed)
            except VersionConflict:
                continue
            return rostered
        raise VersionConflict(f"the roster of tenant {tenant!r} kept changing; retry")

    def _move_document(self, tenant: str) -> None:
        """Move a roster kept as one document (stores written before) into records, and blank
        the document. Of two workers moving it at once, one writes the records (the other's write
        is refused: the roster is no longer at version 0). The records go in one atomic write, so
        a worker that finds the roster past version 0 knows the move is whole, and only blanks the
        document (a move done before a crash, then an erasure, must not bring the erased back)."""
        found = self.store.get_setting(roster_setting(tenant))
        if found and found[1]:
            with _collector_paused():
                roster = Roster.from_json(orjson.loads(found[1]))
            records = [(kind, key, record) for kind in KINDS for key, record in getattr(roster, kind).items()]
            try:  # one write (not in steps): a move cut off half-way must not look done
                self.store.write_roster(tenant, 0, records, [])
                log.info("tenant %s: the roster document moved into %d records", tenant, len(records))
            except VersionConflict:
                pass  # moved already (or written since)
            self.store.put_setting(roster_setting(tenant), "")
        self._moved.add(tenant)


def _whole(written: Iterable[NumberedRecord], pace: Pace) -> tuple[Roster, RecordNumbers]:
    """A whole roster and its record numbers, from a store's records (decoded a page at a time
    as they are taken), with ``pace``'s rests."""
    rids, kinds, keys = array("q"), bytearray(), list[str]()

    def numbered() -> Iterator[tuple[str, str, dict[str, Any]]]:
        number, kind_of, key_of, at = rids.append, kinds.append, keys.append, _KIND_AT
        for rid, kind, key, record in written:
            key = held_id(kind, key)  # the one string of it the copy holds
            number(rid)
            kind_of(at[kind])
            key_of(key)
            yield kind, key, record

    roster = Roster.from_records(numbered(), pace).indexed(pace)
    return roster, RecordNumbers.build(rids, kinds, keys)


class _Retired:
    """Replaced copies of rosters, taken apart a few thousand objects at a time in a thread of
    their own, resting between (see :class:`Pace`). A district's copy is millions of small
    objects: dropped at once, freeing them held the interpreter for 96 ms in one step, in
    whichever thread let go last, and every request of the worker waited.

    Only what nothing else holds is taken apart: a request may still be reading the copy, and a
    copy shares each kind it did not change, and its membership index, with the next one
    (:meth:`Roster.with_changes`). A piece (a copy, a roster, a kind's records, a dict, a list)
    is emptied only when this thread holds the one reference to it; then nothing else can reach
    what it holds but through references of its own, which are counted when those pieces' turn
    comes. A piece held elsewhere is looked at again every ``poll_s`` for ``wait_s``, then left
    to its last holder (the next copy holds it: it is taken apart when that one is replaced)."""

    def __init__(self, wait_s: float = 60.0, poll_s: float = 0.05):
        self.wait_s, self.poll_s = wait_s, poll_s
        self._queue: queue.SimpleQueue[tuple[CachedRoster, float]] = queue.SimpleQueue()
        self._lock = threading.Condition()
        self._thread: threading.Thread | None = None
        self._busy = False  # a copy put and not yet taken apart as far as it can be now
        self.freed = 0  # the entries of dicts and lists emptied (for tests and probes)

    def put(self, copy: CachedRoster, share: float) -> None:
        """Take ``copy`` apart, its pieces at most ``share`` of the time (the caller drops its
        own reference right after)."""
        with self._lock:
            self._busy = True
            self._queue.put((copy, share))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, daemon=True, name="roster-retire")
                self._thread.start()

    def settle(self, timeout: float = 30.0) -> bool:
        """Wait until every copy put is taken apart as far as it can be now (pieces held elsewhere
        may still be waited for); whether it came to that in ``timeout``."""
        with self._lock:
            return self._lock.wait_for(lambda: not self._busy, timeout)

    def _run(self) -> None:
        # id -> (until when, piece): held elsewhere when looked at, each piece once (two copies put
        # may share one: held here twice, it would look held elsewhere until the first wait ran out)
        waiting: dict[int, tuple[float, Any]] = {}
        pace = Pace()
        while True:
            try:
                item = self._queue.get(timeout=self.poll_s if waiting else None)
            except queue.Empty:
                item = None
            now = time.monotonic()
            todo = [(until, piece) for until, piece in waiting.values() if until >= now]  # others: theirs to free
            waiting.clear()
            if item is not None:
                copy, share = item
                del item
                todo.append((now + self.wait_s, copy))
                del copy
                pace = Pace(share)
            freed = self._take_apart(todo, waiting, pace)
            with self._lock:
                if self._queue.empty():
                    self._busy = False
                    self._lock.notify_all()
            if freed >= _TRIM_AFTER:
                _free_memory_back()

    def _take_apart(self, todo: list[tuple[float, Any]], waiting: dict[int, tuple[float, Any]], pace: Pace) -> int:
        """Take apart the pieces of ``todo`` nothing else holds, and what they hold; those held
        elsewhere go to ``waiting``. Returns how many entries of dicts and lists were emptied."""
        freed = 0
        while todo:
            until, piece = todo.pop()
            if sys.getrefcount(piece) > _ONE_REFERENCE:  # any more than this variable's: someone else's
                waiting.setdefault(id(piece), (until, piece))
                piece = None
                continue
            parts: list[Any] = []
            if isinstance(piece, CachedRoster):
                parts = [piece.roster, piece.numbers]
            elif isinstance(piece, (Roster, Records)):
                parts = piece.parts()
            elif isinstance(piece, RecordNumbers):
                parts = [piece._keys]
            elif type(piece) is tuple:
                parts = list(piece)
            elif type(piece) in (dict, list):  # emptied a few thousand entries at a time
                while piece:
                    n = min(PAUSE_EVERY, len(piece))
                    if type(piece) is dict:
                        for _ in range(n):
                            piece.popitem()
                    else:
                        del piece[-n:]
                    freed += n
                    pace()
            piece = None  # the piece goes: what it held is held by ``parts`` alone, if by nothing else
            until = time.monotonic() + self.wait_s
            todo += [(until, part) for part in parts]
            del parts
        self.freed += freed
        return freed


def _one_reference() -> int:
    """What ``sys.getrefcount`` says of an object that one local variable alone holds, taken as
    :meth:`_Retired._take_apart` takes its pieces (2 on CPython 3.11: the variable and the
    argument; an interpreter that lends its arguments counts fewer)."""
    todo: list[tuple[float, Any]] = [(0.0, [])]
    _, piece = todo.pop()
    return sys.getrefcount(piece)


_ONE_REFERENCE = _one_reference()
_retired = _Retired()
#: entries freed from which the allocator's free memory is given back (a few milliseconds; a
#: district's copy is 1.4 million)
_TRIM_AFTER = 100_000


def _free_memory_back() -> None:
    """Give the C allocator's free memory back to the system, where it is glibc (``malloc_trim``;
    elsewhere nothing). A whole read frees the pages it decoded, and glibc kept them: a worker's
    memory after reading a district's roster was 305 MB more, 165 MB once given back; it takes a
    few milliseconds."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a roster is read: a district's is a million
    small containers, none of them cyclic, and the full passes their creation sets off scan the
    whole heap each time (a 100,000-student roster decoded in 1.2 s with it, 0.2 s without).
    Reads of several tenants may overlap: the collector is on again when the last one ends (if
    it was on when the first began)."""
    with _pauses.lock:
        if _pauses.reads == 0:
            _pauses.was_on = gc.isenabled()
            gc.disable()
        _pauses.reads += 1
    try:
        yield
    finally:
        with _pauses.lock:
            _pauses.reads -= 1
            if _pauses.reads == 0 and _pauses.was_on:
                gc.enable()


class _Pauses:
    """The roster reads under way, and whether the collector was on when the first began."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads = 0
        self.was_on = False


_pauses = _Pauses()


def _differences(before: Roster, after: Roster) -> tuple[list[RosterKey], list[RosterKey]]:
    """The records of ``after`` that are new or differ from ``before``, and those it no longer
    has, as (kind, id)."""
    written: list[RosterKey] = []
    removed: list[RosterKey] = []
    for kind in KINDS:
        old: Records = getattr(before, kind)
        new: Records = getattr(after, kind)
        written += [(kind, key) for key in new if new.differs(old, key)]
        removed += [(kind, key) for key in old if key not in new]
    return written, removed


def changes(before: Roster, after: Roster) -> dict[str, dict[str, int]]:
    """Per kind of record: how many were added, updated and removed."""
    out: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        old: Records = getattr(before, kind)
        new: Records = getattr(after, kind)
        added = sum(1 for k in new if k not in old)
        out[kind] = {
            "added": added,
            "updated": sum(1 for k in new if new.differs(old, k)) - added,
            "removed": sum(1 for k in old if k not in new),
        }
    return out
