"""The FastAPI application: resources opened once in the lifespan, one router per resource.

``create_app(config)`` is the factory uvicorn calls (``--factory``); tests pass their own config
(and may pass an open store). Errors always answer JSON ``{"error": {"code", "message", "field"}}``:
4xx for bad input, 503 when the store is down, never a stack trace.
"""

from __future__ import annotations

import functools
import gc
import logging
import re
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from configs import ZPDConfig, load_config
from serving.auth import KeyCache
from serving.bodies import add_components
from serving.deployment import Deployment
from serving.deps import LeanRoute
from serving.imports import POLL_S, RosterImports
from serving.jsonbody import NOT_TEXT
from serving.limits import BodyLimitMiddleware
from serving.metrics import Metrics, MetricsMiddleware
from serving.model_provider import ModelLoadError, current_version
from serving.routes import caliper, catalog, classes, events, gps, health, learners, lti, model, xapi
from serving.service import ApiError, Engine, LearnerService, build_engine
from serving.stores import open_store
from serving.stores.base import LearnerStore, StoreError, StoreUnavailable
from serving.ui import install_ui, invalid_page, too_large_page
from serving.ui.session import UiAuth

__all__ = ["create_app", "build_engine"]

log = logging.getLogger("zpd.serving")


#: what a 401 asks for (RFC 9110): a Bearer key, or the key as the password of HTTP Basic (LRS forwarding)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="zpd", Basic realm="zpd"'}


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": code, "message": message, "field": field}},
        status_code=status,
        headers=CHALLENGE if status == 401 else None,
    )


async def _authorized(request: Request) -> bool:
    from serving.deps import principal_of

    try:
        await principal_of(request)
        return True
    except ApiError:
        return False


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.field)

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.error("store unavailable: %s", exc)
        return _error(503, "store_unavailable", f"the learner store is unavailable, retry later ({exc})")

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI parses the body before the key is checked: a request without a valid key gets
        # 401 whatever its body, so a bad body says nothing to a caller who may not call at all
        if request.url.path.startswith(("/v1/", "/xapi/statements", "/caliper/")) and not await _authorized(request):
            return _error(
                401,
                "unauthorized",
                "send a valid API key (Bearer, or HTTP Basic with the key as password)",
                "Authorization",
            )
        problems = [
            (
                # a body that is not JSON, or not text (see serving.jsonbody): why, not where it stopped
                {"field": "body", "message": _not_json(err.get("ctx", {}).get("error", err["msg"]))}
                if err.get("type") == "json_invalid"
                else {
                    "field": ".".join(str(p) for p in err["loc"] if p not in ("body", "[key]")) or "body",
                    "message": err["msg"],
                }
            )
            for err in exc.errors()
        ]
        if request.url.path.startswith("/ui/"):  # a person at a browser: a page, not JSON
            return invalid_page(request, [(p["field"], p["message"]) for p in problems])
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        body = {
            "error": {
                "code": "invalid_request",
                "message": f"{first['field']}: {first['message']}",
                "field": first["field"],
                "problems": problems,
            }
        }
        # the xAPI and Caliper specifications answer a request the endpoint cannot accept with 400
        return JSONResponse(body, status_code=400 if request.url.path.startswith(("/xapi/", "/caliper/")) else 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = f"no route {request.method} {request.url.path}" if exc.status_code in (404, 405) else str(exc.detail)
        response = _error(exc.status_code, code, message)
        if exc.status_code == 405:  # RFC 9110: Allow lists every method of the path (routes may split them)
            response.headers["Allow"] = ", ".join(_allowed(request))
        elif exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "an unexpected error occurred; it has been logged")


def _not_json(error: str) -> str:
    """Why a body was not read: not JSON, or JSON that is not text (:mod:`serving.jsonbody`)."""
    return error if error.startswith(NOT_TEXT) else f"is not JSON: {error}"


def _poll_alias(app: FastAPI, stop: threading.Event) -> None:
    """Check the configured alias every ``model_poll_s`` seconds; when it moves, load the new
    version and publish it to the other workers."""
    cfg = app.state.config.serving
    holder = app.state.engine.models
    while not stop.wait(cfg.model_poll_s):
        try:
            version = current_version(cfg.model_uri, holder.tracking_uri)
            if version is not None and version != holder.current.version:
                app.state.deployment.set_model(cfg.model_uri)
                app.state.metrics.reload("swapped")
                log.info("model alias moved: now serving %s", version)
        except (ModelLoadError, StoreError) as exc:
            log.warning("model poll: %s", exc)
        _poll_tenant_aliases(app)


