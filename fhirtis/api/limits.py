"""Bounded work: a request body larger than ``service.max_body_bytes`` is answered 413 without
being read whole: a declared ``Content-Length`` over the limit before anything is read, a body
without one (chunked) as soon as the bytes received pass the limit. A ``Content-Length`` that is
not a number of bytes (RFC 9110 §8.6: digits only) is a malformed request: 400, unread.

Past ``service.max_requests_in_flight`` requests held at once, another is answered 503 at once,
unread, with ``Retry-After`` (:class:`InFlightLimit`): each request in flight holds its parsed
body while it waits for an evaluation thread (:mod:`fhirtis.pipeline.off_loop`) or the FHIR
server, so the process's memory is bounded by the limit times the body limit, not by the
callers."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhirtis.api.errors import outcome, outcome_response

__all__ = [
    "MAX_JSON_DEPTH",
    "NEVER_REFUSED",
    "RETRY_AFTER_SECONDS",
    "BodyLimit",
    "BodyTooLarge",
    "InFlightLimit",
    "nested_deeper_than",
]

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


NEVER_REFUSED = frozenset({"/livez", "/readyz", "/metrics"})
"""Paths answered however many requests are in flight: the probes (a busy service is not a dead
one to restart) and the metrics that show it busy."""

RETRY_AFTER_SECONDS = 1


class InFlightLimit:
    """ASGI middleware: at most ``limit`` requests in flight (from their arrival to their
    answer's end, whether it ends well, fails or the caller goes away); another is answered
    503 at once, unread, with ``Retry-After``: an OperationOutcome (``throttled``), or a CDS
    Hooks error under ``/cds-services``. :data:`NEVER_REFUSED` paths are not counted."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0  # changed on the event loop only, with no await between test and set

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in NEVER_REFUSED:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            message = (
                f"the service is busy: {self.limit} requests are in progress "
                "(service.max_requests_in_flight); retry shortly"
            )
            retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
            await _refuse(scope, receive, send, 503, message, code="throttled", headers=retry)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    """The refusal, unread: an OperationOutcome (its issue ``code``, else the status's), or a
    CDS Hooks error under ``/cds-services``; the connection is closed (the body is unread)."""
    sent = {"Connection": "close", **(headers or {})}
    if str(scope.get("path", "")).startswith("/cds-services"):
        error = {400: "invalid-request", 503: "busy"}.get(status, "request-refused")
        response = JSONResponse({"error": error, "message": message}, status, headers=sent)
    else:
        response = outcome_response(status, outcome(status, message, code=code), sent)
    await response(scope, receive, send)
