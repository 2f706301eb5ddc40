"""Which learner-state model serves, and swapping it without dropping a request.

The server loads, in order: the MLflow model URI from the config (``models:/zpd-learner@champion``
by default), the model bundled with the repository, and finally graph BKT built from the standards
graph (needs no training). A reload builds and smoke-tests the candidate off to the side and then
swaps one reference: requests in flight keep the model they started with. A candidate that fails
to load or fails the smoke test is refused and the old model keeps serving.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

from configs import GateConfig
from engine.catalog import Catalog
from engine.graph import StandardsGraph
from engine.learner import CatalogPredictions, Observation
from models.base import Event, ItemSpec, LearnerModel
from models.bkt import GraphBKT
from models.gate import GateReport, check_model, compare
from models.registry import for_graph, load_model
from serving.evidence import answers as answers_of
from serving.evidence import observation

__all__ = ["LoadedModel", "ModelHolder", "ModelLoadError", "ModelNotRegistered", "ModelRefused", "load_candidate"]

log = logging.getLogger("zpd.model")
BUNDLED_MODEL = Path(__file__).resolve().parent.parent / "data" / "models" / "default"


class ModelLoadError(RuntimeError):
    """A model could not be loaded or failed its smoke test; the message says why."""


class ModelRefused(ModelLoadError):
    """A model that loads and fails the promotion gate (a ``force_reason`` serves it anyway)."""


class ModelNotRegistered(ModelLoadError):
    """The registry has no model version under that name or alias (yet): a fresh registry, before
    the first ``zpd models promote``."""


class HeldOut(NamedTuple):
    """The answers a candidate model is compared on: each learner's, in the order a fold reads
    them; ``scored`` (one flag per answer; None: all) marks those that count, the others being
    read only as what came before."""

    learners: list[list[Event]]
    scored: list[list[bool]] | None = None


#: what a candidate is compared on, given a time before which answers are read, not scored (None: all scored)
Holdout = Callable[[float | None], HeldOut]


@dataclass(frozen=True)
class LoadedModel:
    model: LearnerModel
    version: str
    source: str
    loaded_at: float
    predictions: CatalogPredictions  # P(success) over the catalog, encoded once
    gate: dict[str, Any] | None = None  # the promotion gate's report
    forced: str | None = None  # the reason given to serve it although it failed the gate


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for name in ("config.json", "weights.npz"):
        path = folder / name
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()[:10]


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def _json(value: Any) -> str:
    return json.dumps(value)[:5000]


def registry_client(tracking_uri: str) -> Any:
    """An MLflow client, one per process and tracking URI. With a SQLite tracking store, the first
    one is made under a file lock next to the database: several workers starting on a fresh data
    directory would otherwise race to create and migrate its tables."""
    from mlflow import MlflowClient

    with _clients_lock:
        client = _clients.get(tracking_uri)
        if client is not None:
            return client
        path = Path(tracking_uri.removeprefix("sqlite:///")) if tracking_uri.startswith("sqlite:///") else None
        if path is None:
            client = MlflowClient(tracking_uri=tracking_uri)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_name(path.name + ".lock"), "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    client = MlflowClient(tracking_uri=tracking_uri)
                    client.search_registered_models(max_results=1)  # creates and migrates the tables
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
        _clients[tracking_uri] = client
        return client


def _from_mlflow(uri: str, tracking_uri: str) -> tuple[LearnerModel, str]:
    """Download a registered model version's artifact folder and load it (never unpickles)."""
    import mlflow

    client = registry_client(tracking_uri)
    body = uri.removeprefix("models:/")
    if "@" not in body and "/" not in body:
        raise ModelLoadError(f"model URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    try:
        if "@" in body:
            name, alias = body.split("@", 1)
            mv = client.get_model_version_by_alias(name, alias)
        else:
            name, version = body.split("/", 1)
            mv = client.get_model_version(name, version)
    except mlflow.exceptions.MlflowException as exc:
        # no such model or version (RESOURCE_DOES_NOT_EXIST), or no such alias on it (MLflow
        # says so with INVALID_PARAMETER_VALUE): nothing registered there, not a failure
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST" or ("alias" in exc.message and "not found" in exc.message):
            raise ModelNotRegistered(f"nothing is registered as {uri!r} yet: {exc.message}") from None
        raise
    # the tracking URI goes with the call: mlflow.set_tracking_uri would set MLFLOW_TRACKING_URI for
    # the whole process (and its subprocesses)
    with tempfile.TemporaryDirectory(prefix="zpd-model-") as target:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=mv.source, dst_path=target, tracking_uri=tracking_uri)
        )
        folder = (
            local if (local / "config.json").exists() else next((p.parent for p in local.rglob("config.json")), local)
        )
        return load_model(folder), f"{name}/{mv.version}"


