"""What every worker and replica must agree on: the served model, the items added to the catalog
and an imported standards framework.

A change is checked and applied in the worker that received it, then stored as a versioned
deployment setting (see :meth:`LearnerStore.put_setting`). Every worker compares the settings'
versions with the ones it applied every ``[serving] sync_s`` seconds and at start-up, and applies
what changed, so after ``POST /v1/model/reload`` or ``PUT /v1/items`` all workers serve the same
model and catalog within that delay, and a restarted worker comes back with them. A setting that
cannot be applied here (a model that fails to load) is reported in ``GET /v1/model`` and the
worker keeps what it had.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from engine.case import CaseOptions, parse_case
from engine.catalog import Catalog, CatalogError, Item, parse_item
from engine.graph import GraphError, StandardsGraph
from engine.planner.index import PlannerIndex
from serving.model_provider import LoadedModel, ModelLoadError
from serving.stores.base import LearnerStore, VersionConflict

__all__ = ["Deployment", "DeploymentError"]

log = logging.getLogger("zpd.serving")

MODEL, CATALOG, FRAMEWORK = "model", "catalog", "framework"
SETTINGS = (FRAMEWORK, CATALOG, MODEL)  # the order they are applied in


class DeploymentError(ValueError):
    """A change that cannot be made (the message says why)."""


class Deployment:
    def __init__(self, engine: Any, store: LearnerStore):
        self.engine, self.store = engine, store
        self.base_graph: StandardsGraph = engine.graph
        self.base_catalog: Catalog = engine.catalog
        self.applied = dict.fromkeys(SETTINGS, 0)
        self.last_error: str | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ changes (one worker)
    def set_model(self, uri: str) -> LoadedModel:
        """Load and smoke-test ``uri`` here (the current model stays if it fails), then publish the
        exact version loaded (an alias is resolved, so every worker loads the same version)."""
        with self._lock:
            loaded = self.engine.models.reload(uri)
            exact = _exact_uri(uri, loaded.version)
            self.applied[MODEL] = self.store.put_setting(MODEL, _dumps({"uri": exact, "version": loaded.version}))
            return loaded

    def upsert_items(self, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Check every record against the graph, add them to the stored catalog additions (by id)
        and apply them here; returns (created, updated)."""
        parsed = [_parse(record, f"items[{i}]", self.engine.graph) for i, record in enumerate(records)]
        with self._lock:
            for _ in range(20):
                current = self.store.get_setting(CATALOG)
                version, added = (current[0], orjson.loads(current[1])) if current else (0, [])
                merged = {r["id"]: r for r in added}
                merged.update({item.id: dict(record, id=item.id) for item, record in zip(parsed, records)})
                try:
                    new_version = self.store.put_setting(
                        CATALOG, _dumps(list(merged.values())), expected_version=version
                    )
                    break
                except VersionConflict:
                    continue
            else:
                raise VersionConflict("the catalog is being changed concurrently; retry")
            created = sum(1 for item in parsed if item.id not in self.engine.catalog)
            self._apply({CATALOG: (new_version, list(merged.values()))})
            return created, len(parsed) - created

    def import_framework(self, package: Any) -> StandardsGraph:
        """Check a CASE package (and that some catalog item stays aligned), publish and apply it."""
        cfg = self.engine.config.graph
        try:
            graph = parse_case(
                package, "CASE package", CaseOptions(cfg.prerequisite_association_types, cfg.grouping_item_types)
            )
        except GraphError as exc:
            raise DeploymentError(str(exc)) from None
        with self._lock:
            if not self._catalog_for(graph, self._added()).items:
                raise DeploymentError(
                    "no catalog item is aligned to the imported framework; upload items for it "
                    "first (PUT /v1/items) or import a framework that keeps some"
                )
            version = self.store.put_setting(FRAMEWORK, _dumps(package))
            self._apply({FRAMEWORK: (version, package)})
            return self.engine.graph

    # ------------------------------------------------------------------ sync (every worker)
    def sync(self) -> bool:
        """Apply the settings that changed since this worker last applied them; True if any did."""
        with self._lock:
            versions = self.store.setting_versions(SETTINGS)  # values are read only when they changed
            changed = {}
            for name in SETTINGS:
                if versions.get(name, 0) != self.applied[name]:
                    current = self.store.get_setting(name)
                    if current is not None:
                        changed[name] = (current[0], orjson.loads(current[1]))
            if changed:
                self._apply(changed)
            return bool(changed)

    def describe(self) -> dict[str, Any]:
        return {"applied_versions": dict(self.applied), "last_error": self.last_error}

    # ------------------------------------------------------------------ internals
    def _added(self) -> list[dict]:
        current = self.store.get_setting(CATALOG)
        return orjson.loads(current[1]) if current else []

    def _catalog_for(self, graph: StandardsGraph, added: Sequence[Mapping[str, Any]]) -> Catalog:
        """The configured catalog's items aligned to ``graph``, plus the added items that fit it."""
        catalog = Catalog([i for i in self.base_catalog if all(c in graph.standards for c in i.standards)])
        for k, record in enumerate(added):
            try:
                catalog.upsert(_parse(record, f"stored catalog addition {k}", graph))
            except DeploymentError as exc:  # aligned to standards this framework lacks
                log.warning("catalog addition %s left out: %s", record.get("id"), exc)
        return catalog

    def _apply(self, changed: Mapping[str, tuple[int, Any]]) -> None:
        """Rebuild graph, catalog, planner index and model encodings from the stored settings
        (only the model when nothing else changed); swapped under the engine's lock so a request
        sees the old set or the new one."""
        engine, holder = self.engine, self.engine.models
        graph, catalog = engine.graph, engine.catalog
        content = FRAMEWORK in changed or CATALOG in changed
        if FRAMEWORK in changed:
            cfg = engine.config.graph
            graph = parse_case(
                changed[FRAMEWORK][1],
                "stored CASE package",
                CaseOptions(cfg.prerequisite_association_types, cfg.grouping_item_types),
            )
        if content:
            catalog = self._catalog_for(graph, changed[CATALOG][1] if CATALOG in changed else self._added())
        model_uri = changed[MODEL][1]["uri"] if MODEL in changed else None
        if model_uri is None and holder.current.model.name == "bkt" and graph is not engine.graph:
            model_uri = "bkt"  # graph BKT is built from the graph
        error = None
        with engine.lock:
            holder.graph, holder.catalog = graph, catalog
            try:
                if model_uri is not None:
                    holder.reload(model_uri)
                elif content:
                    holder.refresh_catalog(catalog)
            except ModelLoadError as exc:  # keep serving the current model (on the new catalog)
                error = f"model {model_uri}: {exc}"
                if content:
                    holder.refresh_catalog(catalog)
            if content:
                engine.graph, engine.catalog = graph, catalog
                engine.index = PlannerIndex.build(graph, catalog)
        for name, (version, _) in changed.items():
            self.applied[name] = version
        self.last_error = error
        if error:
            log.error("deployment setting not applied: %s", error)


def _parse(record: Mapping[str, Any], where: str, graph: StandardsGraph) -> Item:
    if not isinstance(record, Mapping):
        raise DeploymentError(f"{where}: expected an item object")
    try:
        return parse_item(record, where, graph)
    except CatalogError as exc:
        raise DeploymentError(str(exc)) from None


def _exact_uri(uri: str, version: str) -> str:
    """``models:/NAME@ALIAS`` pinned to the version it resolved to (``models:/NAME/N``)."""
    if uri.startswith("models:/") and "@" in uri and "/" in version:
        return f"models:/{version}"
    return uri


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
