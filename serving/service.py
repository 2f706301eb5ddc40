"""What the API does, independent of HTTP: ingest events, plan, report, erase.

Everything that happens to a learner is done by the learner core (:mod:`engine.learner`); this
module loads and stores it. A learner's record holds the model state and the typed
:class:`engine.learner.LearnerMeta` (progress, goal, overrides, interests, grade, starting belief,
placement). Every change goes through one optimistic-concurrency commit (retried on a version
conflict), together with the events that caused it, so state and event log never drift. A
record written by another model version is rebuilt from the event log on first use.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from configs import ZPDConfig
from engine.catalog import Catalog, Item, Modality
from engine.graph import StandardsGraph, UnknownStandardError
from engine.learner import GradeError, Learner, LearnerCore, LearnerMeta, Observation
from engine.placement import PlacementConfig
from engine.planner.context import Goal, PlanContext
from engine.planner.index import PlannerIndex
from models.base import ModelFormatError, state_from_bytes, state_to_bytes
from serving.model_provider import LoadedModel, ModelHolder
from serving.schemas import EventError, IncomingEvent, normalize_event
from serving.stores.base import (
    Commit,
    LearnerRecord,
    LearnerStore,
    StoredEvent,
    StoreError,
    VersionConflict,
    content_hash,
)

__all__ = ["ApiError", "Engine", "LearnerService", "LearnerView", "learner_seed", "observation"]

MAX_RETRIES = 20


class ApiError(Exception):
    """An error the API reports as JSON: HTTP status, a code, a message and the field at fault."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        self.status, self.code, self.message, self.field = status, code, message, field
        super().__init__(message)


@dataclass
class Engine:
    """Graph, catalog, planner index and model, loaded once at start-up (swapped under a lock)."""

    config: ZPDConfig
    graph: StandardsGraph
    catalog: Catalog
    index: PlannerIndex
    models: ModelHolder
    placement: PlacementConfig = PlacementConfig()
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve_standard(self, code: str, field: str) -> str:
        try:
            return self.graph.resolve(code)
        except UnknownStandardError as exc:
            raise ApiError(404, "unknown_standard", str(exc), field) from None

    def item(self, item_id: str, field: str) -> Item:
        if item_id not in self.catalog:
            raise ApiError(404, "unknown_item", f"unknown item {item_id!r}", field)
        return self.catalog[item_id]

    def core(self, loaded: LoadedModel) -> LearnerCore:
        """The learner core over the current graph, catalog and ``loaded`` model (cheap: no copying)."""
        return LearnerCore(
            self.index, self.config.planner, loaded.model, loaded.predict_all, loaded.item_pos, self.placement
        )


def learner_seed(tenant: str, learner_id: str) -> int:
    """A learner's own random stream (exploration), stable across workers and restarts."""
    return int(hashlib.sha256(f"{tenant}/{learner_id}".encode()).hexdigest()[:8], 16)


def observation(event: StoredEvent) -> Observation:
    return Observation(event.item_id, event.standards, event.correct, event.timestamp, event.source, event.unit)


@dataclass
class LearnerView:
    """A learner as one request sees it: the stored record, the model that serves it, the core
    over that model, and the typed learner."""

    record: LearnerRecord
    loaded: LoadedModel
    core: LearnerCore
    learner: Learner
    rebuilt: bool = False  # the state was folded from the event log (another model wrote it)
    stored: bool = True  # False: a learner the server has not seen (nothing is written for a read)

    @property
    def meta(self) -> LearnerMeta:
        return self.learner.meta


class LearnerLocks:
    """Striped in-process locks: a worker's concurrent requests on the same learner take turns
    instead of racing each other into version conflicts and refolding (N overlapping batches would
    cost O(N^2) folds). Writers in other processes are still caught by the store's version check."""

    def __init__(self, stripes: int = 4096):
        self._locks = [threading.RLock() for _ in range(stripes)]

    @contextmanager
    def hold(self, tenant: str, learners: Iterable[str]) -> Iterator[None]:
        stripes = sorted({hash((tenant, learner)) % len(self._locks) for learner in learners})
        for i in stripes:  # one global order: no deadlock
            self._locks[i].acquire()
        try:
            yield
        finally:
            for i in reversed(stripes):
                self._locks[i].release()


