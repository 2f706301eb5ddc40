"""FastAPI dependencies: the service and the authenticated principal, with scope checks."""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio.to_thread
from fastapi import Depends, Request, Security
from fastapi.dependencies.utils import request_params_to_args
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPBasic, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import Scope

from serving.auth import Principal, has_scope
from serving.responses import ErrorOut
from serving.service import ApiError, LearnerService

__all__ = [
    "ERRORS",
    "links_to",
    "AdminDep",
    "IngestDep",
    "OperatorDep",
    "ReadDep",
    "ServiceDep",
    "TeacherDep",
    "LeanRoute",
    "admin_work",
    "authorize",
    "require",
]

#: the errors every API route may answer, with the error body they all share
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "a request the xAPI resource or the Caliper endpoint cannot accept"),
        (401, "no API key, or an unknown or revoked one"),
        (403, "the key lacks the scope this route needs"),
        (404, "an unknown learner, standard or item of the caller's tenant"),
        (409, "a conflicting event id, a learner busy with another write, or a refused model"),
        (413, "a body or batch over the limits"),
        (422, "invalid input; the body names the field at fault"),
        (503, "the store does not answer; retry later"),
    )
}


def links_to(
    parameters: dict[str, str],
    operations: dict[str, tuple[str, str]],
    bodies: dict[str, dict[str, Any]] | None = None,
) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route whose 200 answer names what other operations take: an
    OpenAPI link to each (``name: (method, path)``), passing the path parameters it names, each
    given as a runtime expression such as ``$response.body#/learners/0/learner_id``, and for the
    links named in ``bodies`` a request body (its values may be runtime expressions too). Clients
    and schemathesis's stateful phase follow them with real ids and answers."""
    bodies = bodies or {}
    return {
        200: {
            "links": {
                name: {
                    "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method,
                    "parameters": {p: value for p, value in parameters.items() if "{" + p + "}" in path},
                    **({"requestBody": bodies[name]} if name in bodies else {}),
                }
                for name, (method, path) in operations.items()
            }
        }
    }


# The dependencies are ``async``: they run on the event loop instead of taking a thread-pool round
# trip each; the only blocking step (reading a key the cache does not hold) goes to the pool.


async def get_service(request: Request) -> LearnerService:
    return request.app.state.service


ServiceDep = Annotated[LearnerService, Depends(get_service)]


async def principal_of(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "basic" and token:  # an LRS forwarding: any user name, the API key as password
        try:
            token = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            token = ""
    elif scheme.lower() != "bearer":
        token = ""
    if not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send an API key as 'Authorization: Bearer KEY' (or HTTP Basic with the key as password)",
            "Authorization",
        )
    keys = request.app.state.keys
    principal = keys.verify_cached(token.strip())
    if principal is keys.MISS:
        principal = await run_in_threadpool(keys.verify, token.strip())
    if principal is None:
        raise ApiError(401, "unauthorized", "the API key is unknown or revoked", "Authorization")
    return principal


