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
import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import orjson

from configs import ZPDConfig
from engine.caliper import DEFAULT_ACTIONS
from engine.catalog import Catalog, Item, Modality
from engine.graph import StandardsGraph, UnknownStandardError
from engine.learner import (
    EXPOSURES_SINCE,
    META_VERSION,
    PROGRESS_FIELDS_SINCE,
    GradeError,
    Learner,
    LearnerCore,
    LearnerMeta,
)
from engine.placement import PlacementConfig
from engine.planner.context import Goal, Overrides, PlanContext
from engine.planner.index import PlannerIndex
from engine.planner.playlist import Rotation, plan_rotation
from engine.roster import Roster, RosterBundle
from engine.sources import graph_from_config, load_catalog_source
from engine.xapi import DEFAULT_VERBS
from models.base import ModelFormatError, state_from_bytes, state_to_bytes
from serving import checkpoints
from serving.calibration import MIN_SAMPLES, forget_anchors
from serving.content import Content, Stamp, TenantContent, read_stamp, touched
from serving.evidence import evidence
from serving.groups import GROUP_OWNER, copy_id, group_members, record_groups
from serving.groups import forget_learners as forget_in_groups
from serving.import_records import forget_learners as forget_in_imports
from serving.model_provider import LoadedModel, ModelHolder
from serving.plans import forget_learners, learner_references
from serving.rosters import CachedRoster, Progress, RosterStore, changes
from serving.schemas import (
    AboutNoLearner,
    CaliperOptions,
    EventError,
    ForeignDeployment,
    GoalIn,
    IncomingEvent,
    XapiOptions,
    normalize_event,
)
from serving.stores.base import (
    Commit,
    LearnerRecord,
    LearnerStore,
    StoredEvent,
    StoreError,
    Unaligned,
    VersionConflict,
    content_hash,
    event_time,
)

__all__ = ["ApiError", "Engine", "LearnerService", "LearnerView", "build_engine", "learner_seed"]

MAX_RETRIES = 20
#: students whose roster grades are written together (one store write each)
ROSTER_CHUNK = 500
log = logging.getLogger("zpd.serving")


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

    def core(self, loaded: LoadedModel) -> LearnerCore:
        """The learner core over the current graph, catalog and ``loaded`` model (cheap: no copying)."""
        return LearnerCore(self.index, self.config.planner, loaded.model, loaded.predictions, self.placement)


#: the models tried after the configured one, in order: the bundled model, then graph BKT (which
#: needs no training)
FALLBACK_MODELS = ("bundled", "bkt")


def build_engine(config: ZPDConfig, model_uri: str | None = None) -> Engine:
    """Graph, catalog, planner index and the model (configured URI, then :data:`FALLBACK_MODELS`)."""
    graph = graph_from_config(config.graph)
    catalog = load_catalog_source(config.catalog.source, graph, config.catalog.generate_missing)
    holder = ModelHolder(
        graph,
        catalog,
        config.mlflow.tracking_uri,
        config.model.bkt,
        config.gate,
        max_tenant_models=config.serving.tenant_models_loaded,
    )
    holder.load_first([model_uri or config.serving.model_uri, *FALLBACK_MODELS])
    return Engine(config, graph, catalog, PlannerIndex.build(graph, catalog), holder)


_IDENTIFIERS: dict[int, tuple[StandardsGraph, dict[str, str]]] = {}


def identifiers(graph: StandardsGraph) -> dict[str, str]:
    """CASE identifier -> standard code of ``graph`` (kept for the few graphs a process serves)."""
    hit = _IDENTIFIERS.get(id(graph))
    if hit is None or hit[0] is not graph:
        if len(_IDENTIFIERS) > 64:
            _IDENTIFIERS.clear()
        hit = (graph, {std.identifier: code for code, std in graph.standards.items() if std.identifier})
        _IDENTIFIERS[id(graph)] = hit
    return hit[1]


def learner_seed(tenant: str, learner_id: str) -> int:
    """A learner's own random stream (exploration), stable across workers and restarts."""
    return int(hashlib.sha256(f"{tenant}/{learner_id}".encode()).hexdigest()[:8], 16)


#: the holder of an event id that was voided before it arrived
VOIDED_OWNER = "~voided"


def unaligned_setting(tenant: str) -> str:
    return f"unaligned@{tenant}"


