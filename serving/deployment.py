"""What every worker and replica must agree on: the served model.

A model change (``POST /v1/model/reload``, or the alias poll) is loaded and passed through the
promotion gate in the worker that received it, then stored as a versioned deployment setting (see
:meth:`LearnerStore.put_setting`). Every worker compares the setting's version with the one it
applied every ``[serving] sync_s`` seconds and at start-up, and applies it when it changed, so all
workers serve the same model within that delay and a restarted worker comes back with it. A model
that cannot be loaded here is reported in ``GET /v1/model`` and the worker keeps what it had.
A process that folds or plans outside a worker starts from the same model (:func:`served_engine`).

What each tenant sees of the catalog and the standards framework is per tenant, and versioned the
same way: see :mod:`serving.content`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from serving.model_provider import LoadedModel, ModelLoadError, holdout_from_store
from serving.stores.base import LearnerStore

if TYPE_CHECKING:
    from configs import ZPDConfig
    from engine.catalog import Catalog
    from serving.service import Engine

__all__ = ["Deployment", "served_engine"]

log = logging.getLogger("zpd.serving")

MODEL = "model"
SETTINGS = (MODEL,)


class Deployment:
    def __init__(self, engine: Any, store: LearnerStore, catalog_of: Callable[[str], Catalog] | None = None):
        """``catalog_of``: a tenant's catalog (what the promotion gate reads the held-out answers'
        standards from, as serving folds them)."""
        self.engine, self.store, self.catalog_of = engine, store, catalog_of
        self.applied = dict.fromkeys(SETTINGS, 0)
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def set_model(self, uri: str, force_reason: str | None = None) -> LoadedModel:
        """Load ``uri`` here through the promotion gate, compared with the serving model on the
        store's recent answers (the current model stays if it fails, unless ``force_reason``),
        then publish the exact version loaded (an alias is resolved, so every worker loads the
        same version; a forced model is forced on every worker with the same reason)."""
        with self._lock:
            loaded = self.engine.models.reload(
                uri, lambda: holdout_from_store(self.store, catalog_of=self.catalog_of), force_reason
            )
            exact = _exact_uri(uri, loaded.version)
            published = {"uri": exact, "version": loaded.version, "forced": force_reason}
            self.applied[MODEL] = self.store.put_setting(MODEL, _dumps(published))
            return loaded

    def sync(self) -> bool:
        """Apply the model another worker published since this worker last applied one; True if it did."""
        with self._lock:
            version = self.store.setting_versions(SETTINGS).get(MODEL, 0)
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
        return {"applied_versions": dict(self.applied), "last_error": self.last_error}


def served_engine(config: ZPDConfig, store: LearnerStore) -> Engine:
    """An engine with the model the deployment's workers serve: built from ``config`` (its model
    chain), then given the model a worker published in ``store`` (a reload or a promotion,
    forced or not). Every process that folds or plans for a store's learners outside a worker
    starts so: an import in a process of its own, `zpd plan-batch`'s tasks, and the command
    line's imports, replays and LRS pulls (with the configured model alone, their states and
    plans came from another model than the one the API serves)."""
    from serving.service import build_engine

    engine = build_engine(config)
    Deployment(engine, store).sync()
    return engine


def _exact_uri(uri: str, version: str) -> str:
    """``models:/NAME@ALIAS`` pinned to the version it resolved to (``models:/NAME/N``)."""
    if uri.startswith("models:/") and "@" in uri and "/" in version:
        return f"models:/{version}"
    return uri


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()