def trained_on_a_store_at(version: str, tracking_uri: str) -> float | None:
    """When the training run of a registered version (``NAME/N``) started, if it trained on a
    server's answers (``zpd train --from-store``: its ``data.path`` tag names a store): the
    answers received before then may have been trained on. None for any other version, or a
    registry that cannot say (logged)."""
    name, _, number = version.rpartition("/")
    if not name or not number.isdigit():
        return None
    try:
        client = registry_client(tracking_uri)
        run_id = client.get_model_version(name, number).run_id
        run = client.get_run(run_id) if run_id else None
    except Exception as exc:  # the comparison then reads every answer, as for a model trained elsewhere
        log.warning("training run of %s not read: %s", version, exc)
        return None
    if run is None or not str(run.data.tags.get("data.path", "")).startswith("store "):
        return None
    return float(run.info.start_time) / 1000.0


def current_version(uri: str, tracking_uri: str) -> str | None:
    """The version a ``models:/NAME@ALIAS`` URI points to now (a cheap registry lookup), else None."""
    if not uri.startswith("models:/") or "@" not in uri:
        return None
    name, alias = uri.removeprefix("models:/").split("@", 1)
    try:
        return f"{name}/{registry_client(tracking_uri).get_model_version_by_alias(name, alias).version}"
    except Exception as exc:  # an unreachable registry or a missing alias: keep serving
        raise ModelLoadError(f"cannot resolve {uri!r}: {type(exc).__name__}: {exc}") from None


def load_candidate(
    uri: str | None, graph: StandardsGraph, tracking_uri: str, bkt: Mapping[str, float] | None = None
) -> tuple[LearnerModel, str, str]:
    """(model, version, source) for a URI: ``models:/...`` (MLflow), a folder path, ``bundled`` or
    ``bkt`` (graph BKT with the parameters ``bkt``)."""
    try:
        if uri is None or uri == "bkt":
            ident = (graph.identifier or graph.title or "graph")[:8]
            params = dict(bkt or {})
            tag = "" if not params else "-" + hashlib.sha256(repr(sorted(params.items())).encode()).hexdigest()[:6]
            return GraphBKT.from_graph(graph, **params), f"bkt-graph@{ident}{tag}", "graph BKT (no training data)"
        if uri.startswith("models:/"):
            model, version = _from_mlflow(uri, tracking_uri)
            return model, version, f"MLflow {uri}"
        folder = BUNDLED_MODEL if uri == "bundled" else Path(uri)
        model = load_model(folder)
        return model, f"{model.name}@{_digest(folder)}", f"folder {folder}"
    except ModelLoadError:
        raise
    except Exception as exc:  # any failure to load is reported, never fatal to the server
        raise ModelLoadError(f"cannot load model {uri!r}: {type(exc).__name__}: {exc}") from None


def gate_report(
    model: LearnerModel, catalog: Catalog, graph: StandardsGraph, config: GateConfig | None = None
) -> GateReport:
    """The promotion gate's static checks (:mod:`models.gate`) for this deployment's catalog and
    standards. Without ``config`` only the probability check counts (a catalog change re-encodes
    the current model)."""
    specs = [ItemSpec(i.id, i.standards, i.difficulty) for i in catalog]
    cfg = config or GateConfig(min_standard_coverage=0, min_item_coverage=0, min_spread=0)
    return check_model(
        model,
        specs,
        list(graph.learning),
        min_standard_coverage=cfg.min_standard_coverage,
        min_item_coverage=cfg.min_item_coverage,
        min_spread=cfg.min_spread,
    )


def refusal(version: str, report: GateReport) -> ModelRefused:
    failed = "; ".join(f"{c.name}: {c.detail}" for c in report.failures())
    return ModelRefused(f"model {version} refused by the promotion gate: {failed}")