class _BearerScheme(HTTPBearer):
    """Declares the Bearer scheme in the OpenAPI document; :func:`principal_of` reads the header."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


class _BasicScheme(HTTPBasic):
    """Declares HTTP Basic (the API key as the password, for LRS forwarding); read by :func:`principal_of`."""

    async def __call__(self, request: Request) -> None:  # type: ignore[override]
        return None


_bearer = _BearerScheme(scheme_name="apiKey", description="An API key of the tenant: `Authorization: Bearer KEY`")
_basic = _BasicScheme(
    scheme_name="basic", description="HTTP Basic with the API key as the password (any user name), as LRSs forward"
)


async def authorize(request: Request, scope: str) -> Principal:
    """The request's principal if its key has ``scope`` (admin has every scope of its tenant;
    ``operator``, which acts on the whole deployment, only a key given it has); a teacher's key
    reaches the learners of her classes only."""
    principal = await principal_of(request)
    if not has_scope(principal.scopes, scope):
        raise ApiError(403, "forbidden", f"this key lacks the {scope!r} scope", "Authorization")
    learner_id = request.path_params.get("learner_id")
    if learner_id is not None and principal.teacher:
        service: LearnerService = request.app.state.service
        allowed = await run_in_threadpool(service.scope_of, principal)
        if allowed is not None and learner_id not in allowed:  # a teacher's key reaches her students only
            raise ApiError(404, "unknown_learner", f"unknown learner {learner_id!r} among your students", "learner_id")
    return principal


#: how a :class:`LeanRoute` resolves each dependency it may meet: from the request alone
_LEAN: dict[Callable[..., Any], Callable[[Request], Awaitable[Any]]] = {get_service: get_service}


def require(scope: str):
    """A dependency that returns the principal if its key has ``scope`` (see :func:`authorize`)."""

    async def check(
        request: Request, _bearer_key: Annotated[None, Security(_bearer)], _basic_key: Annotated[None, Security(_basic)]
    ) -> Principal:
        return await authorize(request, scope)

    _LEAN[check] = functools.partial(authorize, scope=scope)
    return Depends(check)


IngestDep = Annotated[Principal, require("ingest")]
ReadDep = Annotated[Principal, require("read")]
TeacherDep = Annotated[Principal, require("teacher")]
AdminDep = Annotated[Principal, require("admin")]
OperatorDep = Annotated[Principal, require("operator")]


class LeanRoute(Route):
    """A FastAPI route answered without FastAPI's per-request machinery, for the hot path
    (``GET /next``): the same endpoint, the same principal and service, its path and query
    parameters validated by the route's own fields (a bad one raises the same
    ``RequestValidationError``, so the same 422 body), its answer written as JSON as it is (the
    endpoint builds it in the shape of its response model; a test holds both paths' answers
    equal). What it skips is the per-request work FastAPI does for features these routes do not
    use: dependency resolution with caching and exit stacks, telemetry, and validating the answer
    against its model again. The FastAPI route stays registered, behind this one: it is what the
    OpenAPI document describes, and what serves a method this one does not take.

    Only routes without a body, header or cookie parameter whose dependencies are the service
    and :func:`require` qualify; anything else is refused when the app is built."""

    def __init__(self, route: APIRoute):
        dependant = route.dependant
        resolvers = {}
        for dep in dependant.dependencies:
            resolve = _LEAN.get(dep.call)  # type: ignore[arg-type]
            if resolve is None or dep.name is None:
                raise ValueError(f"{route.path}: dependency {dep.call!r} has no lean resolver")
            resolvers[dep.name] = resolve
        if dependant.body_params or dependant.header_params or dependant.cookie_params or dependant.request_param_name:
            raise ValueError(f"{route.path}: only path and query parameters can be served lean")
        endpoint = dependant.call
        if endpoint is None or not inspect.iscoroutinefunction(endpoint):
            raise ValueError(f"{route.path}: a lean route runs an async endpoint on the event loop")
        path_fields, query_fields = dependant.path_params, dependant.query_params

        async def answer(request: Request) -> JSONResponse:
            values = {name: await resolve(request) for name, resolve in resolvers.items()}
            path_values, path_errors = request_params_to_args(path_fields, request.path_params)
            query_values, query_errors = request_params_to_args(query_fields, request.query_params)
            if path_errors or query_errors:
                raise RequestValidationError(path_errors + query_errors)
            return JSONResponse(await endpoint(**values, **path_values, **query_values))

        super().__init__(
            route.path, answer, methods=list(route.methods or ()), name=route.name, include_in_schema=False
        )
        self.methods = set(route.methods or ())  # Starlette would add HEAD to a GET; FastAPI's route does not
        self.original = route

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self.original  # what the metrics label a request with, as for the FastAPI route
        return match, child


T = TypeVar("T")


def admin_work(endpoint: Callable[..., T]) -> Callable[..., Awaitable[T]]:
    """A sync admin route whose work may take seconds (many items, a standards framework, the
    erasure of many learners and a rewrite of the store's files, a model through the promotion
    gate) run in the worker's admin threads (``[serving] admin_threads``), not in its request
    threads: a client sending several at once (a catalog synced in parallel batches) would
    otherwise take every request thread, and a teacher's page would wait for all of them.

    The route keeps the endpoint's signature (FastAPI validates and documents the same
    parameters; string annotations are resolved in the endpoint's module), with the request
    added when the endpoint does not take it: the threads are the app's."""
    hints = typing.get_type_hints(endpoint, include_extras=True)
    signature = inspect.signature(endpoint)
    parameters = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()]
    named = next((p.name for p in parameters if p.annotation is Request), None)
    key = named or "admin_request__"
    if named is None:
        parameters.append(inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, annotation=Request))

    async def run(**kwargs: Any) -> T:
        request = kwargs[key] if named else kwargs.pop(key)
        work = functools.partial(endpoint, **kwargs)
        return await anyio.to_thread.run_sync(work, limiter=request.app.state.admin_threads)

    # not functools.wraps: FastAPI would unwrap to the sync endpoint and run this in a request thread
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(run, attribute, getattr(endpoint, attribute))
    run.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=hints.get("return", signature.return_annotation)
    )
    return run


async def ingesting(request: Request, work: Callable[[], T]) -> T:
    """``work()`` (storing event batches) in one of the worker's ingestion threads (``[serving]
    ingest_threads``), not in a request thread: a 1,000-event batch takes a thread for up to a
    second, and a burst of them (an LMS syncing a backlog) would otherwise take every request
    thread, so a teacher's page or a playlist waited for the whole burst. Batches beyond these
    threads wait their turn here, the other routes do not wait for them."""
    return await anyio.to_thread.run_sync(work, limiter=request.app.state.ingest_threads)
