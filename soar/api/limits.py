"""Size limits on request bodies: refused with 413 before anything is parsed into a model or stored.

A route of a router built with ``route_class=SizeLimitedRoute`` reads its body itself, counting
bytes as they arrive: a ``Content-Length`` over ``ingest_max_request_bytes`` is refused before the
body is read, a body that grows past it (chunked, or a lying header) as soon as it does. Then every
string of the JSON body, key or value, at any depth, must fit ``ingest_max_field_bytes`` (UTF-8).
The refusal is one line naming the setting, its value and, for a field, where it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, MutableMapping
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from soar.api._common import settings_of

TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"description": "The body, or one string in it, is over its configured size limit (the message names it)"}
}


def _too_large(detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=413)


def _over(text: str, limit: int) -> bool:
    # a character is 1 to 4 bytes in UTF-8: only a string that may be over the limit is encoded
    return len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


def oversized_field(data: Any, limit: int) -> str | None:
    """Where the first string (key or value) longer than ``limit`` UTF-8 bytes is, else None."""
    todo: list[tuple[str, Any]] = [("body", data)]
    while todo:  # iterative: a deeply nested body costs no recursion
        where, value = todo.pop()
        if isinstance(value, str):
            if _over(value, limit):
                return where
        elif isinstance(value, dict):
            for key, item in value.items():
                if _over(key, limit):
                    return f"a key in {where}"
                todo.append((f"{where}.{key}", item))
        elif isinstance(value, list):
            todo.extend((f"{where}[{i}]", item) for i, item in enumerate(value))
    return None


async def read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or None as soon as it is over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


def _replaying(request: Request, body: bytes) -> Request:
    """A Request over the same scope whose body is ``body`` (already read), through Starlette's public API."""
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()  # after the body: the client's disconnect, as the server reports it

    return Request(request.scope, receive)


class SizeLimitedRoute(APIRoute):
    """An APIRoute whose body is refused with 413 over the ingest size limits (see the module doc)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def limited(request: Request) -> Response:
            settings = settings_of(request)
            limit = settings.ingest_max_request_bytes
            body = await read_limited(request, limit)
            if body is None:
                return _too_large(f"request body is over ingest_max_request_bytes ({limit} bytes)")
            request = _replaying(request, body)  # the stream cannot be read twice: FastAPI reads it from here
            try:
                data = json.loads(body) if body else None
            except (ValueError, RecursionError):
                data = None  # not JSON (or absurdly nested): FastAPI answers it as usual
            field_limit = settings.ingest_max_field_bytes
            where = oversized_field(data, field_limit)
            if where is not None:
                return _too_large(f"{where} is over ingest_max_field_bytes ({field_limit} bytes)")
            return await handle(request)

        return limited
