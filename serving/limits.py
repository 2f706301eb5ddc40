"""A request body size limit, checked before the body is read or parsed.

An oversized body is refused with 413 and the API's JSON error as soon as its
``Content-Length`` (or, for a chunked body, the bytes received so far) passes the limit, so a
huge upload costs neither memory nor JSON parsing. A page's form (``/ui/...``) gets a page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

__all__ = ["BodyLimitMiddleware"]


class BodyLimitMiddleware:
    """``max_bytes`` for every path but those ``paths`` gives a limit of their own (a roster
    upload is a district's files, an event batch is not). ``page(limit)``: the HTML page, with its
    headers, that a browser's form under ``/ui/`` gets instead of the API's JSON."""

    def __init__(
        self,
        app: Any,
        max_bytes: int,
        paths: dict[str, tuple[int, str]] | None = None,
        page: Callable[[int], tuple[bytes, Mapping[str, str]]] | None = None,
    ):
        self.app, self.max_bytes = app, max_bytes
        self.paths = paths or {}
        self.page = page

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, hint = self.paths.get(scope.get("path", ""), (self.max_bytes, "send events in smaller batches"))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > limit:
                    await self._refuse(scope, send, limit, hint)
                    return
        received = 0
        started = refused = False

        async def counted() -> dict:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit and not started:
                    # answer now; the app sees the client go away and its answer is dropped
                    refused = True
                    await self._refuse(scope, send, limit, hint)
                    return {"type": "http.disconnect"}
            return message

        async def tracked(message: dict) -> None:
            nonlocal started
            if refused:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, scope: dict, send: Any, limit: int, hint: str) -> None:
        if self.page is not None and scope.get("path", "").startswith("/ui/"):
            body, headers = self.page(limit)
        else:
            body = orjson.dumps(
                {
                    "error": {
                        "code": "body_too_large",
                        "field": "body",
                        "message": f"the request body is larger than {limit} bytes; {hint}",
                    }
                }
            )
            headers = {"content-type": "application/json"}
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    *((name.lower().encode(), value.encode()) for name, value in headers.items()),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
