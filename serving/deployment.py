"""What every worker and replica must agree on: the served model, and the tenants' own models.

A model change (``POST /v1/model/reload``, or the alias poll) is loaded and passed through the
promotion gate in the worker that received it, then stored as a versioned deployment setting (see
:meth:`LearnerStore.put_setting`). Every worker compares the setting's version with the one it
applied every ``[serving] sync_s`` seconds and at start-up, and applies it when it changed, so all
workers serve the same model within that delay and a restarted worker comes back with it. A model
that cannot be loaded here is reported in ``GET /v1/model`` and the worker keeps what it had.

A tenant's own model (``PUT /v1/model/tenant``: one its data scientists trained on its answers
and registered under the tenant's name) goes the same way: gated over what the tenant sees and
against what it is served, on the tenant's own answers, then published in the setting
``tenant-models`` (tenant -> model), which every worker applies with the deployment's model.
A process that folds or plans outside a worker starts from the same model (:func:`served_engine`).

What each tenant sees of the catalog and the standards framework is per tenant, and versioned the
same way: see :mod:`serving.content`.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

import orjson

from serving.model_provider import LoadedModel, ModelLoadError, holdout_from_store
from serving.stores.base import LearnerStore, VersionConflict

if TYPE_CHECKING:
    from configs import ZPDConfig
    from engine.catalog import Catalog
    from engine.graph import StandardsGraph
    from serving.content import TenantContent
    from serving.service import Engine

__all__ = ["Deployment", "served_engine"]

log = logging.getLogger("zpd.serving")

MODEL = "model"
#: tenant -> its own model as published: {"uri": the exact version, "follows": the URI asked for
#: (an alias the poll follows), "version", "forced"}
TENANT_MODELS = "tenant-models"
SETTINGS = (MODEL, TENANT_MODELS)
MAX_RETRIES = 20


class Deployment:
    def __init__(self, engine: Any, store: LearnerStore, content: TenantContent | None = None, warm: bool = True):
        """``content``: what each tenant sees (the promotion gate reads the held-out answers'
        standards from a tenant's catalog, as serving folds them, and checks a tenant's own model
        over the tenant's framework and catalog); by default read from ``store``. ``warm``: load
        the tenants' own models as they are published (a worker), or only when a tenant is first
        served (a process that folds or plans for one tenant)."""
        if content is None:
            from serving.content import TenantContent

            content = TenantContent(engine, store, engine.config.serving.sync_s)
        self.engine, self.store, self.content = engine, store, content
        engine.models.sees = self._sees  # a tenant's own model loaded on its request is gated over these
        self.applied = dict.fromkeys(SETTINGS, 0)
        self.warm = warm
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def set_model(self, uri: str, force_reason: str | None = None) -> LoadedModel:
        """Load ``uri`` here through the promotion gate, compared with the serving model on the
        store's recent answers (the current model stays if it fails, unless ``force_reason``),
        then publish the exact version loaded (an alias is resolved, so every worker loads the
        same version; a forced model is forced on every worker with the same reason)."""
        with self._lock:
            loaded = self.engine.models.reload(
                uri, lambda since: holdout_from_store(self.store, catalog_of=self.catalog_of, since=since), force_reason
            )
            exact = _exact_uri(uri, loaded.version)
            published = {"uri": exact, "version": loaded.version, "forced": force_reason}
            self.applied[MODEL] = self.store.put_setting(MODEL, _dumps(published))
            return loaded

    def set_tenant_model(self, tenant: str, uri: str, force_reason: str | None = None) -> LoadedModel:
        """Load ``uri`` here for ``tenant`` through the promotion gate, compared with what the
        tenant is served on the tenant's own recent answers, then publish the exact version."""
        with self._lock:
            holder = self.engine.models
            loaded = holder.reload_tenant(
                tenant,
                uri,
                lambda since: holdout_from_store(self.store, catalog_of=self.catalog_of, tenant=tenant, since=since),
                force_reason,
                self._sees(tenant),
                holder.serving(tenant),  # its own model, loaded if it was set aside
            )
            entry = {"uri": _exact_uri(uri, loaded.version), "follows": uri, "version": loaded.version}
            self._publish_tenant(tenant, {**entry, "forced": force_reason})
            return loaded

    def clear_tenant_model(self, tenant: str) -> bool:
        """Serve ``tenant`` the deployment's model again; False if it had none of its own."""
        with self._lock:
            had = self.engine.models.drop_tenant(tenant)
            return self._publish_tenant(tenant, None) or had

    def catalog_of(self, tenant: str) -> Catalog:
        return self.content.seen(tenant).catalog

    def _sees(self, tenant: str) -> tuple[StandardsGraph, Catalog]:
        """The framework and catalog ``tenant`` sees (what its own model is gated over)."""
        seen = self.content.seen(tenant)
        return seen.graph, seen.catalog

    def tenant_models(self) -> tuple[int, dict[str, dict[str, Any]]]:
        """The tenants' own models as published (tenant -> entry, see :data:`TENANT_MODELS`),
        with the version of that setting."""
        current = self.store.get_setting(TENANT_MODELS)
        return (0, {}) if current is None else (current[0], dict(orjson.loads(current[1])))

    def _publish_tenant(self, tenant: str, entry: dict[str, Any] | None) -> bool:
        """Write ``tenant``'s entry (None: remove it) into the published map, then apply the map as
        written (another worker may have changed other tenants' entries meanwhile); False if there
        was nothing to remove."""
        for _ in range(MAX_RETRIES):
            version, published = self.tenant_models()
            if entry is None and tenant not in published:
                self._apply_tenants(version, published)
                return False
            if entry is None:
                del published[tenant]
            else:
                published[tenant] = entry
            try:
                written = self.store.put_setting(TENANT_MODELS, _dumps(published), version)
            except VersionConflict:
                continue
            self._apply_tenants(written, published)
            return True
        raise ModelLoadError(f"the tenants' models changed {MAX_RETRIES} times while this change was written")

    def _apply_tenants(self, version: int, published: dict[str, dict[str, Any]]) -> None:
        """Serve each tenant the model published for it, and the deployment's model to the
        tenants no longer in ``published``. A changed model held here is loaded now; so are the
        others while there is room for them (``[serving] tenant_models_loaded``), unless this
        process loads them on first use alone (``warm`` false); the rest load on their tenant's
        first request."""
        holder = self.engine.models
        holder.publish(published)
        for tenant, entry in published.items():
            if holder.is_current(tenant, entry):
                continue
            if tenant not in holder.tenants and (not self.warm or len(holder.tenants) >= holder.max_tenant_models):
                continue
            with self.engine.lock:
                try:
                    holder.load_published(tenant, entry)
                except ModelLoadError as exc:  # the tenant keeps what it was served
                    log.error("tenant %s: its model %s not applied: %s", tenant, entry.get("uri"), exc)
        self.applied[TENANT_MODELS] = version

    def sync(self) -> bool:
        """Apply the model (and the tenants' models) another worker published since this worker
        last applied them; True if it did."""
        with self._lock:
            versions = self.store.setting_versions(SETTINGS)
            changed = versions.get(TENANT_MODELS, 0) != self.applied[TENANT_MODELS]
            if changed:
                self._apply_tenants(*self.tenant_models())
            return self._sync_model(versions.get(MODEL, 0)) or changed

    def _sync_model(self, version: int) -> bool:
        if version == self.applied[MODEL]:
            return False
        current = self.store.get_setting(MODEL)
        if current is None:
            return False
        published = orjson.loads(current[1])
        uri = published["uri"]
        error = None
        serving = self.engine.models.current
        same = (
            serving is not None
            and serving.version == published.get("version")
            and serving.forced == published.get("forced")
        )
        if not same:  # (a process that built its engine with that model already: nothing to load)
            with self.engine.lock:
                try:
                    self.engine.models.reload(uri, force_reason=published.get("forced"))
                except ModelLoadError as exc:  # keep serving the current model
                    error = f"model {uri}: {exc}"
        self.applied[MODEL] = current[0]
        self.last_error = error
        if error:
            log.error("deployment setting not applied: %s", error)
        return True

    def describe(self) -> dict[str, Any]:
        """What ``GET /v1/model`` says of the deployment: the version of its model setting applied
        here (not that of the tenants' models: every tenant reads this, and another tenant's
        change is not its to see)."""
        return {"applied_versions": {MODEL: self.applied[MODEL]}, "last_error": self.last_error}


def served_engine(config: ZPDConfig, store: LearnerStore) -> Engine:
    """An engine with the model the deployment's workers serve: built from ``config`` (its model
    chain), then given the model a worker published in ``store`` (a reload or a promotion,
    forced or not). Every process that folds or plans for a store's learners outside a worker
    starts so: an import in a process of its own, `zpd plan-batch`'s tasks, and the command
    line's imports, replays and LRS pulls (with the configured model alone, their states and
    plans came from another model than the one the API serves)."""
    from serving.service import build_engine

    engine = build_engine(config)
    Deployment(engine, store, warm=False).sync()
    return engine


def _exact_uri(uri: str, version: str) -> str:
    """``models:/NAME@ALIAS`` pinned to the version it resolved to (``models:/NAME/N``)."""
    if uri.startswith("models:/") and "@" in uri and "/" in version:
        return f"models:/{version}"
    return uri


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