class LearnerService:
    def __init__(self, engine: Engine, store: LearnerStore, clock: Callable[[], float] = time.time):
        self.engine, self.store, self.clock = engine, store, clock
        self.locks = LearnerLocks()

    # ------------------------------------------------------------------ state
    def _view(self, record: LearnerRecord) -> LearnerView:
        loaded = self.engine.models.current
        assert loaded is not None  # an engine's holder always has a model (build_engine loads one)
        core = self.engine.core(loaded)
        if record.version == 0:  # not stored yet: nothing to rebuild
            learner = core.new(learner_seed(record.tenant, record.learner_id))
            return LearnerView(record, loaded, core, learner, stored=False)
        meta = LearnerMeta.from_json(record.meta)
        if "seed" not in record.meta:  # stored before learners had their own stream
            meta.seed = learner_seed(record.tenant, record.learner_id)
        state = None
        if record.model_version == loaded.version and record.state:
            try:
                state = state_from_bytes(record.state)
            except ModelFormatError:
                state = None  # written in an older state format: rebuilt below
        if state is None or "v" not in record.meta:  # another model wrote it, or an older record layout
            learner = self.rebuild(core, record, meta)
            return LearnerView(record, loaded, core, learner, rebuilt=True)
        return LearnerView(record, loaded, core, Learner(state, meta))

    def rebuild(self, core: LearnerCore, record: LearnerRecord, meta: LearnerMeta | None = None) -> Learner:
        """The learner folded from its event log with ``core``: exactly what live ingestion gave."""
        meta = meta if meta is not None else LearnerMeta.from_json(record.meta)
        return core.rebuild(meta, (observation(e) for e in self.store.events(record.tenant, record.learner_id)))

    def load(
        self, tenant: str, learner_id: str, create: bool = False, *, unseen: bool = False, grade: str | None = None
    ) -> LearnerView:
        """The learner's view. An unknown learner is 404 unless ``create`` (a write will store it)
        or ``unseen`` (a read answers for a learner the server has never seen, with ``grade`` as
        the hint of their starting belief; nothing is stored)."""
        record = self.store.get(tenant, learner_id)
        if record is None:
            if not (create or unseen):
                raise ApiError(404, "unknown_learner", f"unknown learner {learner_id!r}", "learner_id")
            record = self._new_record(tenant, learner_id)
        view = self._view(record)
        if not view.stored and grade is not None:
            self.set_grade(view, grade)
        if view.rebuilt:
            # Keep the rebuilt state: otherwise every read would fold the whole event log again
            # until the learner's next event (after a model promotion, for every learner).
            try:
                self._commit(view)
            except StoreError:  # written meanwhile (the writer stored its own state), or read-only now
                pass
        return view

    def set_grade(self, view: LearnerView, grade: str | None) -> None:
        """Set the learner's grade; with evidence already folded, the learner is rebuilt from the
        event log so the starting belief applies from the start (as a replay would)."""
        try:
            applied = view.core.set_grade(view.learner, grade)
        except GradeError as exc:
            raise ApiError(422, "invalid_grade", str(exc), "grade") from None
        if not applied:
            view.learner = self.rebuild(view.core, view.record, view.meta)

    @staticmethod
    def _prepare(view: LearnerView, events: Sequence[StoredEvent] = ()) -> Commit:
        rec = view.record
        rec.model_version = view.loaded.version
        rec.state = state_to_bytes(view.learner.state)
        rec.meta = view.meta.to_json()
        return Commit(rec, rec.version, events)

    def _commit(self, view: LearnerView, events: Sequence[StoredEvent] = ()) -> None:
        c = self._prepare(view, events)
        self.store.commit(c.record, c.expected_version, c.events)

    def mutate(self, tenant: str, learner_id: str, change: Callable[[LearnerView], Any], create: bool = False) -> Any:
        """Apply ``change`` to a fresh view and commit, retrying on concurrent writes."""
        with self.locks.hold(tenant, [learner_id]):
            for _ in range(MAX_RETRIES):
                view = self.load(tenant, learner_id, create)
                result = change(view)
                try:
                    self._commit(view)
                    return result
                except VersionConflict:
                    continue
        raise ApiError(409, "busy", f"learner {learner_id!r} is being updated concurrently; retry")

    def mutate_with_event(
        self, tenant: str, learner_id: str, change: Callable[[LearnerView], tuple[Any, StoredEvent]]
    ) -> Any:
        """Like :meth:`mutate` for a change that also appends one event to the log."""
        with self.locks.hold(tenant, [learner_id]):
            for _ in range(MAX_RETRIES):
                view = self.load(tenant, learner_id)
                result, event = change(view)
                try:
                    self._commit(view, [event])
                    return result
                except VersionConflict:
                    continue
        raise ApiError(409, "busy", f"learner {learner_id!r} is being updated concurrently; retry")

    # ------------------------------------------------------------------ events
    def ingest(self, tenant: str, raw_events: Sequence[Any]) -> dict[str, int]:
        now = self.clock()
        events: list[IncomingEvent] = []
        for i, raw in enumerate(raw_events):
            try:
                event = normalize_event(raw, f"events[{i}]", now)
            except EventError as exc:
                raise ApiError(422, "invalid_event", str(exc), exc.field) from None
            item = self.engine.item(event.item_id, f"events[{i}].item_id")
            events.append(event.model_copy(update={"standards": item.standards}))
        by_learner: dict[str, list[IncomingEvent]] = {}
        for event in events:
            by_learner.setdefault(event.learner_id, []).append(event)
        with self.locks.hold(tenant, by_learner):
            accepted, duplicates = self._ingest(tenant, by_learner, now)
        return {"accepted": accepted, "duplicates": duplicates, "learners": len(by_learner)}

    def _ingest(self, tenant: str, by_learner: dict[str, list[IncomingEvent]], now: float) -> tuple[int, int]:
        # Every learner is checked for conflicting repeats before anything is written.
        pending, duplicates = self._fresh_events(tenant, by_learner)
        accepted = 0
        for _ in range(MAX_RETRIES):
            if not pending:
                break
            records = self.store.get_many(tenant, list(pending))
            commits = [
                self._fold_events(self._view(records.get(learner) or self._new_record(tenant, learner)), fresh, now)
                for learner, fresh in pending.items()
            ]
            conflicts = self.store.commit_many(commits)
            retry = {}
            for (learner, fresh), conflict in zip(pending.items(), conflicts):
                if conflict is None:
                    accepted += len(fresh)
                else:  # another request wrote this learner meanwhile: re-read it and fold again
                    retry[learner] = by_learner[learner]
            if retry:
                pending, again = self._fresh_events(tenant, retry)
                duplicates.update(again)
            else:
                pending = {}
        if pending:
            busy = ", ".join(repr(learner) for learner in sorted(pending)[:5])
            raise ApiError(
                409,
                "busy",
                f"learner(s) {busy} are being updated concurrently; the events of the other "
                f"learners in this batch were accepted; send the batch again",
                "learner_id",
            )
        return accepted, sum(duplicates.values())

    def _fresh_events(
        self, tenant: str, by_learner: dict[str, list[IncomingEvent]]
    ) -> tuple[dict[str, list[tuple[IncomingEvent, str]]], dict[str, int]]:
        """Per learner, the events not stored yet (with their content hash) and the number of
        identical repeats; a repeat with different content is a 409."""
        stored = self.store.event_hashes_many(
            tenant, {learner: [e.id for e in group] for learner, group in by_learner.items()}
        )
        fresh: dict[str, list[tuple[IncomingEvent, str]]] = {}
        duplicates: dict[str, int] = {}
        for learner, group in by_learner.items():
            seen: dict[str, str] = {}  # event id -> content hash, within this batch
            known, new = stored.get(learner, {}), []
            duplicates[learner] = 0
            for event in group:
                digest = content_hash(event.content())
                previous = known.get(event.id, seen.get(event.id))
                if previous is None:
                    seen[event.id] = digest
                    new.append((event, digest))
                elif previous == digest:
                    duplicates[learner] += 1
                else:
                    raise ApiError(
                        409,
                        "conflicting_event",
                        f"event {event.id!r} of learner {learner!r} was already received with different content",
                        "id",
                    )
            if new:
                fresh[learner] = new
        return fresh, duplicates

    @staticmethod
    def _new_record(tenant: str, learner_id: str) -> LearnerRecord:
        return LearnerRecord(tenant, learner_id)

    def _fold_events(self, view: LearnerView, fresh: list[tuple[IncomingEvent, str]], now: float) -> Commit:
        """Fold the learner's new events (in time order) through the learner core."""
        catalog = self.engine.catalog
        stored = []
        for event, digest in sorted(fresh, key=lambda p: p[0].timestamp):
            item = catalog[event.item_id]
            view.core.observe(
                view.learner, Observation(event.item_id, item.standards, event.correct, event.timestamp, event.source)
            )
            stored.append(
                StoredEvent(
                    event.id, event.item_id, item.standards, event.correct, event.timestamp, now, digest, event.source
                )
            )
        return self._prepare(view, stored)

    # ------------------------------------------------------------------ planning
    def context(
        self, view: LearnerView, *, goal: Goal | None = None, modalities: Sequence[str] | None = None
    ) -> PlanContext:
        return view.core.context(view.learner, self.clock(), goal=goal, modalities=self.modalities(modalities))

    @staticmethod
    def modalities(names: Sequence[str] | None) -> list[Modality] | None:
        if names is None:
            return None
        try:
            return [Modality(m) for m in names]
        except ValueError:
            raise ApiError(
                422,
                "invalid_modality",
                f"modalities must be among {', '.join(m.value for m in Modality)}",
                "modalities",
            ) from None

    def check_goal(self, standards: Sequence[str], field: str = "goal.standards") -> list[str]:
        return [self.engine.resolve_standard(c, f"{field}[{i}]") for i, c in enumerate(standards)]
