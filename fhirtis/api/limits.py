"""Bounded work: a request body larger than ``service.max_body_bytes`` is answered 413 without
being read whole: a declared ``Content-Length`` over the limit before anything is read, a body
without one (chunked) as soon as the bytes received pass the limit."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhirtis.api.errors import outcome, outcome_response

__all__ = ["BodyLimit", "BodyTooLarge"]


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
            if name == b"content-length" and (not value.isdigit() or int(value) > self.max_bytes):
                await self._refuse(scope, receive, send)
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

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than {self.max_bytes} bytes"
        headers = {"Connection": "close"}
        if str(scope.get("path", "")).startswith("/cds-services"):
            body = {"error": "request-refused", "message": message}
            response = JSONResponse(body, status_code=413, headers=headers)
        else:
            response = outcome_response(413, outcome(413, message), headers)
        await response(scope, receive, send)
