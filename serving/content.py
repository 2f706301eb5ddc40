"""What each tenant sees: the deployment's catalog with the tenant's own items layered over it.

A tenant's items (``PUT /v1/items``, or activities registered from xAPI statements that name
their standard) are visible and recommendable to that tenant only; the bundled catalog stays the
shared default. The tenant's additions are a versioned store setting (``catalog@TENANT``), so
every worker and replica serves the same items: a worker re-reads a tenant's version at most every
``[serving] sync_s`` seconds and right after its own changes.

For a tenant with items of its own, :meth:`TenantContent.content` builds (and caches per tenant,
catalog version and model) the tenant's catalog, planner index and predictions: the deployment's
encoded catalog plus the tenant's items encoded once by the serving model.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from engine.catalog import Catalog, CatalogError, Item, parse_item
from engine.planner.index import PlannerIndex
from models.base import ItemSpec
from serving.model_provider import LoadedModel
from serving.stores.base import LearnerStore, VersionConflict

__all__ = ["Content", "TenantContent", "catalog_setting"]

MAX_RETRIES = 20


def catalog_setting(tenant: str) -> str:
    return f"catalog@{tenant}"


@dataclass(frozen=True)
class Content:
    """A tenant's catalog, planner index and P(success) over its catalog with the serving model."""

    catalog: Catalog
    index: PlannerIndex
    loaded: LoadedModel
    predict_all: Callable[[dict[str, np.ndarray]], np.ndarray]
    item_pos: Mapping[str, int]
    own: frozenset[str]  # the tenant's own item ids


class TenantContent:
    def __init__(self, engine: Any, store: LearnerStore, refresh_s: float = 2.0, cache_size: int = 256):
        self.engine, self.store, self.refresh_s = engine, store, refresh_s
        self._versions: dict[str, tuple[float, int]] = {}  # tenant -> (read at, version)
        self._cache: OrderedDict[tuple, Content] = OrderedDict()
        self._records: dict[str, tuple[int, list[dict[str, Any]]]] = {}
        self._lock = threading.Lock()
        self.cache_size = cache_size

    # ------------------------------------------------------------------ reading
    def version(self, tenant: str) -> int:
        """The tenant's catalog version (0: no items of its own), re-read every ``refresh_s``."""
        now = time.monotonic()
        cached = self._versions.get(tenant)
        if cached is not None and now - cached[0] < self.refresh_s:
            return cached[1]
        version = self.store.setting_versions([catalog_setting(tenant)]).get(catalog_setting(tenant), 0)
        self._versions[tenant] = (now, version)
        return version

    def records(self, tenant: str) -> list[dict[str, Any]]:
        """The tenant's own item records, as stored."""
        version = self.version(tenant)
        if version == 0:
            return []
        cached = self._records.get(tenant)
        if cached is None or cached[0] != version:
            current = self.store.get_setting(catalog_setting(tenant))
            cached = (current[0], orjson.loads(current[1])) if current else (0, [])
            self._records[tenant] = cached
        return list(cached[1])

    def content(self, tenant: str) -> Content:
        engine = self.engine
        loaded = engine.models.current
        version = self.version(tenant)
        if version == 0:
            return Content(engine.catalog, engine.index, loaded, loaded.predict_all, loaded.item_pos, frozenset())
        key = (tenant, version, id(loaded), id(engine.catalog), id(engine.graph))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        built = self._build(self.records(tenant), loaded)
        with self._lock:
            self._cache[key] = built
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return built

    def _build(self, records: Sequence[Mapping[str, Any]], loaded: LoadedModel) -> Content:
        engine = self.engine
        own: list[Item] = []
        for k, record in enumerate(records):
            try:
                own.append(parse_item(record, f"stored item {k}", engine.graph))
            except CatalogError:  # aligned to standards the framework lacks now: left out
                continue
        catalog = Catalog(list(engine.catalog))
        for item in own:
            catalog.upsert(item)
        index = engine.index.extended(own, catalog)
        batch = loaded.model.encode_items([ItemSpec(i.id, i.standards, i.difficulty) for i in own])
        base_size = len(loaded.item_pos)
        positions = dict(loaded.item_pos)
        positions.update({item.id: base_size + k for k, item in enumerate(own)})
        model, base_predict = loaded.model, loaded.predict_all

        def predict_all(state: dict[str, np.ndarray]) -> np.ndarray:
            return np.concatenate([base_predict(state), model.predict(state, batch)]) if own else base_predict(state)

        return Content(catalog, index, loaded, predict_all, positions, frozenset(i.id for i in own))

    # ------------------------------------------------------------------ writing
    def upsert(self, tenant: str, records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
        """Add or replace the tenant's items (checked by the caller); returns (created, updated)."""
        for _ in range(MAX_RETRIES):
            current = self.store.get_setting(catalog_setting(tenant))
            version, stored = (current[0], orjson.loads(current[1])) if current else (0, [])
            merged = {r["id"]: r for r in stored}
            created = sum(1 for r in records if r["id"] not in merged and r["id"] not in self.engine.catalog)
            merged.update({r["id"]: dict(r) for r in records})
            try:
                new = self.store.put_setting(
                    catalog_setting(tenant), orjson.dumps(list(merged.values())).decode(), expected_version=version
                )
            except VersionConflict:
                continue
            self._versions[tenant] = (time.monotonic(), new)
            return created, len(records) - created
        raise VersionConflict(f"tenant {tenant}'s catalog is being changed concurrently; retry")