def holdout_from_store(
    store: Any,
    learners: int = 200,
    scan: int = 5000,
    catalog_of: Callable[[str], Catalog] | None = None,
    tenant: str | None = None,
    since: float | None = None,
) -> HeldOut:
    """The answers of the most recently active of the first ``scan`` learners listed in the store
    (every tenant, or ``tenant``'s alone), each learner's as a fold reads them (``serving.evidence``: in the order they
    happened, voided ones left out), on the standards they count on in the tenant's catalog
    (``catalog_of``; without it, those they were received with): what a candidate model is
    compared on against the serving one (the deployment's own events: never in an external
    training log). With ``since``, only the answers that arrived after it are scored (those before,
    which a model trained on this store's answers then may have seen, are read as what came
    before), and only learners with such answers are taken."""
    by_tenant: dict[str, list[str]] = {}
    for n, (owner, learner) in enumerate(store.learners(tenant)):
        if n >= scan:
            break
        by_tenant.setdefault(owner, []).append(learner)
    records = [  # one round trip per tenant
        record
        for tenant, learners_of in by_tenant.items()
        for record in store.get_many(tenant, learners_of).values()
        if record.event_count
    ]
    records.sort(key=lambda r: r.updated, reverse=True)
    out: list[list[Event]] = []
    scored: list[list[bool]] = []
    for record in records:
        if len(out) >= learners:
            break
        log = store.events(record.tenant, record.learner_id)
        catalog = catalog_of(record.tenant) if catalog_of is not None else Catalog()
        answers = answers_of(log)
        flags = [since is None or e.received >= since for e in answers]
        if answers and any(flags):
            out.append([_held_out(observation(e), catalog) for e in answers])
            scored.append(flags)
    return HeldOut(out, None if since is None else scored)


def _held_out(answer: Observation, catalog: Catalog) -> Event:
    assert answer.correct is not None  # an answer, not an exposure
    return Event(answer.item_id, catalog.standards_of(answer.item_id, answer.standards), answer.correct, answer.time)


#: seconds before a tenant's model that failed to load on first use is tried again (meanwhile the
#: tenant is served the deployment's model, as when its model cannot be applied)
TENANT_RETRY_S = 30.0


