"""What each tenant sees: the deployment's framework and catalog, with the tenant's own layered over.

A tenant's items (``PUT /v1/items``, or activities registered from xAPI statements that name
their standard) are visible and recommendable to that tenant only, and a tenant may import its own
CASE framework (``POST /v1/standards/import``); the bundled Coherence Map and catalog stay the
shared default. Both are versioned store settings (``catalog@TENANT``, ``framework@TENANT``), so
every worker and replica serves the same: a worker re-reads a tenant's versions at most every
``[serving] sync_s`` seconds and right after its own changes.

:meth:`TenantContent.content` builds (and caches per tenant, versions and model) what a tenant
sees: its graph, catalog, planner index and the predictions over the catalog of the model that
serves it (the deployment's, or the tenant's own: :meth:`ModelHolder.serving`).
Over the shared framework that is the deployment's encoded catalog plus the tenant's items
encoded once; over a framework of its own, the model is rebuilt for that graph
(:func:`models.registry.for_graph`: graph BKT over its standards) and the catalog is the shared
items aligned to it plus the tenant's.

An item moved to other standards (``PUT /v1/items`` of an item the tenant saw on other ones) is
numbered in the stored record (:data:`MOVED`: the tenant's how-manieth move it was), and the
tenant's *alignment* is the newest number. A learner's state is stamped with the alignment it was
folded with (:attr:`Content.stamp`); one stamped before a move is folded again, on the next
request that reads it, when its log has an answer on an item moved since, and only stamped anew
otherwise (see ``LearnerService._view``).

The deployment's catalog (the bundled one, or the operator's file) can move items too, from one
deployment to the next. What a fold reads of each of its items (standards, whether it is a
mastery check: :func:`fold_alignment`) is recorded in the store under its digest
(:func:`alignment_setting`) by every process before it writes a state stamped with that digest, so a
state stamped under another deployment's catalog can be told which of its items changed since
(:meth:`TenantContent.changed_since`), whichever of the two deployments is newer: a rolling
deployment or a rollback folds again only the learners with an answer on an item that differs.

A fold also reads which units have a mastery check on offer (with ``require_check``, mastery
needs a passed check where there is one), which any of these changes may change: a check added,
withdrawn, or moved. The set is recorded likewise (:func:`checkable_setting`) and stamped too, so
a state folded under another set is folded again when it answered on a unit whose set differs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Container, Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import orjson

from configs import GraphConfig
from engine.case import CaseOptions, parse_case
from engine.catalog import Catalog, CatalogError, Item, parse_item
from engine.graph import StandardsGraph
from engine.learner import CatalogPredictions, Observation
from engine.planner.index import PlannerIndex
from models.base import LearnerModel
from models.registry import for_graph
from serving.calibration import planner_settings, tenant_setting
from serving.model_provider import LoadedModel
from serving.stores.base import LearnerStore, VersionConflict

__all__ = [
    "MOVED",
    "Content",
    "TenantContent",
    "Stamp",
    "alignment_setting",
    "catalog_setting",
    "changed_items",
    "fold_alignment",
    "framework_setting",
    "lti_setting",
    "parse_framework",
    "read_stamp",
    "tenant_catalog",
    "touched",
]

MAX_RETRIES = 20
_log = logging.getLogger(__name__)
T = TypeVar("T")

#: the key of a stored item record that numbers the move that put the item on its standards
MOVED = "~moved"
#: what a state's stamp adds to the model version: the deployment catalog's digest, that of the
#: units with a mastery check, and the tenant's alignment (when some item moved), see
#: :attr:`Content.stamp`
_STAMP_TAIL = re.compile(r"(?:\+c([0-9a-f]+))?(?:\+k([0-9a-f]+))?(?:\+a([0-9]+))?")


def catalog_setting(tenant: str) -> str:
    return f"catalog@{tenant}"


def _as_sent(value: Any) -> str:
    """JSON a client sent (item records, a CASE package), to store as it came: orjson, or the
    standard library for what orjson does not write (an integer beyond 64 bits, in a field zpd
    does not read; read back, it is a float)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def framework_setting(tenant: str) -> str:
    return f"framework@{tenant}"