class ServedCore(LearnerCore):
    """A learner core that remembers the loaded model it serves with. ``model_version`` is
    reported (the model, and the tenant's framework when it has one); ``version`` stamps the
    states it folds: that, the digests of the deployment catalog and of the units with a mastery
    check on offer, and the tenant's alignment (see :mod:`serving.content`), whose ``moved``
    items a state stamped with an older one may have folded on other standards."""

    def __init__(
        self,
        *args: Any,
        loaded: LoadedModel,
        version: str,
        catalog_digest: str,
        checkable_digest: str,
        model_version: str | None = None,
        moved: Mapping[str, int] | None = None,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.loaded, self.version = loaded, version
        self.model_version = model_version or version
        self.catalog_digest, self.checkable_digest = catalog_digest, checkable_digest
        self.moved: Mapping[str, int] = moved or {}


@dataclass
class LearnerView:
    """A learner as one request sees it: the stored record, the model that serves it, the core
    over that model, and the typed learner."""

    record: LearnerRecord
    loaded: LoadedModel
    core: ServedCore
    learner: Learner
    #: the state was folded from the event log (another model wrote it, or an older alignment
    #: of items it answered), or stamped anew: kept at once, not redone by every read. Why:
    #: "model", "catalog", "layout" or "restamped" (empty: it was not)
    rebuilt: str = ""
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


def stored_state(learner: Learner, has_events: bool) -> bytes:
    """What a record keeps of a learner's state: nothing until their first event, since until
    then the state is the starting belief their meta (grade, seed) gives, drawn again in
    microseconds on read. A district's roster import gives a hundred thousand students a grade
    before any answer: 9 kB of state each otherwise, in Redis's memory and its append-only file."""
    return state_to_bytes(learner.state) if has_events else b""


class LearnerService:
    def __init__(
        self,
        engine: Engine,
        store: LearnerStore,
        clock: Callable[[], float] = time.time,
        roster_cache: dict[str, CachedRoster] | None = None,
        roster_read_share: float = 1.0,
    ):
        """``roster_cache`` may be shared by the services of one process over the same store (a
        batch worker opens the store per task but reads a district's roster once).
        ``roster_read_share``: the share of the time a read of a whole roster may take (a
        server's worker leaves the rest to its requests, see :mod:`serving.pacing`)."""
        self.engine, self.store, self.clock = engine, store, clock
        self.locks = LearnerLocks()
        self._unaligned_migrated: set[str] = set()  # tenants whose unaligned list is in the store's entries
        self.content = TenantContent(engine, store, engine.config.serving.sync_s)
        self.rosters = RosterStore(store, roster_cache, roster_read_share)
        x = engine.config.xapi
        self.xapi = XapiOptions(
            verbs={**DEFAULT_VERBS, **x.verbs},
            standards_extension=x.standards_extension,
            context_activities=x.context_activities,
        )
        c = engine.config.caliper
        self.caliper = CaliperOptions(actions={**DEFAULT_ACTIONS, **c.actions}, learner_identifier=c.learner_identifier)
        self._caliper_of: dict[str, tuple[int, CaliperOptions]] = {}  # tenant -> (LTI list version, options)
        #: told of every refold of a learner (``"checkpoint"`` or ``"log"``, the answers refolded):
        #: the app counts them in its metrics
        self.on_refold: Callable[[str, int], None] | None = None
        #: told why of every stored state found out of date when read to serve or to fold new
        #: events into (see LearnerView.rebuilt): the app counts them
        self.on_rebuilt: Callable[[str], None] | None = None

    def caliper_options(self, tenant: str) -> CaliperOptions:
        """How ``tenant``'s Caliper events are read: the deployment's options, with the tenant's
        LTI deployments when it registered some (a launch from another one is refused)."""
        version, deployments = self.content.lti_deployments(tenant)
        cached = self._caliper_of.get(tenant)
        if cached is None or cached[0] != version:
            known = frozenset((d["issuer"], d["deployment_id"]) for d in deployments) or None
            cached = self._caliper_of[tenant] = (version, self.caliper.model_copy(update={"deployments": known}))
        return cached[1]

    # ------------------------------------------------------------------ state
    def _view(self, record: LearnerRecord) -> LearnerView:
        """The learner ``record`` holds, as this worker serves it (folded again, or stamped anew,
        when it was folded otherwise: see :attr:`LearnerView.rebuilt`)."""
        view = self._read(record)
        if view.rebuilt and self.on_rebuilt is not None:
            self.on_rebuilt(view.rebuilt)
        return view

    def _read(self, record: LearnerRecord) -> LearnerView:
        core = self.core(record.tenant)
        loaded = core.loaded
        if record.version == 0:  # not stored yet: nothing to rebuild
            learner = core.new(learner_seed(record.tenant, record.learner_id))
            return LearnerView(record, loaded, core, learner, stored=False)
        meta = LearnerMeta.from_json(record.meta)
        if "seed" not in record.meta:  # stored before learners had their own stream
            meta.seed = learner_seed(record.tenant, record.learner_id)
        if not record.state and record.event_count == 0 and "v" in record.meta:
            # no answer yet, so no state kept (see stored_state): the starting belief, drawn again
            return LearnerView(record, loaded, core, core.start(meta))
        # what the state was folded with (None: another model or framework; not read when current)
        current = record.model_version == core.version
        stamp = None if current else read_stamp(record.model_version, core.model_version)
        state = None
        if (current or stamp is not None) and record.state:
            try:
                state = state_from_bytes(record.state)
            except ModelFormatError:
                state = None  # written in an older state format: rebuilt below
        if state is None or "v" not in record.meta:  # another model wrote it, or an older record layout
            learner = self.rebuild(core, record, meta)
            return LearnerView(record, loaded, core, learner, rebuilt="model" if state is None else "layout")
        layout = record.meta["v"]
        older_layout = layout < META_VERSION  # before answers shared by several units, or the days, were counted
        if current and not older_layout:
            return LearnerView(record, loaded, core, Learner(state, meta))
        # Folded before an item it may have answered moved (in the tenant's items or the
        # deployment's catalog), or kept in an older layout: folded again when an answer of its
        # log is affected, else the state (and its checkpoints) hold as they are and are only
        # stamped anew. Either is written back at once (see _load).
        changed = self._changed_since(core, stamp) if stamp is not None else ((), frozenset())
        answers = evidence(self.store.events(record.tenant, record.learner_id))
        if changed is None or touched(answers, *changed, core.units_of):
            return LearnerView(record, loaded, core, core.rebuild(meta, answers), rebuilt="catalog")
        # an older layout lacks the days of every answer, the count of answers on several units,
        # and the exposures among the recent activities
        lacks_days = layout < PROGRESS_FIELDS_SINCE["days"] and bool(answers)
        lacks_exposures = layout < EXPOSURES_SINCE and any(o.exposure for o in answers)
        if older_layout and (lacks_days or lacks_exposures or any(len(core.units_of(o)) > 1 for o in answers)):
            return LearnerView(record, loaded, core, core.rebuild(meta, answers), rebuilt="layout")
        checkpoints.restamp(meta, record.model_version, core.version)
        return LearnerView(record, loaded, core, Learner(state, meta), rebuilt="restamped")

    def _changed_since(self, core: ServedCore, stamp: Stamp) -> tuple[Container[str], frozenset[str]] | None:
        """What folds otherwise under ``core`` than it did under ``stamp``: the items (the
        tenant's items moved since its alignment then, and the deployment catalog's items that
        differ from that catalog's) and the units that gained or lost a mastery check on offer.
        None: anything may, as the stamp names moves this worker has not read yet, or a catalog
        or a set of units the store has no record of."""
        if stamp.alignment > max(core.moved.values(), default=0):
            return None
        items: set[str] | frozenset[str] = {i for i, number in core.moved.items() if number > stamp.alignment}
        if stamp.catalog is not None and stamp.catalog != core.catalog_digest:
            shared = self.content.changed_since(stamp.catalog)
            if shared is None:
                return None
            items = items | shared
        units: frozenset[str] = frozenset()
        if stamp.checkable is not None:
            flipped = self.content.flipped_since(stamp.checkable, core.checkable_digest, core.index.checkable)
            if flipped is None:
                return None
            units = flipped
        return items, units

    def record_stamp(self, core: ServedCore) -> None:
        """Record in the store what ``core``'s stamp names, before a state stamped so is written."""
        self.content.record(core.checkable_digest, core.index.checkable)

    def core(self, tenant: str) -> ServedCore:
        """The learner core over what ``tenant`` sees: its catalog (with its own items) and the
        serving model; its GPS counts the route overhead measured from the tenant's arrivals,
        once there is one (``serving.calibration``)."""
        content = self.content.content(tenant)
        core = self._served(content)
        version, measured = self.content.gps_settings(tenant)
        if measured is None:
            return core
        key = ("core@", tenant)  # one per tenant (a content is shared by tenants without content of their own)
        built = content.built.get(key)
        if built is None or built[0] != version:
            built = content.built[key] = (version, core.with_config(core.config.model_copy(update=measured)))
        return cast(ServedCore, built[1])

    def gps_calibration(self, tenant: str) -> dict[str, Any]:
        """How the tenant's GPS counts a route (``GET /v1/gps``): the overhead and spread its
        core counts, whether they are its own measure or the configured ones, the arrivals the
        last nightly run measured, and the goals that count their own."""
        stored = self.content.gps_measure(tenant) or {}
        config = self.core(tenant).config
        settings = self.content.gps_settings(tenant)[1] or {}
        counts = stored["goals"] if "goal_route" in settings else {}  # the goals measured on their own
        return {
            "route_overhead": config.route_overhead,
            "route_spread": list(config.route_spread),
            "source": "measured" if "route_overhead" in settings else "configured",
            "samples": stored.get("samples"),
            "on_the_way": stored.get("on_the_way"),
            "needed": MIN_SAMPLES,
            "measured_at": stored.get("measured_at"),
            "goals": [
                {
                    "goal": goal.split("+"),
                    "route_overhead": overhead,
                    "route_spread": [low, high],
                    "source": "measured" if goal in counts else "configured",
                    "samples": counts.get(goal, {}).get("samples"),
                }
                for goal, (overhead, low, high) in sorted(config.goal_route.items())
            ],
        }

    def warm_up(self) -> None:
        """Compute the starting state of every grade for the deployment's content before the first
        request (a grade's particle belief takes tens of milliseconds to draw)."""
        core = self._served(self.content.shared())
        for grade in ("PK", "K", *map(str, range(1, 9)), "HS"):
            core.new(0, grade)

    def _served(self, c: Content) -> ServedCore:
        core = c.built.get("core")
        if core is None:  # one per content: its caches (a grade's starting state) outlive a request
            core = c.built.setdefault(
                "core",
                ServedCore(
                    c.index,
                    self.engine.config.planner,
                    c.model,
                    c.predictions,
                    self.engine.placement,
                    loaded=c.loaded,
                    version=c.stamp,
                    model_version=c.version,
                    catalog_digest=c.catalog_digest,
                    checkable_digest=c.checkable_digest,
                    moved=c.moved,
                ),
            )
        return cast(ServedCore, core)

    def graph(self, tenant: str) -> StandardsGraph:
        """The standards framework ``tenant`` sees (its own, or the deployment's)."""
        return self.content.content(tenant).graph

    def resolve_standard(self, tenant: str, code: str, field: str) -> str:
        try:
            return self.graph(tenant).resolve(code)
        except UnknownStandardError as exc:
            raise ApiError(404, "unknown_standard", str(exc), field) from None

    def catalog(self, tenant: str) -> Catalog:
        return self.content.content(tenant).catalog

    def item(self, tenant: str, item_id: str, field: str, offered: bool = False) -> Item:
        """An item of the tenant's catalog (404 naming ``field`` when unknown); ``offered``: one
        that may be given to a learner now (422 when withdrawn)."""
        catalog = self.catalog(tenant)
        if item_id not in catalog:
            raise ApiError(404, "unknown_item", f"unknown item {item_id!r}", field)
        item = catalog[item_id]
        if offered and item.withdrawn:
            raise ApiError(422, "withdrawn_item", f"item {item_id!r} is withdrawn from the tenant's offer", field)
        return item

    def rebuild(self, core: LearnerCore, record: LearnerRecord, meta: LearnerMeta | None = None) -> Learner:
        """The learner folded from its event log with ``core``: exactly what live ingestion gave."""
        meta = meta if meta is not None else LearnerMeta.from_json(record.meta)
        return core.rebuild(meta, evidence(self.store.events(record.tenant, record.learner_id)))

    def load(
        self, tenant: str, learner_id: str, create: bool = False, *, unseen: bool = False, grade: str | None = None
    ) -> LearnerView:
        """The learner's view. An unknown learner is 404 unless ``create`` (a write will store it)
        or ``unseen`` (a read answers for a learner the server has never seen, with ``grade`` as
        the hint of their starting belief; nothing is stored)."""
        return self._load(tenant, learner_id, self.store.get(tenant, learner_id), create, unseen, grade)

    def load_many(
        self,
        tenant: str,
        learner_ids: Sequence[str],
        *,
        unseen: bool = False,
        grades: Mapping[str, str | None] | None = None,
        field: str = "learners",
    ) -> dict[str, LearnerView]:
        """:meth:`load` for several learners in one store read (a class); an unknown learner is a
        404 naming ``field[i]`` unless ``unseen``."""
        ids = list(dict.fromkeys(learner_ids))
        records = self.store.get_many(tenant, ids)
        views = {}
        for i, learner_id in enumerate(ids):
            grade = grades.get(learner_id) if grades else None
            try:
                views[learner_id] = self._load(tenant, learner_id, records.get(learner_id), False, unseen, grade)
            except ApiError as exc:
                raise ApiError(exc.status, exc.code, exc.message, f"{field}[{i}]") from None
        return views

    def _load(
        self,
        tenant: str,
        learner_id: str,
        record: LearnerRecord | None,
        create: bool,
        unseen: bool,
        grade: str | None,
    ) -> LearnerView:
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

    def _prepare(self, view: LearnerView, events: Sequence[StoredEvent] = ()) -> Commit:
        self.record_stamp(view.core)
        rec = view.record
        rec.model_version = view.core.version
        rec.state = stored_state(view.learner, bool(rec.event_count or events))
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

    def goal(self, tenant: str, body: GoalIn | None) -> Goal | None:
        """The goal a request states (its standards resolved in the tenant's framework)."""
        if body is None:
            return None
        codes = self.check_goal(tenant, body.standards)
        return Goal(tuple(codes), body.date.timestamp() if body.date else None)

    def set_goal(self, tenant: str, learner_id: str, goal: Goal | None) -> None:
        """Set (or clear) a learner's goal; an unknown learner is created."""

        def change(view: LearnerView) -> None:
            view.meta.goal = goal

        self.mutate(tenant, learner_id, change, create=True)

    def set_goals(self, tenant: str, learner_ids: Sequence[str], goal: Goal | None) -> None:
        """Set (or clear) one goal for each of these learners (a class's students), in one store
        write per ``ROSTER_CHUNK`` learners; an unknown learner is created."""

        def change(view: LearnerView) -> bool:
            changed = view.meta.goal != goal
            view.meta.goal = goal
            return changed

        ids = list(dict.fromkeys(learner_ids))
        for start in range(0, len(ids), ROSTER_CHUNK):
            self.mutate_many(tenant, ids[start : start + ROSTER_CHUNK], change)

    def mutate_many(
        self,
        tenant: str,
        learner_ids: Sequence[str],
        change: Callable[[LearnerView], bool],
        needed: Callable[[str, LearnerRecord | None], bool] | None = None,
    ) -> int:
        """Apply ``change`` to each of these learners (an unknown one is created) with one store
        read and one write for all: :meth:`mutate` for many. ``change`` returns whether it changed
        anything (a view it did not change is not written); ``needed`` skips, from the stored
        record alone, a learner with nothing to change. A learner written meanwhile by another
        request is redone on its own. Returns how many changed."""
        ids = list(dict.fromkeys(learner_ids))
        with self.locks.hold(tenant, ids):
            records = self.store.get_many(tenant, ids)
            views = {}
            for learner_id in ids:
                record = records.get(learner_id)
                if needed is not None and not needed(learner_id, record):
                    continue
                view = self._view(record or self._new_record(tenant, learner_id))
                if change(view):
                    views[learner_id] = view
            conflicts = self.store.commit_many([self._prepare(view) for view in views.values()])
        for learner_id, conflict in zip(views, conflicts):
            if conflict is not None:
                self.mutate(tenant, learner_id, change, create=True)
        return len(views)

    def delete_learner(self, tenant: str, learner_id: str) -> bool:
        """Erase every trace of a learner (see :meth:`delete_learners`). True if anything existed."""
        return bool(self.delete_learners(tenant, [learner_id]))

    def delete_learners(self, tenant: str, learner_ids: Sequence[str]) -> list[str]:
        """Erase every trace of these learners: the roster imports' messages that quote them
        first, then their roster records (one write for all of them), the stored plans and the
        records of group statements that name them, then the store's records (whose deletion also
        reclaims the bytes the rewrites left). Returns those of whom anything existed, in the
        order given.

        The tenant's open roster imports note them before anything else: an upload acknowledged
        before the erasure may name them, and its worker erases them again once it has written
        what it brings (:meth:`erase_noted`)."""
        ids = list(dict.fromkeys(learner_ids))
        forget_in_imports(self.store, tenant, ids)  # the imports' messages that quote them; noted on open ones
        rostered = self.rosters.forget(tenant, ids)
        self._migrate_unaligned(tenant)  # so the store's deletion finds them among its entries
        references = learner_references(self.store, tenant, ids)  # read once for the three below
        forget_learners(self.store, tenant, ids, references)  # the nightly plans that name them
        forget_in_groups(self.store, tenant, ids, references)  # the records of group statements that name them
        forget_anchors(self.store, tenant, ids, references)  # the GPS's anchors at their schools
        stored = self.store.delete_learners(tenant, ids)
        return [learner_id for learner_id in ids if learner_id in stored or learner_id in rostered]

    def erase_noted(self, tenant: str, learner_ids: Sequence[str]) -> tuple[list[str], dict[str, int]]:
        """Erase again learners an erasure noted on a roster import while it was open, once the
        import has written everything (``RosterImports``): an upload stored before the erasure
        brings back whom it names. Returns those it had brought back, and the roster's counts as
        it now stands."""
        return self.delete_learners(tenant, learner_ids), self.rosters.get(tenant).counts()

    def add_overrides(
        self,
        tenant: str,
        learner_id: str,
        *,
        pin_standards: Sequence[str] = (),
        pin_items: Sequence[str] = (),
        exclude_items: Sequence[str] = (),
        lock_goal: bool | None = None,
    ) -> Overrides:
        """Add a teacher's overrides (codes and item ids already checked) and return them all; an
        unknown learner is created (as a goal creates one: a teacher may pin work before the
        first answer)."""

        def change(view: LearnerView) -> Overrides:
            o = view.meta.overrides
            view.meta.overrides = Overrides(
                tuple(dict.fromkeys([*o.pinned_standards, *pin_standards])),
                tuple(dict.fromkeys([*o.pinned_items, *pin_items])),
                o.excluded_items | frozenset(exclude_items),
                o.goal_locked if lock_goal is None else lock_goal,
            )
            return view.meta.overrides

        return self.mutate(tenant, learner_id, change, create=True)

    def rotation(
        self,
        tenant: str,
        learner_ids: Sequence[str],
        *,
        session_minutes: float = 60,
        block_minutes: float = 20,
        capacities: Mapping[str, int] | None = None,
        group_capacity: int = 6,
        teachers: int = 1,
        modalities: Sequence[Modality] | None = None,
        unseen: bool = False,
        views: Mapping[str, LearnerView] | None = None,
        entry_diagnostic: bool = True,
        blocks_done: int = 0,
    ) -> tuple[Rotation, list[str]]:
        """A class rotation for these learners (read in one go, unless their ``views`` are given)
        and the model versions that planned it. An unknown learner is a 404 naming
        ``learners[i]`` unless ``unseen`` (rostered students the server has not seen yet start
        from their belief). ``entry_diagnostic``: learners nothing places yet start with it.
        ``blocks_done``: the session's first blocks are over, the rest is planned (ValueError
        when that is every block)."""
        if views is None:
            views = self.load_many(tenant, learner_ids, unseen=unseen)
        contexts = {}
        versions = set()
        for learner_id in dict.fromkeys(learner_ids):
            view = views[learner_id]
            versions.add(view.core.model_version)
            contexts[learner_id] = self.context(view, modalities=modalities, entry_diagnostic=entry_diagnostic)
        plan = plan_rotation(
            contexts,
            session_minutes,
            min(block_minutes, session_minutes),  # a block longer than the session is the session
            dict(capacities or {}),
            group_capacity,
            teachers,
            blocks_done=blocks_done,
        )
        return plan, sorted(versions)

    # ------------------------------------------------------------------ rosters
    def import_roster(self, tenant: str, bundle: RosterBundle, progress: Progress | None = None) -> dict[str, Any]:
        """Apply a OneRoster bundle to the tenant's roster and give each rostered student their
        roster grade (the starting belief follows). Learning data is not touched; importing the
        same bundle again changes nothing. ``progress(phase, done, total)`` follows the roster's
        write ("roster") and the grades ("grades", in chunks of students), after the bundle is
        merged into the current roster and checked ("merging")."""
        if progress is not None:
            progress("merging", 0, 1)
        before, after = self.rosters.apply(tenant, bundle, progress)
        grades = {
            user_id: grade
            for user_id in sorted(after.users)
            if after.users.value(user_id, "role") == "student" and (grade := after.grade_of(user_id)) is not None
        }
        graded = 0
        users = list(grades)
        for start in range(0, len(users), ROSTER_CHUNK):
            if progress is not None:
                progress("grades", start, len(users))
            graded += self._grade_chunk(tenant, {u: grades[u] for u in users[start : start + ROSTER_CHUNK]})
        return {
            "counts": after.counts(),
            "changes": changes(before, after),
            "grades_set": graded,
            "notes": list(bundle.notes),
        }

    def _grade_chunk(self, tenant: str, grades: dict[str, str]) -> int:
        """Give each learner of the chunk their roster grade, in one store write for all (a
        district's import is a hundred thousand students). Returns how many grades changed."""
        return self.mutate_many(
            tenant,
            list(grades),
            lambda view: self._set_grade_to(grades[view.record.learner_id], view),
            needed=lambda learner_id, record: record is None or record.meta.get("grade") != grades[learner_id],
        )

    def _set_grade_to(self, grade: str, view: LearnerView) -> bool:
        self.set_grade(view, grade)
        return True

    def scope_of(self, principal: Any) -> frozenset[str] | None:
        """The learners a key may reach: a roster teacher's students for a key linked to her (and
        not an admin's), every learner of the tenant otherwise (None)."""
        return self.students_of(principal.tenant, principal.teacher) if principal.teacher else None

    def students_of(self, tenant: str, teacher: str) -> frozenset[str]:
        """The students of every class ``teacher`` (a roster user id) teaches."""
        return self.rosters.get(tenant).students_of(teacher)

    def roster(self, tenant: str) -> Roster:
        return self.rosters.get(tenant)

    # ------------------------------------------------------------------ events
    def ingest(
        self,
        tenant: str,
        raw_events: Sequence[Any],
        learners: frozenset[str] | None = None,
        where: Callable[[int], str] = "events[{}]".format,
    ) -> dict[str, Any]:
        """Store and fold a batch: native events, xAPI statements or Caliper events (see
        :mod:`engine.xapi`, :mod:`engine.caliper`).

        Event ids are unique per tenant. A repeat with the same content (a retry, with or without
        its timestamp) is a duplicate; an id already used with other content, or for another
        learner, refuses the whole batch before anything is written (409). Answers are folded into
        the learner's state; exposures are folded as the learner's latest activity only (no evidence);
        ignored statements are stored, not folded; an answer on
        an activity the catalog does not know is stored as *unaligned* and folded once an admin
        aligns the activity; a void removes its target from the learner's state. A learner still
        busy after the retries is listed in ``retry`` (its events were not written): the other
        learners' events were, so a 409 never follows a partial write. For the same reason, a
        learner whose repeat conflicts only on a retry (another request stored other content under
        the id meanwhile) is listed in ``retry`` once other learners of the batch were written; a
        resend then gets the 409. With ``learners`` (a teacher's key), an event of anyone else
        refuses the batch (404) before anything is written; a void is anyone's whose target is one
        of her students' (its actor is whoever voids: her own LMS account, usually; see
        :meth:`_route_voids`). ``where(i)`` names the ``i``-th event in errors and warnings (its
        place in the request's body)."""
        now = self.clock()
        caliper = self.caliper_options(tenant)
        events: list[IncomingEvent] = []
        about_no_one: list[dict[str, Any]] = []  # acknowledged, not stored, named in the warnings
        for i, raw in enumerate(raw_events):
            try:
                read = normalize_event(raw, where(i), now, tenant, self.xapi, caliper)
            except AboutNoLearner as exc:
                about_no_one.append({"id": str(raw.get("id")), "field": exc.field, "message": exc.message})
                continue
            except ForeignDeployment as exc:
                raise ApiError(
                    403,
                    "foreign_deployment",
                    f"{exc}; register it with PUT /v1/lti/deployments if it is this tenant's",
                    exc.field,
                ) from None
            except EventError as exc:
                raise ApiError(422, "invalid_event", str(exc), exc.field) from None
            for event in read:
                if (
                    learners is not None
                    and event.learner_id not in learners
                    and not (event.kind == "void" and event.voids)
                ):
                    raise ApiError(
                        404, "unknown_learner", f"learner {event.learner_id!r} is none of your students", where(i)
                    )
                events.append(self._align(tenant, event))
        events, pending_voids = self._route_voids(tenant, events, learners)
        voided_before = self._claim(tenant, events)
        events = [e for e in events if e.id not in voided_before]
        by_learner: dict[str, list[IncomingEvent]] = {}
        for event in events:
            by_learner.setdefault(event.learner_id, []).append(event)
        with self.locks.hold(tenant, by_learner):
            stored, duplicates, busy = self._ingest(tenant, by_learner)
        unaligned = [e for e in stored if e.kind in ("answer", "exposure") and not e.standards]
        if unaligned:
            self._remember_unaligned(tenant, unaligned)
        warnings = about_no_one + [
            {"id": e.id, "field": field, "message": message}
            for learner, group in by_learner.items()
            if learner not in busy
            for e in group
            for field, message in e.warnings
        ]
        if warnings:  # an LRS forwarding shows nobody the answer: the server's log does
            first = warnings[0]
            log.warning(
                "tenant %s: %d warning(s) (an event kept with a part set aside or changed, or a statement about "
                "no learner, not stored), e.g. %s: %s: %s",
                tenant,
                len(warnings),
                first["id"],
                first["field"],
                first["message"],
            )
        return {
            "accepted": len(stored),
            "duplicates": duplicates,
            "learners": len(by_learner),
            "unaligned": len(unaligned),
            "not_evidence": sum(1 for e in events if e.kind in ("exposure", "ignored")),
            "voided": len(voided_before) + pending_voids,
            "retry": sorted(e.id for learner in busy for e in by_learner[learner]),
            "warnings": warnings,
        }

    def _align(self, tenant: str, event: IncomingEvent) -> IncomingEvent:
        """The standards of the event's item. An activity the tenant's catalog does not know is
        registered in it when the statement names standards of the graph (an extension or a
        context activity); otherwise it stays unaligned (no standards)."""
        if event.kind == "void":
            return event
        catalog = self.catalog(tenant)
        if event.item_id not in catalog:
            codes = self.resolve_hints(tenant, event.hints)
            if not codes:
                return event
            record = {
                "id": event.item_id,
                "title": event.item_id,
                "standards": codes,
                "modality": "online_practice",
                "duration_minutes": 10,
                "source": event.source,  # the xAPI statement or Caliper event that named its standards
            }
            self.content.upsert(tenant, [record])
            catalog = self.catalog(tenant)
        return event.model_copy(update={"standards": catalog[event.item_id].standards})

    def resolve_hints(self, tenant: str, hints: Sequence[str]) -> list[str]:
        """The standards of the tenant's graph among the codes, CASE identifiers or IRIs a statement names."""
        graph = self.graph(tenant)
        by_identifier = identifiers(graph)
        found = []
        for hint in hints:
            tail = hint.rstrip("/").rsplit("/", 1)[-1]
            code = by_identifier.get(hint) or by_identifier.get(tail)
            if code is None:
                for candidate in (hint, tail):
                    try:
                        code = graph.resolve(candidate)
                        break
                    except UnknownStandardError:
                        continue
            if code is not None:
                found.append(code)
        return list(dict.fromkeys(found))

    def _route_voids(
        self, tenant: str, events: list[IncomingEvent], learners: frozenset[str] | None = None
    ) -> tuple[list[IncomingEvent], int]:
        """A void goes to the learner whose event it voids; the void of an anonymous group's
        statement goes to each member, as a void of the member's copy (:mod:`serving.groups`). A
        void whose target has not arrived holds the target's id, so the target is voided on
        arrival (a target that arrives meanwhile wins the claim: the void then goes to it). With
        ``learners`` (a teacher's key), a void of anyone else's event, or of one not received
        yet (whose learner nobody knows), refuses the batch (404) before anything is written."""
        voids = [e for e in events if e.kind == "void" and e.voids]
        if not voids:
            return events, 0
        targets = list(dict.fromkeys(v.voids for v in voids if v.voids))
        owners = self.store.event_owners(tenant, targets)
        members: dict[str, list[str]] = {}  # a group statement's: its members, read once

        def members_of(target: str) -> list[str]:
            if target not in members:
                members[target] = group_members(self.store, tenant, target)
            return members[target]

        if learners is not None:
            for target in targets:
                owner = owners.get(target)
                if owner is None:
                    raise ApiError(
                        404,
                        "unknown_event",
                        f"event {target!r} has not been received; a teacher's key voids her students' events "
                        "once they have arrived",
                        "object.id",
                    )
                whose = members_of(target) if owner == GROUP_OWNER else [owner]
                if any(w != VOIDED_OWNER and w not in learners for w in whose):
                    raise ApiError(404, "unknown_event", f"event {target!r} is none of your students'", "object.id")
        unheld = [t for t in targets if t not in owners]
        if unheld:
            owners.update(self.store.claim_event_ids(tenant, dict.fromkeys(unheld, VOIDED_OWNER)))
        routed: list[IncomingEvent] = []
        pending = 0
        for event in events:
            if event.kind == "void" and event.voids:
                target, owner = event.voids, owners[event.voids]
                if owner == VOIDED_OWNER:
                    self.store.claim_event_ids(tenant, {event.id: VOIDED_OWNER})
                    pending += 1
                elif owner == GROUP_OWNER:
                    if not members_of(target):  # every member was erased: nothing is left to void
                        pending += 1
                    routed.extend(
                        event.model_copy(
                            update={"id": copy_id(event.id, m), "learner_id": m, "voids": copy_id(target, m)}
                        )
                        for m in members_of(target)
                    )
                else:
                    routed.append(event.model_copy(update={"learner_id": owner}))
                continue
            routed.append(event)
        return routed, pending

    def _claim(self, tenant: str, events: list[IncomingEvent]) -> set[str]:
        """Claim every event id for its learner (ids are unique per tenant), and the id of each
        anonymous group's statement for :data:`GROUP_OWNER` once its members are recorded; the
        ids voided before they arrived are returned (acknowledged, not stored: a group
        statement's copies when the statement was); an id another learner holds is a 409."""
        claims: dict[str, str] = {}
        groups: dict[str, list[str]] = {}
        for event in events:
            if event.group is not None:
                groups.setdefault(event.group, []).append(event.learner_id)
        for event_id, learner in [*((g, GROUP_OWNER) for g in groups), *((e.id, e.learner_id) for e in events)]:
            other = claims.setdefault(event_id, learner)
            if other != learner:
                raise ApiError(
                    409,
                    "conflicting_event",
                    f"event id {event_id!r} is used for two learners in this batch; event ids are unique per tenant",
                    "id",
                )
        if groups:
            known = self.store.event_owners(tenant, list(groups))
            record_groups(self.store, tenant, {g: m for g, m in groups.items() if known.get(g) in (None, GROUP_OWNER)})
        held = self.store.claim_event_ids(tenant, claims)
        voided = set()
        for event in events:
            holder = held.get(event.id, event.learner_id)
            if event.group is not None and held.get(event.group) == VOIDED_OWNER:
                holder = VOIDED_OWNER
            if holder == VOIDED_OWNER:
                voided.add(event.id)
            elif holder != event.learner_id or (event.group is not None and held.get(event.group) != GROUP_OWNER):
                raise ApiError(
                    409,
                    "conflicting_event",
                    f"event id {event.group or event.id!r} was already used for another learner; "
                    "event ids are unique per tenant",
                    "id",
                )
        return voided

    def _ingest(
        self, tenant: str, by_learner: dict[str, list[IncomingEvent]]
    ) -> tuple[list[IncomingEvent], int, set[str]]:
        """Fold and store the batch's new events: returns those stored, the number of repeats
        and the learners left busy."""
        # Every learner is checked for conflicting repeats before anything is written.
        pending, duplicates = self._fresh_events(tenant, by_learner)
        accepted: list[IncomingEvent] = []
        conflicting = set[str]()
        for _ in range(MAX_RETRIES):
            if not pending:
                break
            records = self.store.get_many(tenant, list(pending))
            # read after the records: an event sent without a time is received after everything
            # the read saw (a request that waited for a learner's lock, or lost a race to another
            # worker, folds its events on rather than before what was written meanwhile)
            now = self.clock()
            commits = [
                self._fold_events(self._view(records.get(learner) or self._new_record(tenant, learner)), fresh, now)
                for learner, fresh in pending.items()
            ]
            conflicts = self.store.commit_many(commits)
            retry = {}
            for (learner, fresh), conflict in zip(pending.items(), conflicts):
                if conflict is None:
                    accepted.extend(event for event, _ in fresh)
                else:  # another request wrote this learner meanwhile: re-read it and fold again
                    retry[learner] = by_learner[learner]
            if retry:
                # nothing written yet: a conflict refuses the batch whole (409); otherwise the
                # conflicting learners are left out and listed in ``retry`` with the busy ones
                pending, again = self._fresh_events(tenant, retry, None if not accepted else conflicting)
                duplicates.update(again)
            else:
                pending = {}
        return accepted, sum(duplicates.values()), set(pending) | conflicting

    def _fresh_events(
        self, tenant: str, by_learner: dict[str, list[IncomingEvent]], conflicting: set[str] | None = None
    ) -> tuple[dict[str, list[tuple[IncomingEvent, str]]], dict[str, int]]:
        """Per learner, the events not stored yet (with their content hash) and the number of
        identical repeats; a repeat with different content is a 409, or, given ``conflicting``,
        adds its learner there (none of that learner's events is fresh)."""
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
                elif conflicting is not None:
                    conflicting.add(learner)
                    duplicates[learner], new = 0, []
                    break
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
        """The learner's commit with its new events, received at ``now``, folded in time order
        (:meth:`fold`)."""
        stored = [
            StoredEvent(
                e.id,
                e.item_id,
                e.standards,
                e.correct,
                e.timestamp if e.timestamp_given else now,  # received now
                now,
                digest,
                e.source,
                kind=e.kind,
                voids=e.voids,
            )
            for e, digest in fresh
        ]  # logged as they arrived; :meth:`fold` counts them as they happened
        self.fold(view, stored)
        return self._prepare(view, stored)

    def fold(self, view: LearnerView, events: Sequence[StoredEvent]) -> None:
        """Fold a learner's new events (not stored yet) through the learner core. Answers that
        come after everything folded are folded on; otherwise (a void, or an answer older than
        the latest one folded) the learner is refolded with them in time order, from its newest
        checkpoint before them (:mod:`serving.checkpoints`) or else from its whole log: in every
        case the state is what a replay of the log gives."""
        new = evidence(events)
        if any(e.kind == "void" for e in events) or not view.meta.folds_after(o.time for o in new):
            tenant, learner_id = view.record.tenant, view.record.learner_id
            start = checkpoints.oldest(view.meta, view.core.version, events)
            restored = None
            if start is not None:  # only the log after the checkpoint is read
                tail = self.store.events(tenant, learner_id, start)
                restored = checkpoints.restore(view.meta, view.core.version, tail, start, events)
            if restored is None:
                answers = evidence([*self.store.events(tenant, learner_id), *events])
                view.learner = view.core.rebuild(view.meta, answers)
                source = "log"
            else:  # from the newest checkpoint before the late answers: what the rebuild gives
                learner, rest = restored
                answers = evidence(rest)
                view.learner = view.core.resume(learner, answers)
                source = "checkpoint"
            if self.on_refold is not None:
                self.on_refold(source, len(answers))
            late = True
        else:
            for obs in new:
                view.core.observe(view.learner, obs)
            late = False
        checkpoints.take(view.learner, view.record.event_count + len(events), view.core.version, late)

    def _remember_unaligned(self, tenant: str, events: Sequence[IncomingEvent]) -> None:
        """Note the activities that had no alignment (``GET /v1/events/unaligned``): per activity
        and learner, the events stored, so the learners are refolded once an admin aligns it."""
        self._migrate_unaligned(tenant)
        now = self.clock()
        seen: dict[tuple[str, str], list[float]] = {}
        for e in events:
            entry = seen.setdefault((e.item_id, e.learner_id), [0, math.inf])
            entry[0] += 1
            entry[1] = min(entry[1], event_time(e.timestamp, now))
        self.store.note_unaligned(tenant, [(item, learner, int(n), t) for (item, learner), (n, t) in seen.items()])

    def _migrate_unaligned(self, tenant: str) -> None:
        """Move a list of unaligned activities kept in the tenant's setting (one JSON document,
        as stores written before per-activity entries held it) into the store's entries, counting
        each learner's events from their log. The setting is blanked first, so of two workers
        only one moves it."""
        if tenant in self._unaligned_migrated:
            return
        while (current := self.store.get_setting(unaligned_setting(tenant))) is not None and current[1] != "{}":
            try:
                self.store.put_setting(unaligned_setting(tenant), "{}", expected_version=current[0])
            except VersionConflict:
                continue
            listed: dict[str, Any] = orjson.loads(current[1])
            seen = []
            for learner in sorted({learner for entry in listed.values() for learner in entry["learners"]}):
                counts = Counter(e.item_id for e in self.store.events(tenant, learner) if e.item_id in listed)
                seen += [(item, learner, n, float(listed[item]["first_seen"])) for item, n in counts.items()]
            self.store.note_unaligned(tenant, seen)
            log.info("tenant %s: %d unaligned activities moved to per-activity entries", tenant, len(listed))
        self._unaligned_migrated.add(tenant)

    def unaligned(self, tenant: str) -> list[Unaligned]:
        """The activities answered that the tenant's catalog does not align yet."""
        self._migrate_unaligned(tenant)
        return self.store.unaligned(tenant)

    def realign(self, tenant: str, item_ids: Sequence[str]) -> int:
        """Rebuild the learners whose events were on activities that are now in the catalog; those
        activities leave the unaligned list. Returns the learners rebuilt."""
        self._migrate_unaligned(tenant)
        catalog = self.catalog(tenant)
        aligned = [i for i in dict.fromkeys(item_ids) if i in catalog]
        learners = self.store.unaligned_learners(tenant, aligned)
        for learner_id in learners:
            self.mutate(tenant, learner_id, lambda view: self._restore(view))
        self.store.drop_unaligned(tenant, aligned)
        return len(learners)

    def _restore(self, view: LearnerView) -> None:
        """The learner folded again from the log: an answer on an activity aligned since it was
        received counts from now on, with the catalog's standards (see ``LearnerCore.observe``)."""
        view.learner = self.rebuild(view.core, view.record, view.meta)

    # ------------------------------------------------------------------ planning
    def context(
        self,
        view: LearnerView,
        *,
        goal: Goal | None = None,
        modalities: Sequence[str | Modality] | None = None,
        entry_diagnostic: bool = True,
    ) -> PlanContext:
        return view.core.context(
            view.learner,
            self.clock(),
            goal=goal,
            modalities=self.modalities(modalities),
            entry_diagnostic=entry_diagnostic,
        )

    @staticmethod
    def modalities(names: Sequence[str | Modality] | None) -> list[Modality] | None:
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

    def check_goal(self, tenant: str, standards: Sequence[str], field: str = "goal.standards") -> list[str]:
        return [self.resolve_standard(tenant, c, f"{field}[{i}]") for i, c in enumerate(standards)]
