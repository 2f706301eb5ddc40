"""How every API route reads a JSON body: as JSON (RFC 8259) that is also text.

JSON's ``\\uD800``-style escapes can name half of a UTF-16 surrogate pair alone. Python's JSON
reader accepts it and makes a string no store can hold as UTF-8, so an id, a title or an activity
IRI carrying one would fail deep in a write (a 500). Such a body is refused as it is read, naming
where the string is (``body[0].item_id``), with the 4xx of a body that is not JSON. Only a body
that has such an escape is looked through (an escaped astral character, as ``ensure_ascii``
writers send emoji, is a pair and is kept).

Every router is made with :func:`api_router`, whose routes (:class:`JsonRoute`) read bodies so;
``tests/serving/test_api.py`` checks that every route of the app is one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

__all__ = ["NOT_TEXT", "JsonRoute", "api_router", "lone_surrogate", "read_json"]

#: how the reason a body is refused for a lone surrogate begins (the app's error handler keeps it)
NOT_TEXT = "is not text:"

#: a \u escape of a surrogate code unit (D800-DFFF), high or low
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any, where: str = "body") -> str | None:
    """Where in ``value`` (a parsed JSON document) a string or a key holds a lone surrogate, or None."""
    if isinstance(value, str):
        return where if _SURROGATE.search(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                return f"{where} (a key)"
            found = lone_surrogate(item, f"{where}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for k, item in enumerate(value):
            found = lone_surrogate(item, f"{where}[{k}]")
            if found is not None:
                return found
    return None


def read_json(body: bytes) -> Any:
    """``body`` parsed as JSON; :class:`json.JSONDecodeError` when it is not JSON, or holds a
    string that is not text (its message begins with :data:`NOT_TEXT` and names where)."""
    parsed = json.loads(body)
    if _SURROGATE_ESCAPE.search(body):
        where = lone_surrogate(parsed)
        if where is not None:
            raise json.JSONDecodeError(
                f"{NOT_TEXT} {where} holds half of a UTF-16 surrogate pair alone (a \\uD800-\\uDFFF escape), which is "
                "no character; send text as UTF-8, or a character beyond U+FFFF as both halves",
                "",
                0,
            )
    return parsed


class _TextJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = read_json(await self.body())
        return self._json


class JsonRoute(APIRoute):
    """An API route whose JSON body is read by :class:`_TextJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def read_as_text(request: Request) -> Response:
            return await handler(_TextJsonRequest(request.scope, request.receive))

        return read_as_text


def api_router(**options: Any) -> APIRouter:
    """An ``APIRouter`` whose routes read JSON bodies as text (every router of the API)."""
    return APIRouter(route_class=JsonRoute, **options)