def lti_setting(tenant: str) -> str:
    """The setting that lists the tenant's LTI platform deployments (issuer and deployment id)."""
    return f"lti@{tenant}"


def alignment_setting(digest: str) -> str:
    """The setting that records what folds read of a deployment catalog's items (by its digest)."""
    return f"catalog-alignment@{digest}"


def checkable_setting(digest: str) -> str:
    """The setting that records a set of units with a mastery check on offer (by its digest)."""
    return f"checkable@{digest}"


def _digest(value: Any) -> str:
    return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]


def fold_alignment(catalog: Catalog) -> dict[str, list[Any]]:
    """What a fold reads of each item of ``catalog``: ``[standards, mastery check]`` by item id
    (which units have a check on offer is stamped apart, see :attr:`Content.checkable_digest`)."""
    return {item.id: _folded(item) for item in catalog}


def _folded(item: Item) -> list[Any]:
    """What a fold reads of ``item``."""
    return [list(item.standards), item.mastery_check]


def changed_items(old: Mapping[str, list[Any]], new: Mapping[str, list[Any]]) -> frozenset[str]:
    """The items an answer on which folds otherwise under ``new`` than under ``old``: added,
    removed, moved, or made (or no longer) a mastery check."""
    return frozenset(i for i in old.keys() | new.keys() if old.get(i) != new.get(i))


def touched(
    answers: Iterable[Observation],
    items: Container[str],
    units: AbstractSet[str],
    units_of: Callable[[Observation], Iterable[str]],
) -> bool:
    """Whether one of ``answers`` folds otherwise: on one of ``items`` (changed), or evidence on
    one of ``units`` (whose mastery check on offer changed)."""
    return any(o.item_id in items or (units and not units.isdisjoint(units_of(o))) for o in answers)


@dataclass(frozen=True)
class Stamp:
    """What a learner state was folded with, read from its stamp (:func:`read_stamp`). A part
    that is None was not stamped yet when the state was: it is taken as the current one."""

    catalog: str | None  # the deployment catalog's digest
    checkable: str | None  # the digest of the units with a mastery check on offer
    alignment: int  # the tenant's alignment (0: no item moved)


@dataclass(frozen=True)
class Content:
    """What one tenant sees: graph, catalog, planner index, the model over that graph and its
    P(success) over the catalog. ``version`` names the model as this tenant's learner states are
    written by it (the served version, plus the tenant's framework when it has one)."""

    graph: StandardsGraph
    catalog: Catalog
    index: PlannerIndex
    loaded: LoadedModel
    model: LearnerModel
    version: str
    predictions: CatalogPredictions  # P(success) over ``catalog``
    own: frozenset[str]  # the tenant's own item ids
    #: the digest of the deployment catalog's :func:`fold_alignment` (recorded in the store)
    catalog_digest: str
    #: item id -> the number of the move that put it on its current standards (items moved only)
    moved: Mapping[str, int] = field(default_factory=dict)
    #: objects built over this content once and reused by every request (the served learner core,
    #: and a tenant's with its measured GPS route overhead)
    built: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def alignment(self) -> int:
        """The newest move of the tenant's items (0: none moved)."""
        return max(self.moved.values(), default=0)

    @property
    def checkable_digest(self) -> str:
        """The digest of the units with a mastery check on offer (the planner index's ``checkable``)."""
        digest = self.built.get("checkable")
        if digest is None:
            digest = self.built["checkable"] = _digest(sorted(self.index.checkable))
        return cast(str, digest)

    @property
    def stamp(self) -> str:
        """What a learner state folded over this content is stamped with (its record's
        ``model_version``): ``version``, the deployment catalog's digest, the digest of the units
        with a check, and the tenant's alignment when some item moved (see :func:`read_stamp`)."""
        alignment = self.alignment
        head = f"{self.version}+c{self.catalog_digest}+k{self.checkable_digest}"
        return head + (f"+a{alignment}" if alignment else "")


