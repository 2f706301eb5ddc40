"""FastAPI dependencies: the service and the authenticated principal, with scope checks."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBasic, HTTPBearer
from starlette.concurrency import run_in_threadpool

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
    "require",
]

#: the errors every API route may answer, with the error body they all share
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": text}
    for status, text in (
        (400, "a request the xAPI resource cannot accept"),
        (401, "no API key, or an unknown or revoked one"),
        (403, "the key lacks the scope this route needs"),
        (404, "an unknown learner, standard or item of the caller's tenant"),
        (409, "a conflicting event id, a learner busy with another write, or a refused model"),
        (413, "a body or batch over the limits"),
        (422, "invalid input; the body names the field at fault"),
        (503, "the store does not answer; retry later"),
    )
}


def links_to(parameters: dict[str, str], operations: dict[str, tuple[str, str]]) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry of a route whose 200 answer names what other operations take: an
    OpenAPI link to each (``name: (method, path)``), passing the path parameters it names, each
    given as a runtime expression such as ``$response.body#/learners/0/learner_id``. Clients and
    schemathesis's stateful phase follow them with real ids."""
    return {
        200: {
            "links": {
                name: {
                    "operationRef": "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method,
                    "parameters": {p: value for p, value in parameters.items() if "{" + p + "}" in path},
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


def require(scope: str):
    """A dependency that returns the principal if its key has ``scope`` (admin has every scope of
    its tenant; ``operator``, which acts on the whole deployment, only a key given it has)."""

    async def check(
        request: Request, _bearer_key: Annotated[None, Security(_bearer)], _basic_key: Annotated[None, Security(_basic)]
    ) -> Principal:
        principal = await principal_of(request)
        if not has_scope(principal.scopes, scope):
            raise ApiError(403, "forbidden", f"this key lacks the {scope!r} scope", "Authorization")
        learner_id = request.path_params.get("learner_id")
        if learner_id is not None and principal.teacher:
            service: LearnerService = request.app.state.service
            allowed = await run_in_threadpool(service.scope_of, principal)
            if allowed is not None and learner_id not in allowed:  # a teacher's key reaches her students only
                raise ApiError(
                    404, "unknown_learner", f"unknown learner {learner_id!r} among your students", "learner_id"
                )
        return principal

    return Depends(check)


IngestDep = Annotated[Principal, require("ingest")]
ReadDep = Annotated[Principal, require("read")]
TeacherDep = Annotated[Principal, require("teacher")]
AdminDep = Annotated[Principal, require("admin")]
OperatorDep = Annotated[Principal, require("operator")]