def _poll_tenant_aliases(app: FastAPI) -> None:
    """Load the version each tenant's followed alias points to now, when it moved."""
    deployment, holder = app.state.deployment, app.state.engine.models
    try:
        published = deployment.tenant_models()[1]
    except StoreError as exc:
        log.warning("model poll: %s", exc)
        return
    for tenant, entry in published.items():
        follows = entry.get("follows") or ""
        try:
            version = current_version(follows, holder.tracking_uri)
            if version is not None and version != entry.get("version"):
                deployment.set_tenant_model(tenant, follows)
                app.state.metrics.reload("swapped")
                log.info("tenant %s: model alias moved: now serving %s", tenant, version)
        except (ModelLoadError, StoreError) as exc:
            log.warning("model poll, tenant %s: %s", tenant, exc)


def _sync(app: FastAPI, stop: threading.Event) -> None:
    """Apply the deployment settings other workers changed (model, catalog, framework)."""
    deployment = app.state.deployment
    while not stop.wait(app.state.config.serving.sync_s):
        try:
            if deployment.sync():
                log.info("deployment settings applied: %s", deployment.applied)
        except Exception as exc:  # a store outage or a setting this worker cannot apply: keep serving
            deployment.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("deployment sync: %s", deployment.last_error)


def _poll_imports(app: FastAPI, stop: threading.Event) -> None:
    """Start the roster imports nobody runs (see :mod:`serving.imports`): at start-up (a worker
    that stopped may have left one), then every ``POLL_S``."""
    while True:
        try:
            app.state.imports.poll()
        except Exception as exc:  # a store outage: the next look retries
            log.warning("roster imports: %s", exc)
        if stop.wait(POLL_S):
            return


def _prefetch_rosters(app: FastAPI, stop: threading.Event) -> None:
    """Read the rosters of ``[serving] roster_prefetch``'s tenants into this worker as it starts,
    one after another, paced as a request's read is: a teacher's first request does not wait for
    a district's (seconds). ``*`` names every tenant with an API key (no request reaches a tenant
    without one) that has a roster. A roster that cannot be read now is read when a request
    needs it."""
    wanted = app.state.config.serving.roster_prefetch
    store, rosters = app.state.store, app.state.service.rosters
    tenants = list(dict.fromkeys(t for t in wanted if t != "*"))
    try:
        if "*" in wanted:
            tenants += sorted({key.tenant for key in store.list_keys()}.difference(tenants))
    except Exception as exc:  # a store outage: requests read what they need
        log.warning("rosters not read at start: %s", exc)
        return
    for tenant in tenants:
        if stop.is_set():
            return
        try:
            if store.roster_version(tenant) == 0:
                continue
            began = time.monotonic()
            counts = rosters.get(tenant).counts()
            log.info(
                "tenant %s: roster read at start in %.1f s (%d users, %d classes, %d enrollments)",
                tenant,
                time.monotonic() - began,
                counts["users"],
                counts["classes"],
                counts["enrollments"],
            )
        except Exception as exc:
            log.warning("tenant %s: roster not read at start: %s", tenant, exc)