def parse_framework(package: Any, options: GraphConfig) -> StandardsGraph:
    """A tenant's own framework (its stored CASE package), read with the deployment's CASE options."""
    return parse_case(
        package,
        "the tenant's CASE package",
        CaseOptions(options.prerequisite_association_types, options.grouping_item_types),
    )


def tenant_catalog(
    shared: Catalog, graph: StandardsGraph, records: Sequence[Mapping[str, Any]], shared_graph: bool
) -> tuple[Catalog, list[Item], dict[str, int]]:
    """The catalog a tenant sees over ``graph`` (the deployment's when ``shared_graph``, else the
    tenant's own framework): the shared items aligned to it, with the tenant's own items (its
    stored ``records``) over them. Returns it, the tenant's items, and the moves that put them
    on their standards (item id -> :data:`MOVED`). The one reading of a tenant's items: what it
    is served, and the standards its answers are exported on (:mod:`serving.export`)."""
    own: list[Item] = []
    moved: dict[str, int] = {}
    for k, record in enumerate(records):
        try:
            own.append(parse_item(record, f"stored item {k}", graph))
        except CatalogError:  # aligned to standards the framework lacks: left out
            continue
        number = record.get(MOVED)
        if isinstance(number, int) and number > 0:
            moved[own[-1].id] = number
    catalog = Catalog(
        list(shared) if shared_graph else [i for i in shared if all(c in graph.standards for c in i.standards)]
    )
    for item in own:
        catalog.upsert(item)
    return catalog, own, moved


def read_stamp(stamp: str, version: str) -> Stamp | None:
    """What a state stamped ``stamp`` was folded with, when ``version`` (the model, and the
    tenant's framework) folded it; None when another model or framework did."""
    if not stamp.startswith(version):
        return None
    tail = _STAMP_TAIL.fullmatch(stamp, len(version))
    if tail is None:
        return None
    return Stamp(tail.group(1), tail.group(2), int(tail.group(3) or 0))


