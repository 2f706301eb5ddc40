"""Prometheus metrics through ``prometheus_client``: requests and their latency per route, events
ingested, learners refolded for late answers, roster imports, model reloads, the serving model's
version, and the process and runtime metrics.

With ``zpd serve --workers N`` the workers run in ``prometheus_client``'s multiprocess mode:
``zpd serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` (emptied at each start) before the workers start,
each worker writes its values there, and ``/metrics`` answers the sum over every worker, whichever
worker the scrape reaches (plus that worker's own process metrics). A single process keeps its
values in memory.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    gc_collector,
    generate_latest,
    platform_collector,
    process_collector,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from serving.model_provider import LoadedModel

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "Metrics", "MetricsMiddleware"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable (set by `zpd serve`)
CONTENT_TYPE = CONTENT_TYPE_LATEST
BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def _multiprocess() -> bool:
    """Whether this process's metric values live in the shared folder: prometheus_client decides
    when it is imported (a process that imported it before the folder was named keeps its values
    in memory)."""
    folder = os.environ.get(MULTIPROC_ENV)
    return bool(folder) and os.path.isdir(folder or "") and values.ValueClass is not values.MutexValue


class Metrics:
    """The metrics of one app, on a registry of its own (several apps may share a process)."""

    def __init__(self) -> None:
        self.multiprocess = _multiprocess()
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "zpd_requests", "HTTP requests by method, route and status.", ["method", "route", "status"], registry=r
        )
        self.latency = Histogram(
            "zpd_request_seconds",
            "Request latency by method and route.",
            ["method", "route"],
            buckets=BUCKETS,
            registry=r,
        )
        self.events_ingested = Counter("zpd_events_ingested", "Events accepted (new).", registry=r)
        self.events_duplicate = Counter(
            "zpd_events_duplicate", "Repeated events acknowledged without change.", registry=r
        )
        self.caliper_skipped = Counter(
            "zpd_caliper_skipped",
            "Entries of Caliper envelopes not stored, by kind: entity (what a sensor describes) or not_evidence (an "
            "event [caliper] actions does not read). Rising while nothing is ingested: the sensor sends events the "
            "configuration does not read.",
            ["kind"],
            registry=r,
        )
        self.model_reloads = Counter("zpd_model_reloads", "Model reload attempts by outcome.", ["outcome"], registry=r)
        self.refolds = Counter(
            "zpd_refolds",
            "Learners refolded for answers that arrived late or a void, by where the fold started "
            "(checkpoint: the newest kept state before them; log: the whole event log).",
            ["start"],
            registry=r,
        )
        self.refolded_answers = Counter(
            "zpd_refolded_answers",
            "Answers folded again by those refolds, by where they started.",
            ["start"],
            registry=r,
        )
        self.rebuilt_on_read = Counter(
            "zpd_rebuilt_on_read",
            "Learners whose stored state a request (a read, new events) found out of date, by why: model (another "
            "model or standards framework folded it: folded again), catalog (an answer on an item that folds "
            "otherwise since, a move above all: folded again), layout (an older record layout: folded again), "
            "restamped (nothing to fold again: only stamped anew). Each is written back at once, so this follows "
            "a promotion or a catalog change and then stops.",
            ["why"],
            registry=r,
        )
        self.roster_imports = Counter(
            "zpd_roster_imports",
            "Roster import attempts run by this server (POST /v1/rosters), by outcome: done, failed, or retried "
            "(to be run again: the store or a conflict got in the way).",
            ["outcome"],
            registry=r,
        )
        self.roster_import_seconds = Histogram(
            "zpd_roster_import_seconds",
            "How long a roster import attempt ran, by outcome.",
            ["outcome"],
            buckets=(0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0),
            registry=r,
        )
        self.model_info = Gauge(
            "zpd_model_info",
            "The serving model (1 for the version served, 0 for versions served before).",
            ["version", "name"],
            registry=r,
            multiprocess_mode="max",
        )
        self._served: tuple[str, str] | None = None
        self.tenant_model_info = Gauge(
            "zpd_tenant_model_info",
            "A tenant's own model (1 for the version it is served, 0 for versions served before or "
            "when it is served the deployment's again).",
            ["tenant", "version", "name"],
            registry=r,
            multiprocess_mode="max",
        )
        self._tenants_served: dict[str, tuple[str, str]] = {}
        self.tenant_model_loads = Counter(
            "zpd_tenant_model_loads_on_request",
            "Tenants' own models loaded on a request: a tenant's first here, or again after its model was set aside "
            "to make room ([serving] tenant_models_loaded). A steady rate says that limit is too low for the "
            "tenants served.",
            registry=r,
        )
        if not self.multiprocess:
            _runtime(r)

    # ------------------------------------------------------------------ recording
    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def ingested(self, accepted: int, duplicates: int) -> None:
        if accepted:
            self.events_ingested.inc(accepted)
        if duplicates:
            self.events_duplicate.inc(duplicates)

    def caliper_skip(self, kind: str, count: int) -> None:
        self.caliper_skipped.labels(kind).inc(count)

    def refold(self, start: str, answers: int) -> None:
        self.refolds.labels(start).inc()
        self.refolded_answers.labels(start).inc(answers)

    def rebuilt(self, why: str) -> None:
        self.rebuilt_on_read.labels(why).inc()

    def roster_import(self, outcome: str, seconds: float) -> None:
        self.roster_imports.labels(outcome).inc()
        self.roster_import_seconds.labels(outcome).observe(seconds)

    def reload(self, outcome: str) -> None:
        self.model_reloads.labels(outcome).inc()

    def serving(self, version: str, name: str) -> None:
        """The model this worker serves now."""
        if self._served == (version, name):
            return
        if self._served is not None:
            self.model_info.labels(*self._served).set(0)
        self.model_info.labels(version, name).set(1)
        self._served = (version, name)

    def tenant_model_loaded(self, tenant: str) -> None:
        self.tenant_model_loads.inc()

    def tenant_serving(self, tenant: str, loaded: LoadedModel | None) -> None:
        """The model of its own this worker serves ``tenant`` now (None: the deployment's)."""
        before = self._tenants_served.pop(tenant, None)
        if before is not None:
            self.tenant_model_info.labels(tenant, *before).set(0)
        if loaded is not None:
            now = (loaded.version, loaded.model.name)
            self.tenant_model_info.labels(tenant, *now).set(1)
            self._tenants_served[tenant] = now

    # ------------------------------------------------------------------ exposition
    def render(self) -> bytes:
        """The text exposition: this app's registry, or in multiprocess mode every worker's values
        summed, with the answering worker's process and runtime metrics."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        _runtime(registry)
        return generate_latest(registry)


def _runtime(registry: CollectorRegistry) -> None:
    process_collector.ProcessCollector(registry=registry)
    platform_collector.PlatformCollector(registry=registry)
    gc_collector.GCCollector(registry=registry)


class MetricsMiddleware:
    """Plain ASGI middleware timing every HTTP request by its route template (a ``BaseHTTPMiddleware``
    costs a task and a streamed copy of every response; this costs two clock reads)."""

    def __init__(self, app: Any, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # unless a response starts (an unhandled error becomes a 500 outside this middleware)

        async def send_and_observe(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_observe)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")  # the router records the matched route
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - started)