def _single_threaded_math() -> None:
    """Each request runs one small model call; multi-threaded BLAS only adds contention."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # optional: without it the BLAS default stays
        pass
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _warm_up(engine: Engine) -> None:
    """Build the per-process caches (candidate encodings, per-standard mastery items) before the
    first request instead of during it."""
    loaded = engine.models.current
    assert loaded is not None  # an engine's holder always has a model (build_engine loads one)
    state = loaded.model.init_state()
    loaded.predictions.all(state)
    loaded.model.mastery(state)


DOCS_ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"


@functools.cache
def _offline_redoc() -> bytes:
    """ReDoc's bundle with the logo it fetches from its CDN replaced by the server's own image."""
    bundle = (DOCS_ASSETS / "redoc.standalone.js").read_bytes()
    return bundle.replace(b"https://cdn.redoc.ly/redoc/logo-mini.svg", b"/docs-assets/favicon.png")


def _offline_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` with their assets served from the installed package:
    the documentation works without the internet (no CDN). The document holds the schemas of the
    bodies the routes check in code (:mod:`serving.bodies`)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_components(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    # ReDoc's bundle fetches its logo from a CDN at run time: served with our own image instead
    @app.get("/docs-assets/redoc.offline.js", include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(_offline_redoc(), media_type="text/javascript")

    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="zpd-engine API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="zpd-engine API",
            redoc_js_url="/docs-assets/redoc.offline.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )


def _allowed(request: Request) -> list[str]:
    """The methods of the request's path, as the API description lists them. As in OpenAPI, a
    literal path (``/v1/standards/import``) takes precedence over a template that also matches it
    (``/v1/standards/{code}``). Paths outside the description (docs, metrics) ask the routes."""
    paths: dict[str, Any] = request.app.openapi().get("paths", {})
    path = request.url.path
    found = paths.get(path)
    if found is None:
        for template, item in paths.items():
            if "{" in template and re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
                found = item
                break
    if found is not None:
        return sorted(method.upper() for method in found if method.upper() in _METHODS)
    return sorted(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in request.app.router.routes
        )
    )


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def create_app(
    config: ZPDConfig | None = None, *, store: LearnerStore | None = None, engine: Engine | None = None
) -> FastAPI:
    config = config or load_config()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _single_threaded_math()
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.serving.request_threads
        # the probes' own threads (readiness, metrics): never queued behind the requests' threads
        app.state.probe_threads = anyio.CapacityLimiter(2)
        # event batches' own threads: a burst of them never takes the other routes' threads
        app.state.ingest_threads = anyio.CapacityLimiter(config.serving.ingest_threads)
        # long admin routes' own threads (serving.deps.admin_work): never all of the requests'
        app.state.admin_threads = anyio.CapacityLimiter(config.serving.admin_threads)
        own_store = store is None
        app.state.config = config
        app.state.store = store or open_store(config.store.url)
        app.state.engine = engine or build_engine(config)
        # a district's roster read by a worker (its first request after a start or a large import)
        # is seconds of work: half the time is left to the requests meanwhile
        app.state.service = LearnerService(app.state.engine, app.state.store, roster_read_share=0.5)
        app.state.service.on_refold = app.state.metrics.refold
        app.state.service.on_rebuilt = app.state.metrics.rebuilt
        app.state.keys = KeyCache(app.state.store, config.serving.key_cache_s)
        app.state.ui = UiAuth(app.state.store, app.state.keys)
        app.state.deployment = Deployment(app.state.engine, app.state.store, app.state.service.content)
        app.state.imports = RosterImports(
            app.state.service.import_roster,
            app.state.store,
            app.state.service.erase_noted,
            on_attempt=app.state.metrics.roster_import,
            apart=(config.model_dump_json(), app.state.store.url),
            apart_bytes=config.serving.roster_apart_bytes,
            # this worker's copy of the roster, if it holds one, brought up to date as soon as the
            # imports end (paced, in the job's thread): a district's whole read is seconds
            on_drained=app.state.service.rosters.refresh,
        )
        try:  # come up with the model and catalog the other workers serve
            app.state.deployment.sync()
        except Exception as exc:
            app.state.deployment.last_error = f"{type(exc).__name__}: {exc}"
            log.error("deployment settings not applied at start-up: %s", app.state.deployment.last_error)
        _warm_up(app.state.engine)
        app.state.service.warm_up()
        # Graph, catalog and model are long-lived: keep them out of the collector's full passes,
        # which otherwise stall a request for tens of milliseconds now and then.
        gc.collect()
        gc.freeze()
        stop = threading.Event()
        holder = app.state.engine.models
        holder.listeners.append(lambda loaded: app.state.metrics.serving(loaded.version, loaded.model.name))
        holder.tenant_listeners.append(app.state.metrics.tenant_serving)
        holder.on_demand.append(app.state.metrics.tenant_model_loaded)
        if holder.current is not None:
            app.state.metrics.serving(holder.current.version, holder.current.model.name)
        for tenant, own in holder.tenants.items():
            app.state.metrics.tenant_serving(tenant, own)
        background = [threading.Thread(target=_poll_imports, args=(app, stop), daemon=True, name="roster-imports")]
        if config.serving.model_poll_s > 0:
            background.append(threading.Thread(target=_poll_alias, args=(app, stop), daemon=True, name="model-poll"))
        if config.serving.sync_s > 0:
            background.append(threading.Thread(target=_sync, args=(app, stop), daemon=True, name="deployment-sync"))
        if config.serving.roster_prefetch:
            background.append(
                threading.Thread(target=_prefetch_rosters, args=(app, stop), daemon=True, name="roster-prefetch")
            )
        for thread in background:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            for thread in background:  # what each has under way ends before the store closes
                thread.join(60)
            if own_store:
                app.state.store.close()

    app = FastAPI(
        title="zpd-engine",
        version="1",
        lifespan=lifespan,
        description="Adaptive learning paths: ingest learning events (native or xAPI, also forwarded by an "
        "LRS to `/xapi/statements`, or the envelopes of a Caliper sensor at `/caliper/events`), get the next activity, playlists, class rotations and the GPS view of "
        "each learner. Every request carries an API key of one tenant (`Authorization: Bearer KEY`, or HTTP "
        'Basic with the key as the password); errors answer `{"error": {"code", "message", "field"}}`.',
        docs_url=None,
        redoc_url=None,
    )
    _offline_docs(app)
    app.state.metrics = Metrics()
    _install_handlers(app)

    roster_limit = (config.serving.max_roster_bytes, "a roster bundle larger than this is imported with the CLI")
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=config.serving.max_body_bytes,
        paths={"/v1/rosters": roster_limit, "/ui/roster": roster_limit},
        page=too_large_page,
    )
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)

    for module in (events, xapi, caliper, learners, classes, catalog, model, gps, lti, health):
        app.include_router(module.router)
    app.include_router(learners.erasures)
    for route in learners.LEAN:  # the hot path, answered ahead of FastAPI's routing (see LeanRoute)
        app.router.routes.insert(0, LeanRoute(route))
    install_ui(app)
    return app