class TenantContent:
    def __init__(self, engine: Any, store: LearnerStore, refresh_s: float = 2.0, cache_size: int = 256):
        self.engine, self.store, self.refresh_s = engine, store, refresh_s
        self._versions: dict[str, tuple[float, dict[str, int]]] = {}  # tenant -> (read at, versions)
        self._cache: OrderedDict[tuple, Content] = OrderedDict()
        self._values: dict[str, tuple[int, Any]] = {}  # setting name -> (version, value)
        self._lock = threading.Lock()
        self.cache_size = cache_size
        #: the deployment catalog's fold alignment and digest (by catalog), recorded in the store
        self._alignment: tuple[Catalog, str, dict[str, list[Any]]] | None = None
        self._recorded: set[str] = set()  # the settings this process recorded (see record)
        #: (recorded setting, digest now) -> what differs between the two (see _compared)
        self._compared_with: dict[tuple[str, str], frozenset[str]] = {}
        self._unreadable: set[str] = set()  # tenant settings found unreadable (warned about once)
        self._settings: dict[str, tuple[int, dict[str, Any] | None]] = {}  # tenant -> (version, gps_settings)

    # ------------------------------------------------------------------ the deployment's catalog
    def catalog_digest(self) -> str:
        """The digest of the deployment catalog's :func:`fold_alignment`."""
        return self._catalog_alignment()[1]

    def _catalog_alignment(self) -> tuple[Catalog, str, dict[str, list[Any]]]:
        catalog, current = self.engine.catalog, self._alignment
        if current is None or current[0] is not catalog:
            alignment = fold_alignment(catalog)
            current = self._alignment = (catalog, _digest(alignment), alignment)
        return current

    def record(self, checkable_digest: str, checkable: Collection[str]) -> None:
        """Record in the store what a stamp names, before the first state stamped with it is
        written: the deployment catalog's :func:`fold_alignment` and the set of units with a
        mastery check ``checkable`` (each under its digest, once per process)."""
        _, digest, alignment = self._catalog_alignment()
        self._record_once(alignment_setting(digest), lambda: alignment)
        self._record_once(checkable_setting(checkable_digest), lambda: sorted(checkable))

    def _record_once(self, name: str, value: Callable[[], Any]) -> None:
        if name in self._recorded:
            return
        try:
            self.store.put_setting(name, orjson.dumps(value(), option=orjson.OPT_SORT_KEYS).decode(), 0)
        except VersionConflict:
            pass  # recorded before (the same bytes: the name is their digest)
        self._recorded.add(name)

    def flipped_since(self, digest: str, now: str, checkable: Collection[str]) -> frozenset[str] | None:
        """The units that have a mastery check on offer under the set ``checkable`` (digest
        ``now``) and not under the set with ``digest``, or the reverse; None when the store has
        no record of that set."""
        if digest == now:
            return frozenset()
        return self._compared(checkable_setting(digest), now, lambda then: frozenset(then) ^ frozenset(checkable))

    def changed_since(self, digest: str) -> frozenset[str] | None:
        """The items whose fold differs under the deployment catalog now from under the one with
        ``digest`` (see :func:`changed_items`); None when the store has no record of that catalog."""
        _, now, alignment = self._catalog_alignment()
        if digest == now:
            return frozenset()
        return self._compared(alignment_setting(digest), now, lambda then: changed_items(then, alignment))

    def _compared(self, name: str, now: str, compare: Callable[[Any], frozenset[str]]) -> frozenset[str] | None:
        """``compare`` of the value recorded as setting ``name`` (kept for the digest ``now`` of
        what it is compared with); None when the store has no such record."""
        key = (name, now)
        if key not in self._compared_with:
            found = self.store.get_setting(name)
            if found is None:
                return None
            self._compared_with[key] = compare(orjson.loads(found[1]))
        return self._compared_with[key]

    # ------------------------------------------------------------------ reading
    def versions(self, tenant: str) -> dict[str, int]:
        """The tenant's catalog, framework and measured GPS versions (0: none of its own), re-read
        every ``refresh_s``."""
        now = time.monotonic()
        cached = self._versions.get(tenant)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        names = [catalog_setting(tenant), framework_setting(tenant), tenant_setting(tenant), lti_setting(tenant)]
        found = self.store.setting_versions(names)
        versions = {
            "catalog": found.get(names[0], 0),
            "framework": found.get(names[1], 0),
            "gps": found.get(names[2], 0),
            "lti": found.get(names[3], 0),
        }
        self._versions[tenant] = (now, versions)
        return versions

    def _value(self, name: str, version: int, empty: Any) -> Any:
        if version == 0:
            return empty
        cached = self._values.get(name)
        if cached is None or cached[0] != version:
            current = self.store.get_setting(name)
            cached = (current[0], orjson.loads(current[1])) if current else (0, empty)
            self._values[name] = cached
        return cached[1]

    def records(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's own item records, as stored."""
        return list(self._value(catalog_setting(tenant), self.versions(tenant)["catalog"], []))

    def lti_deployments(self, tenant: str) -> tuple[int, list[dict[str, Any]]]:
        """The tenant's LTI platform deployments as registered (``PUT /v1/lti/deployments``),
        with the version of that list (0: none registered)."""
        version = self.versions(tenant)["lti"]
        return version, list(self._value(lti_setting(tenant), version, []))

    def set_lti_deployments(self, tenant: str, deployments: Sequence[Mapping[str, Any]]) -> None:
        """Replace the tenant's LTI platform deployments."""
        self.store.put_setting(lti_setting(tenant), _as_sent(list(deployments)))
        self._versions.pop(tenant, None)  # read again at once

    def package(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's own CASE framework, if it imported one."""
        return self._value(framework_setting(tenant), self.versions(tenant)["framework"], None)

    def gps_measure(self, tenant: str) -> dict[str, Any] | None:
        """The tenant's measure of the GPS route overhead as the last nightly run stored it
        (``serving.calibration.measure``), None before any."""
        return self._value(tenant_setting(tenant), self.versions(tenant)["gps"], None)

    def gps_settings(self, tenant: str) -> tuple[int, dict[str, Any] | None]:
        """What the tenant's measure of the GPS route overhead sets of its ``[planner]``
        configuration (``serving.calibration.planner_settings``: the overhead and spread, and the
        goals measured on their own), None until its nightly plans have seen enough arrivals;
        with the version of the measure it comes from. Worked out once per version."""
        name = tenant_setting(tenant)
        version = self.versions(tenant)["gps"]
        cached = self._settings.get(tenant)
        if cached is not None and cached[0] == version:
            return cached
        measured = self.gps_measure(tenant)
        settings = None
        try:
            settings = None if measured is None else planner_settings(measured, self.engine.config.planner)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):  # not what `zpd plan-batch` writes
            if name not in self._unreadable:
                self._unreadable.add(name)
                _log.warning(
                    "store setting %s is not a GPS measure (%.80r): the configured overhead counts", name, measured
                )
        self._settings[tenant] = (version, settings)
        return version, settings

    def shared(self) -> Content:
        """What a tenant without a catalog or framework of its own sees: the deployment's."""
        return self._content("", {"catalog": 0, "framework": 0})

    def content(self, tenant: str) -> Content:
        return self._content(tenant, self.versions(tenant))

    def seen(self, tenant: str) -> Content:
        """What ``tenant`` sees over the deployment's model: its framework and catalog are those
        it is served whatever its model, and reading them never loads a tenant's own model (the
        promotion gate reads them while a model is loaded)."""
        current = self.engine.models.current
        assert current is not None  # an engine's holder always has a model
        return self._content(tenant, self.versions(tenant), current)

    def _content(self, tenant: str, versions: dict[str, int], loaded: LoadedModel | None = None) -> Content:
        engine = self.engine
        loaded = loaded if loaded is not None else engine.models.serving(tenant)
        deployment = engine.models.current
        own_content = versions["catalog"] != 0 or versions["framework"] != 0
        shared = not own_content and loaded is deployment
        key = (
            "" if shared else tenant,  # tenants without content or a model of their own share the deployment's
            versions["catalog"],
            versions["framework"],
            id(loaded),
            id(engine.catalog),
            id(engine.graph),
        )
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit.loaded is loaded:
                self._cache.move_to_end(key)
                return hit
        digest = self.catalog_digest()
        if not own_content:
            built = Content(
                engine.graph,
                engine.catalog,
                engine.index,
                loaded,
                loaded.model,
                loaded.version,
                loaded.predictions,
                frozenset(),
                digest,
            )
        else:
            built = self._build(self.records(tenant), self.package(tenant), loaded, digest)
        with self._lock:
            # contents over a model no longer served go at once (each holds that model's encodings)
            served = {id(deployment), *(id(m) for m in engine.models.tenants.values())}
            for stale in [k for k, c in self._cache.items() if id(c.loaded) not in served]:
                del self._cache[stale]
            self._cache[key] = built
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return built

    def graph(self, tenant: str) -> StandardsGraph:
        return self.content(tenant).graph

    def _build(self, records: Sequence[Mapping[str, Any]], package: Any, loaded: LoadedModel, digest: str) -> Content:
        engine = self.engine
        graph = engine.graph if package is None else parse_framework(package, engine.config.graph)
        catalog, own, moved = tenant_catalog(engine.catalog, graph, records, package is None)
        if package is None:  # the shared framework: the deployment's encodings plus the tenant's items
            model = loaded.model
            return Content(
                graph,
                catalog,
                engine.index.extended(own, catalog),
                loaded,
                model,
                loaded.version,
                loaded.predictions.extended(model, own),
                frozenset(i.id for i in own),
                digest,
                moved,
            )
        # a framework of its own: a model over its graph
        model = for_graph(loaded.model, graph)
        framework = hashlib.sha256(orjson.dumps(package, option=orjson.OPT_SORT_KEYS)).hexdigest()[:8]
        return Content(
            graph,
            catalog,
            PlannerIndex.build(graph, catalog),
            loaded,
            model,
            f"{loaded.version}~{framework}",
            CatalogPredictions.encode(model, catalog),
            frozenset(i.id for i in own),
            digest,
            moved,
        )

    # ------------------------------------------------------------------ writing
    def upsert(self, tenant: str, records: Sequence[Mapping[str, Any]]) -> tuple[int, int, list[str]]:
        """Add or replace the tenant's items (checked by the caller); returns (created, updated,
        the ids of items moved to other standards). A moved item's record is numbered with this
        write's move (:data:`MOVED`), as is one made a mastery check or no longer one (an answer on
        it folds otherwise too); an item re-sent as it was keeps its number."""

        def change(merged: dict[str, dict[str, Any]], content: Content) -> tuple[int, int, list[str]]:
            catalog = content.catalog
            created = sum(1 for r in records if r["id"] not in merged and r["id"] not in catalog)
            move = 1 + max((r[MOVED] for r in merged.values() if isinstance(r.get(MOVED), int)), default=0)
            moved: list[str] = []
            for r in records:
                record = {k: v for k, v in r.items() if k != MOVED}
                before = catalog[r["id"]] if r["id"] in catalog else None
                after = parse_item(record, r["id"], content.graph) if before is not None else None
                if before is not None and after is not None and _folded(after) != _folded(before):
                    record[MOVED] = move
                    if after.standards != before.standards:
                        moved.append(r["id"])
                elif isinstance(merged.get(r["id"], {}).get(MOVED), int):
                    record[MOVED] = merged[r["id"]][MOVED]
                merged[r["id"]] = record
            return created, len(records) - created, list(dict.fromkeys(moved))

        return self._change(tenant, change)

    def withdraw(self, tenant: str, item_id: str) -> Item | None:
        """Withdraw an item the tenant is offered (its own, or a shared one for this tenant only):
        kept in its catalog, so the answers given on it still count on its standards, and never
        offered again until it is sent again (``PUT /v1/items``). None when the tenant's catalog
        has no such item on offer."""

        def change(merged: dict[str, dict[str, Any]], content: Content) -> Item | None:
            item = content.catalog[item_id] if item_id in content.catalog else None
            if item is None or item.withdrawn:
                return None
            merged[item_id] = {**(merged.get(item_id) or item.to_record()), "withdrawn": True}
            return item

        return self._change(tenant, change)

    def _change(self, tenant: str, change: Callable[[dict[str, dict[str, Any]], Content], T]) -> T:
        """Change the tenant's stored item records (by id) with ``change``, which also sees what
        the tenant sees now; written unless it changed nothing, retried when another writer came
        first. Returns what ``change`` returned."""
        for _ in range(MAX_RETRIES):
            current = self.store.get_setting(catalog_setting(tenant))
            version, stored = (current[0], orjson.loads(current[1])) if current else (0, [])
            merged = {r["id"]: r for r in stored}
            result = change(merged, self.content(tenant))
            if list(merged.values()) == stored:
                return result
            try:
                self.store.put_setting(
                    catalog_setting(tenant), _as_sent(list(merged.values())), expected_version=version
                )
            except VersionConflict:
                continue
            self._versions.pop(tenant, None)  # read again at once
            return result
        raise VersionConflict(f"tenant {tenant}'s catalog is being changed concurrently; retry")

    def import_framework(self, tenant: str, package: Any) -> StandardsGraph:
        """Make ``package`` (a CASE package, parsed and checked by the caller) the tenant's framework."""
        self.store.put_setting(framework_setting(tenant), _as_sent(package))
        self._versions.pop(tenant, None)
        return self.graph(tenant)