class ModelHolder:
    """Holds the serving model; ``current`` is swapped atomically by :meth:`reload`. A tenant may
    be served a model of its own (``published``: what it is to be served, see
    :meth:`publish`); every other tenant is served ``current`` (:meth:`serving`).

    A tenant's own model is loaded when it is published (up to ``max_tenant_models``) or on the
    tenant's first request after that; at most ``max_tenant_models`` are held at once (``tenants``),
    the least recently served going first and loaded again on its tenant's next request: a
    deployment with hundreds of districts with models of their own neither starts for minutes nor
    holds gigabytes per worker."""

    def __init__(
        self,
        graph: StandardsGraph,
        catalog: Catalog,
        tracking_uri: str,
        bkt: Mapping[str, float] | None = None,
        gate: GateConfig | None = None,
        max_tenant_models: int = 16,
    ):
        self.graph, self.catalog, self.tracking_uri = graph, catalog, tracking_uri
        self.gate = gate or GateConfig()
        self.bkt = dict(bkt or {})
        self.max_tenant_models = max(1, max_tenant_models)
        self._lock = threading.Lock()
        self.current: LoadedModel | None = None
        #: why the last load failed (None: it did not)
        self.last_error: str | None = None
        #: the URIs of the start-up chain passed over because nothing is registered there yet (a
        #: fresh registry: not a failure); emptied once a registered model serves
        self.not_registered: list[str] = []
        #: tenant -> the model of its own published for it: {"uri": the exact version, "version",
        #: "forced"} (replaced whole on a change: read without a lock)
        self.published: dict[str, Mapping[str, Any]] = {}
        #: tenant -> its own model, loaded (at most ``max_tenant_models``; replaced whole on a change)
        self.tenants: dict[str, LoadedModel] = {}
        #: tenant -> when its loaded model last served (the least recent goes first)
        self._used: dict[str, float] = {}
        #: tenant -> when a load on first use may be tried again after it failed
        self._retry_at: dict[str, float] = {}
        self._loading: dict[str, threading.RLock] = {}
        #: the framework and catalog a tenant sees (what its own model is gated over); set by the
        #: deployment, None: the deployment's
        self.sees: Callable[[str], tuple[StandardsGraph, Catalog]] | None = None
        #: called with the tenant each time its own model is loaded on a request (its first here,
        #: or again after it went to make room: the metrics' count of such loads)
        self.on_demand: list[Callable[[str], None]] = []
        #: tenant -> why its model could not be loaded here (it is served what it was before)
        self.tenant_errors: dict[str, str] = {}
        #: called with the model after every swap (the metrics' model version)
        self.listeners: list[Callable[[LoadedModel], None]] = []
        #: called with the tenant and its own model (None: the deployment's again) after every change
        self.tenant_listeners: list[Callable[[str, LoadedModel | None], None]] = []

    def serving(self, tenant: str) -> LoadedModel:
        """The model ``tenant`` is served: its own (loaded now if it is published and not held),
        or the deployment's."""
        own = self.tenants.get(tenant)
        if own is not None:
            self._used[tenant] = time.monotonic()
            return own
        if tenant in self.published:
            return self._on_demand(tenant)
        assert self.current is not None  # an engine's holder always has a model (build_engine loads one)
        return self.current

    def _on_demand(self, tenant: str) -> LoadedModel:
        """Load the model published for ``tenant`` on its request (one load at a time per tenant:
        its concurrent requests wait for it); one that fails leaves the tenant on the deployment's
        model for :data:`TENANT_RETRY_S` seconds."""
        with self._tenant_lock(tenant):
            own = self.tenants.get(tenant)
            if own is not None:
                return own
            entry = self.published.get(tenant)
            assert self.current is not None
            if entry is None or time.monotonic() < self._retry_at.get(tenant, 0.0):
                return self.current
            try:
                loaded = self.load_published(tenant, entry)
            except ModelLoadError as exc:
                log.error("tenant %s: its model %s not loaded: %s", tenant, entry.get("uri"), exc)
                return self.current
            for listener in self.on_demand:
                listener(tenant)
            return loaded

    def _tenant_lock(self, tenant: str) -> threading.RLock:
        lock = self._loading.get(tenant)
        if lock is None:
            with self._lock:
                lock = self._loading.setdefault(tenant, threading.RLock())
        return lock

    def load_published(self, tenant: str, entry: Mapping[str, Any]) -> LoadedModel:
        """Load and serve ``tenant`` the model ``entry`` publishes for it (gated over what the
        tenant sees, as where it was published; forced as it was there), unless it is held."""
        with self._tenant_lock(tenant):
            if self.is_current(tenant, entry):
                return self.tenants[tenant]
            try:
                return self.reload_tenant(
                    tenant,
                    entry["uri"],
                    force_reason=entry.get("forced"),
                    sees=self.sees(tenant) if self.sees is not None else None,
                    serving=self.current,
                )
            except ModelLoadError:  # not tried again on the tenant's requests for a while
                self._retry_at[tenant] = time.monotonic() + TENANT_RETRY_S
                raise

    def publish(self, published: Mapping[str, Mapping[str, Any]]) -> None:
        """What each tenant with a model of its own is to be served (tenant -> entry, see
        :data:`serving.deployment.TENANT_MODELS`); a tenant no longer in it is served the
        deployment's model again. A model not held is loaded on its tenant's next request (or by
        :meth:`load_published`); a held one whose entry changed serves until
        :meth:`load_published` replaces it (the deployment calls it at once)."""
        with self._lock:
            before = self.published
            self.published = {t: dict(e) for t, e in published.items()}
            for tenant, entry in published.items():
                if before.get(tenant) != entry:
                    self._retry_at.pop(tenant, None)
        for tenant in [t for t in before if t not in published]:
            self.drop_tenant(tenant)

    def is_current(self, tenant: str, entry: Mapping[str, Any]) -> bool:
        """Whether ``tenant``'s held model is the one ``entry`` publishes."""
        have = self.tenants.get(tenant)
        return have is not None and have.version == entry.get("version") and have.forced == entry.get("forced")

    def _build(
        self,
        uri: str | None,
        holdout: Holdout | None = None,
        force_reason: str | None = None,
        serving: LoadedModel | None = None,
        sees: tuple[StandardsGraph, Catalog] | None = None,
    ) -> LoadedModel:
        """Load ``uri`` and pass it through the gate: the static checks, and with ``holdout`` the
        comparison with the model it would replace (``serving``, by default the deployment's) on
        those events. ``sees``: the framework and catalog it is to serve (a tenant's own; by
        default the deployment's), over which both models are checked as they would serve it.
        ``force_reason`` lets a model that fails through (logged with the report)."""
        model, version, source = load_candidate(uri, self.graph, self.tracking_uri, self.bkt)
        graph, catalog = sees if sees is not None else (self.graph, self.catalog)

        def served(m: LearnerModel) -> LearnerModel:  # as TenantContent serves a model over a framework
            return m if graph is self.graph else for_graph(m, graph)

        try:
            report = gate_report(served(model), catalog, graph, self.gate)
            current = serving if serving is not None else self.current
            if holdout is not None and current is not None and current.version != version:
                since = (
                    trained_on_a_store_at(version, self.tracking_uri) if uri and uri.startswith("models:/") else None
                )
                held = holdout(since)
                check = compare(
                    served(model),
                    served(current.model),
                    held.learners,
                    max_auc_drop=self.gate.max_auc_drop,
                    max_log_loss_rise=self.gate.max_log_loss_rise,
                    scored=held.scored,
                )
                if since is not None:
                    check = replace(
                        check,
                        detail=check.detail
                        + (
                            "; only answers received since its training run started count (it was trained on a "
                            f"server's answers until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(since))})"
                        ),
                    )
                report.checks.append(check)
            if holdout is not None and uri is not None and uri.startswith("models:/"):
                self._record(version, report, force_reason)
            if not report.passed and not force_reason:
                raise refusal(version, report)
            if not report.passed:
                log.warning("model %s forced past the promotion gate (%s): %s", version, force_reason, report.summary())
            predictions = CatalogPredictions.encode(model, self.catalog)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"the promotion gate for {version} raised {type(exc).__name__}: {exc}") from None
        return LoadedModel(
            model,
            version,
            source,
            time.time(),
            predictions,
            report.to_json(),
            force_reason,
        )

    def _record(self, version: str, report: GateReport, force_reason: str | None) -> None:
        """Keep a reload's gate report on the registered version (tag ``gate.reload``), as
        ``zpd models promote`` keeps its own; a registry that cannot be written is only logged."""
        name, _, number = version.rpartition("/")
        if not name or not number.isdigit():
            return
        verdict = {**report.to_json(), "forced_reason": force_reason, "at": time.time()}
        try:
            registry_client(self.tracking_uri).set_model_version_tag(name, number, "gate.reload", _json(verdict))
        except Exception as exc:  # the gate's verdict stands; only its record is missing
            log.warning("gate report of %s not recorded in MLflow: %s", version, exc)

    def load_first(self, uris: list[str | None]) -> LoadedModel:
        """Load the first URI that works (the fallback chain at start-up)."""
        errors: list[str] = []
        unregistered: list[str] = []
        for uri in uris:
            try:
                loaded = self._build(uri)
            except ModelNotRegistered as exc:  # a fresh registry: the next choice, as configured
                unregistered.append(str(uri))
                log.info("model %s not used: %s", uri, exc)
                continue
            except ModelLoadError as exc:
                errors.append(str(exc))
                log.warning("model %s not used: %s", uri, exc)
                continue
            self.current = loaded
            self.last_error = "; ".join(errors) or None
            self.not_registered = unregistered
            log.info("serving model %s (%s)", loaded.version, loaded.source)
            return loaded
        raise ModelLoadError(
            "no model could be loaded: "
            + "; ".join(errors + [f"nothing is registered as {uri!r} yet" for uri in unregistered])
        )

    def reload(
        self,
        uri: str | None,
        holdout: Holdout | None = None,
        force_reason: str | None = None,
    ) -> LoadedModel:
        """Load ``uri`` through the gate, then swap. On failure the current model stays."""
        with self._lock:
            try:
                loaded = self._build(uri, holdout, force_reason)
            except ModelLoadError as exc:
                self.last_error = str(exc)
                raise
            self.current = loaded
            self.last_error = None
            self.not_registered = []
            for listener in self.listeners:
                listener(loaded)
            return loaded

    def reload_tenant(
        self,
        tenant: str,
        uri: str,
        holdout: Holdout | None = None,
        force_reason: str | None = None,
        sees: tuple[StandardsGraph, Catalog] | None = None,
        serving: LoadedModel | None = None,
    ) -> LoadedModel:
        """Load ``uri`` through the gate (over ``sees``, the tenant's framework and catalog;
        compared on ``holdout``, the tenant's own answers, with ``serving``: by default the
        model ``tenant`` is served now), then serve it to ``tenant``. On failure the tenant keeps
        what it was served."""
        with self._lock:
            try:
                compared = serving or self.tenants.get(tenant) or self.current
                loaded = self._build(uri, holdout, force_reason, compared, sees)
            except ModelLoadError as exc:
                self.tenant_errors = {**self.tenant_errors, tenant: str(exc)}
                raise
            self._serve_tenant(tenant, loaded)
            return loaded

    def drop_tenant(self, tenant: str) -> bool:
        """Serve ``tenant`` the deployment's model again; False if it had none of its own."""
        with self._lock:
            had = tenant in self.tenants or tenant in self.published
            self.published = {t: e for t, e in self.published.items() if t != tenant}
            self._serve_tenant(tenant, None)
            if had:  # (a model set aside to make room was served here too)
                for listener in self.tenant_listeners:
                    listener(tenant, None)
            return had

    def _serve_tenant(self, tenant: str, loaded: LoadedModel | None) -> None:
        """Serve ``tenant`` ``loaded`` (None: the deployment's model); under the lock. The maps
        are replaced, never changed in place: requests read them without the lock. Beyond
        ``max_tenant_models`` held, the least recently served goes (its tenant's next request
        loads it again)."""
        self.tenant_errors = {t: e for t, e in self.tenant_errors.items() if t != tenant}
        self._retry_at.pop(tenant, None)
        others = {t: m for t, m in self.tenants.items() if t != tenant}
        if loaded is None:
            self.tenants = others
            self._used.pop(tenant, None)
            return
        self._used[tenant] = time.monotonic()
        while len(others) >= self.max_tenant_models:
            gone = min(others, key=lambda t: self._used.get(t, 0.0))
            del others[gone]
            log.info("tenant %s: its model %s set aside to make room", gone, self.tenants[gone].version)
        self.tenants = {**others, tenant: loaded}
        for listener in self.tenant_listeners:
            listener(tenant, loaded)

    def refresh_catalog(self, catalog: Catalog) -> None:
        """Re-encode the catalog for the current model after a catalog change."""
        with self._lock:
            self.catalog = catalog
            cur = self.current
            if cur is not None:
                self.current = _encoded(cur, catalog, self.graph)
            self.tenants = {t: _encoded(m, catalog, self.graph) for t, m in self.tenants.items()}

    def describe(self, tenant: str | None = None) -> dict[str, Any]:
        """The model ``tenant`` is served (without one: the deployment's), and why its last load
        failed; ``scope`` says whose model it is."""
        own = self.serving(tenant) if tenant is not None else None
        own = own if own is not self.current else None
        cur = own if own is not None else self.current
        error = self.tenant_errors.get(tenant) if tenant is not None else None
        return {
            "version": cur.version if cur else None,
            "name": cur.model.name if cur else None,
            "source": cur.source if cur else None,
            "loaded_at": cur.loaded_at if cur else None,
            "last_error": error if own is not None or error else self.last_error,
            "gate": cur.gate if cur else None,
            "forced": cur.forced if cur else None,
            "scope": "tenant" if own is not None else "deployment",
            "not_registered": list(self.not_registered) if own is None else [],
        }


def _encoded(loaded: LoadedModel, catalog: Catalog, graph: StandardsGraph) -> LoadedModel:
    """``loaded`` with its predictions over ``catalog`` (after a catalog change)."""
    report = gate_report(loaded.model, catalog, graph)
    if not report.passed:
        raise refusal(loaded.version, report)
    return LoadedModel(
        loaded.model,
        loaded.version,
        loaded.source,
        loaded.loaded_at,
        CatalogPredictions.encode(loaded.model, catalog),
        loaded.gate,
        loaded.forced,
    )
