"""Reading an HTTP answer's body whole, refused as it arrives once it passes a size cap.

One rule for every body fhirtis reads into memory: a FHIR server's answers
(``max_response_bytes``) and the SMART configuration and token answers of the auth flow. A
declared ``Content-Length`` over the cap is refused before a byte is read; a body without one is
counted chunk by chunk and refused at the chunk that passes the cap, so a 200 MB answer is never
held whole. A body whose ``Content-Encoding`` cannot be decoded is a malformed answer too, not a
raw httpx error. The response is closed in every case.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from fhirtis.io import _urls
from fhirtis.io._errors import MalformedResponse


class _Body:
    """The chunks read so far, and the refusal once they pass ``cap``."""

    def __init__(self, response: httpx.Response, cap: int, setting: str) -> None:
        self._response = response
        self._cap = cap
        self._setting = setting
        # the request as a message may name it: query values (patient identifiers) redacted
        self._where = _urls.redact(response.request.url)
        self._chunks: list[bytes] = []
        self._size = 0
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and int(declared) > cap:
            raise self._refusal()

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > self._cap:
            raise self._refusal()
        self._chunks.append(chunk)

    def keep(self) -> None:
        self._response._content = b"".join(self._chunks)  # what httpx's read()/aread() set

    @contextmanager
    def decoding(self) -> Iterator[None]:
        try:
            yield
        except httpx.DecodingError:
            # e.g. labelled Content-Encoding: gzip by a gateway, but not gzip
            raise MalformedResponse(
                f"{self._request()}: the answer's Content-Encoding could not be decoded",
                status=self._response.status_code,
                url=self._where,
            ) from None

    def _request(self) -> str:
        return f"{self._response.request.method} {self._where}"

    def _refusal(self) -> MalformedResponse:
        setting = f" ({self._setting})" if self._setting else ""
        return MalformedResponse(
            f"{self._request()}: the answer is larger than {self._cap} bytes{setting}; not read",
            status=self._response.status_code,
            url=self._where,
        )


def read_capped(response: httpx.Response, cap: int, setting: str = "") -> None:
    """Read ``response``'s body (a streamed answer) into ``response.content``, refusing it past
    ``cap`` bytes with a :class:`MalformedResponse` that names the request (method, URL with its
    query values redacted) and ``setting``, the knob that sets the cap, if any."""
    try:
        body = _Body(response, cap, setting)
        with body.decoding():
            for chunk in response.iter_bytes():
                body.add(chunk)
        body.keep()
    finally:
        response.close()


async def aread_capped(response: httpx.Response, cap: int, setting: str = "") -> None:
    """The async twin of :func:`read_capped`."""
    try:
        body = _Body(response, cap, setting)
        with body.decoding():
            async for chunk in response.aiter_bytes():
                body.add(chunk)
        body.keep()
    finally:
        await response.aclose()
