"""Bounded work: a request body larger than ``service.max_body_bytes`` is answered 413 without
being read whole: a declared ``Content-Length`` over the limit before anything is read, a body
without one (chunked) as soon as the bytes received pass the limit. A ``Content-Length`` that is
not a number of bytes (RFC 9110 §8.6: digits only) is a malformed request: 400, unread."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhirtis.api.errors import outcome, outcome_response

__all__ = ["MAX_JSON_DEPTH", "BodyLimit", "BodyTooLarge", "nested_deeper_than"]

MAX_JSON_DEPTH = 100
"""The deepest nesting of objects and arrays a request body may have. FHIR resources, even in a
Bundle inside a CDS Hooks prefetch, are a few dozen levels deep at most; far deeper JSON parses
but exhausts Python's recursion when it is copied or walked later (a 500)."""


def nested_deeper_than(value: object, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether parsed JSON nests objects and arrays more than ``limit`` levels (iteratively)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = list(item)
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class BodyTooLarge(HTTPException):
    """Raised by ``receive`` once the body passes the limit; the error handlers answer 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, as an OperationOutcome (or a CDS
    Hooks error under ``/cds-services``)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name != b"content-length":
                continue
            if not value.isdigit():  # bytes: ASCII digits only
                await _refuse(
                    scope, receive, send, 400, "the Content-Length header is not a number"
                )
                return
            if int(value) > self.max_bytes:
                await _refuse(scope, receive, send, 413, self._too_large())
                return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited, send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, message: str) -> None:
    """The refusal, unread: an OperationOutcome, or a CDS Hooks error under ``/cds-services``."""
    headers = {"Connection": "close"}
    if str(scope.get("path", "")).startswith("/cds-services"):
        error = "invalid-request" if status == 400 else "request-refused"
        response = JSONResponse({"error": error, "message": message}, status, headers=headers)
    else:
        response = outcome_response(status, outcome(status, message), headers)
    await response(scope, receive, send)
