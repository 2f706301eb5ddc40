"""What the API does, independent of HTTP: ingest events, plan, report, erase.

A learner's record holds the model state, the planner's progress record, goal, overrides,
interests and placement. Every change goes through one optimistic-concurrency commit (retried on
a version conflict), together with the events that caused it, so state and event log never drift.
A record written by another model version is rebuilt from the event log on first use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from configs import ZPDConfig
from engine.catalog import Catalog, Item, Modality
from engine.graph import StandardsGraph, UnknownStandardError, grade_number
from engine.placement import PlacementConfig
from engine.planner.index import PlannerIndex
from engine.planner.planner import Goal, Overrides, PlanContext
from engine.planner.progress import Attempt, Progress, mark_mastered, record_attempt
from models.base import Event, ModelFormatError, state_from_bytes, state_to_bytes
from serving.model_provider import LoadedModel, ModelHolder
from serving.schemas import EventError, IncomingEvent, normalize_event
from serving.stores.base import Commit, LearnerRecord, LearnerStore, StoreError, StoredEvent, VersionConflict, content_hash

__all__ = ["ApiError", "Engine", "LearnerService", "LearnerView"]

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


@dataclass
class LearnerView:
    record: LearnerRecord
    loaded: LoadedModel
    state: dict[str, np.ndarray]
    progress: Progress
    probs: np.ndarray | None = None
    rebuilt: bool = False  # the state was folded from the event log (another model wrote it)

    @property
    def meta(self) -> dict[str, Any]:
        return self.record.meta

    def goal(self) -> Goal | None:
        g = self.meta.get("goal")
        return Goal(tuple(g["standards"]), g.get("date")) if g else None

    def overrides(self) -> Overrides:
        o = self.meta.get("overrides") or {}
        return Overrides(tuple(o.get("pin_standards", ())), tuple(o.get("pin_items", ())),
                         frozenset(o.get("exclude_items", ())), bool(o.get("lock_goal", False)))


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
        model = loaded.model
        state = None
        if record.model_version == loaded.version and record.state:
            try:
                state = state_from_bytes(record.state)
            except ModelFormatError:
                state = None  # written in an older state format: rebuilt below
        if state is None and record.version == 0:  # not stored yet: nothing to rebuild
            state = model.init_state()
        rebuilt = state is None
        if rebuilt:  # written by another model (or unreadable): rebuild from the event log
            state = self.rebuild_state(model, record)
        progress = Progress.from_json(record.meta.get("progress") or {})
        return LearnerView(record, loaded, state, progress, rebuilt=rebuilt)

    def rebuild_state(self, model, record: LearnerRecord) -> dict[str, np.ndarray]:
        return self.rebuild(model, record)[0]

    def rebuild(self, model, record: LearnerRecord) -> tuple[dict[str, np.ndarray], Progress]:
        """Fold the learner's event log into a fresh state and progress record, exactly as live:
        placement answers only move the model, and the placement's priors and mastered
        standards are applied right after the answer that finished it."""
        placed = record.meta.get("placement_result")
        cfg, index, catalog = self.engine.config.planner, self.engine.index, self.engine.catalog
        state, progress = model.init_state(), Progress()
        for e in self.store.events(record.tenant, record.learner_id):
            state = model.update(state, Event(e.item_id, e.standards, e.correct, e.timestamp))
            if e.source != "placement":
                check = e.item_id in catalog and catalog[e.item_id].mastery_check
                record_attempt(progress, Attempt(e.item_id, index.item_units.get(e.item_id, ()), e.correct,
                                                 e.timestamp, check), model.mastery(state), index.prereqs, cfg)
            if placed and e.id == placed.get("after_event"):
                mark_mastered(progress, placed["mastered"], e.timestamp)
                if hasattr(model, "state_with_priors"):
                    state = model.state_with_priors(placed["mastery"], state)
        return state, progress

    def load(self, tenant: str, learner_id: str, create: bool = False) -> LearnerView:
        record = self.store.get(tenant, learner_id)
        if record is None:
            if not create:
                raise ApiError(404, "unknown_learner", f"unknown learner {learner_id!r}", "learner_id")
            record = self._new_record(tenant, learner_id)
        view = self._view(record)
        if view.rebuilt:
            # Keep the rebuilt state: otherwise every read would fold the whole event log again
            # until the learner's next event (after a model promotion, for every learner).
            try:
                self._commit(view)
            except StoreError:  # written meanwhile (the writer stored its own state), or read-only now
                pass
        return view

    @staticmethod
    def _prepare(view: LearnerView, events: Sequence[StoredEvent] = ()) -> Commit:
        rec = view.record
        rec.model_version = view.loaded.version
        rec.state = state_to_bytes(view.state)
        rec.meta["progress"] = view.progress.to_json()
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

    def mutate_with_event(self, tenant: str, learner_id: str,
                          change: Callable[[LearnerView], tuple[Any, StoredEvent]]) -> Any:
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
            commits = [self._fold_events(self._view(records.get(learner) or self._new_record(tenant, learner)),
                                         fresh, now)
                       for learner, fresh in pending.items()]
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
            raise ApiError(409, "busy", f"learner(s) {busy} are being updated concurrently; the events of the other "
                           f"learners in this batch were accepted; send the batch again", "learner_id")
        return accepted, sum(duplicates.values())

    def _fresh_events(self, tenant: str, by_learner: dict[str, list[IncomingEvent]]
                      ) -> tuple[dict[str, list[tuple[IncomingEvent, str]]], dict[str, int]]:
        """Per learner, the events not stored yet (with their content hash) and the number of
        identical repeats; a repeat with different content is a 409."""
        stored = self.store.event_hashes_many(tenant, {learner: [e.id for e in group] for learner, group in by_learner.items()})
        fresh: dict[str, list[tuple[IncomingEvent, str]]] = {}
        duplicates: dict[str, int] = {}
        for learner, group in by_learner.items():
            known, seen, new = stored.get(learner, {}), {}, []
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
                    raise ApiError(409, "conflicting_event",
                                   f"event {event.id!r} of learner {learner!r} was already received with different "
                                   "content", "id")
            if new:
                fresh[learner] = new
        return fresh, duplicates

    @staticmethod
    def _new_record(tenant: str, learner_id: str) -> LearnerRecord:
        return LearnerRecord(tenant, learner_id, meta={"progress": {}, "interests": []})

    def _fold_events(self, view: LearnerView, fresh: list[tuple[IncomingEvent, str]], now: float) -> Commit:
        """Fold the learner's new events (in time order) into model state and progress."""
        cfg, index, catalog = self.engine.config.planner, self.engine.index, self.engine.catalog
        model = view.loaded.model
        stored = []
        for event, digest in sorted(fresh, key=lambda p: p[0].timestamp):
            item = catalog[event.item_id]
            view.state = model.update(view.state, Event(event.item_id, item.standards, event.correct, event.timestamp))
            record_attempt(view.progress, Attempt(event.item_id, index.item_units.get(event.item_id, ()),
                                                  event.correct, event.timestamp, item.mastery_check),
                           model.mastery(view.state), index.prereqs, cfg)
            stored.append(StoredEvent(event.id, event.item_id, item.standards, event.correct, event.timestamp,
                                      now, digest, event.source))
        return self._prepare(view, stored)

    # ------------------------------------------------------------------ planning
    def context(self, view: LearnerView, *, goal: Goal | None = None, modalities: Sequence[str] | None = None,
                seed: int | None = None) -> PlanContext:
        loaded = view.loaded
        probs = loaded.predict_all(view.state)
        pos = loaded.item_pos

        def predict(items: Sequence[Item]) -> np.ndarray:
            return probs[[pos[i.id] for i in items]]

        mods = None
        if modalities is not None:
            try:
                mods = frozenset(Modality(m) for m in modalities)
            except ValueError:
                raise ApiError(422, "invalid_modality", f"modalities must be among {', '.join(m.value for m in Modality)}",
                               "modalities") from None
        rng = np.random.default_rng(seed if seed is not None else (view.record.event_count * 7919 + 17))
        return PlanContext(self.engine.index, self.engine.config.planner, loaded.model.mastery(view.state), predict,
                           view.progress, now=self.clock(), goal=goal or view.goal(), overrides=view.overrides(),
                           interests=tuple(view.meta.get("interests", ())), modalities=mods,
                           level=self.level(view), rng=rng)

    def level(self, view: LearnerView) -> float | None:
        """The learner's grade level: the stated grade, else the placement band, else the median
        grade of the standards practised so far."""
        graph = self.engine.graph
        for label in (view.meta.get("grade"), (view.meta.get("placement_result") or {}).get("grade_band")):
            number = grade_number(label) if label else None
            if number is not None:
                return float(number)
        grades = sorted(graph.standards[u].grade_num for u, p in view.progress.units.items()
                        if u in graph.standards and p.attempts and graph.standards[u].grade_num is not None)
        return float(grades[len(grades) // 2]) if grades else None

    def check_goal(self, standards: Sequence[str], field: str = "goal.standards") -> list[str]:
        return [self.engine.resolve_standard(c, f"{field}[{i}]") for i, c in enumerate(standards)]
