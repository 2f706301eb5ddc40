"""FastAPI dependencies: the service and the authenticated principal, with scope checks."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from serving.auth import Principal
from serving.service import ApiError, LearnerService

__all__ = ["AdminDep", "IngestDep", "ReadDep", "ServiceDep", "TeacherDep", "require"]


# The dependencies are ``async``: they run on the event loop instead of taking a thread-pool round
# trip each; the only blocking step (reading a key the cache does not hold) goes to the pool.


async def get_service(request: Request) -> LearnerService:
    return request.app.state.service


ServiceDep = Annotated[LearnerService, Depends(get_service)]


async def _principal(request: Request) -> Principal:
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


def require(scope: str):
    """A dependency that returns the principal if its key has ``scope`` (admin has every scope)."""

    async def check(request: Request) -> Principal:
        principal = await _principal(request)
        if scope not in principal.scopes and "admin" not in principal.scopes:
            raise ApiError(403, "forbidden", f"this key lacks the {scope!r} scope", "Authorization")
        return principal

    return Depends(check)


IngestDep = Annotated[Principal, require("ingest")]
ReadDep = Annotated[Principal, require("read")]
TeacherDep = Annotated[Principal, require("teacher")]
AdminDep = Annotated[Principal, require("admin")]
