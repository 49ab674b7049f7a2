"""Retry decisions (pure): which requests may be re-sent, after which failures, how long to wait.

Nothing here sleeps or sends; the client asks and acts.
"""

from __future__ import annotations

import email.utils
import math
import os
import socket
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

#: Statuses that mean "try again later".
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: Of those, the ones that say the origin server did not process the request. 502 and 504 come
#: from a gateway that may already have forwarded it, so a non-idempotent request that got one
#: has an unknown outcome.
NOT_PROCESSED_STATUSES = frozenset({429, 503})

_READ_METHODS = frozenset({"GET", "HEAD"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped by attempts and by a total time budget."""

    max_attempts: int
    backoff_base: float
    backoff_max: float
    budget: float

    def next_delay(
        self,
        attempt: int,
        elapsed: float,
        retry_after: float | None,
        rand: Callable[[], float],
    ) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up.

        ``attempt`` is the number of attempts made so far (1 after the first failure) and
        ``elapsed`` the seconds since the first one started. A server's ``Retry-After`` is
        honoured as is; if it would overrun the budget we give up now instead of sleeping.
        """
        if attempt >= self.max_attempts:
            return None
        if retry_after is not None:
            delay = max(0.0, retry_after)
        else:
            cap = min(self.backoff_max, self.backoff_base * math.pow(2.0, attempt - 1))
            delay = rand() * cap
        if elapsed + delay > self.budget:
            return None
        return delay


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds from ``now`` (a Unix time): delta-seconds or an HTTP-date.

    A date in the past gives 0; an unparseable value gives None (fall back to backoff).
    """
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():  # delay-seconds is ASCII digits (RFC 9110 §10.2.3); float reads any
        return float(text) if text.isascii() else None  # count of them (int stops at 4,300)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; "-0000" parses as naive
        return None
    return max(0.0, when.timestamp() - now)


#: Throttle headers in milliseconds, read before ``Retry-After``: Azure's FHIR server answers a
#: 429 with ``x-ms-retry-after-ms`` only (microsoft/fhir-server ThrottlingMiddleware, "aligning
#: with Cosmos DB"); Azure's SDKs read these two first (@azure/core-rest-pipeline).
_MS_HEADERS = ("retry-after-ms", "x-ms-retry-after-ms")


def retry_after_of(headers: httpx.Headers, now: float, status: int | None = None) -> float | None:
    """The wait, in seconds, a throttled or unavailable answer asks for, or None: a
    milliseconds header of :data:`_MS_HEADERS` (ASCII digits), else ``Retry-After``, else, for
    a 429 (``status``), the reset of a ``RateLimit`` header (:func:`rate_limit_reset`). That
    header comes on every answer of a server that sends it, so on any other answer it asks
    for no wait (a Bulk export's 202 is polled as usual)."""
    for name in _MS_HEADERS:
        text = (headers.get(name) or "").strip()
        if _digits(text):
            return float(text) / 1000.0
    wait = parse_retry_after(headers.get("Retry-After"), now)
    if wait is None and status == 429:
        return rate_limit_reset(headers)
    return wait


def _digits(text: str) -> bool:
    return text.isdigit() and text.isascii()


def rate_limit_reset(headers: httpx.Headers) -> float | None:
    """Seconds until the limit that throttled the request resets, from the IETF HTTPAPI
    ``RateLimit`` header (draft-ietf-httpapi-ratelimit-headers: one item per limit,
    ``"name";r=<remaining>;t=<seconds to reset>``), as Medplum answers a 429 without
    ``Retry-After`` (medplum/medplum packages/server/src/ratelimit.ts, fhirquota.ts:
    ``"requests";r=0;t=42``, ``"fhirInteractions";r=0;t=60``); or ``RateLimit-Reset: <seconds>``
    of the draft's earlier versions. Of several limits, the latest reset of those with no
    units remaining (where none is at 0, the request cost more than remains: the latest of
    all). None when no item can be read."""
    items: list[tuple[bool, float]] = []  # (no units remaining, seconds to reset)
    for field_value in headers.get_list("RateLimit"):
        for member in field_value.split(","):
            params = dict(
                (key.strip().lower(), value.strip())
                for key, _, value in (p.partition("=") for p in member.split(";")[1:])
            )
            t, r = params.get("t", ""), params.get("r", "")
            if _digits(t):
                items.append((_digits(r) and not r.strip("0"), float(t)))
    if items:
        exhausted = [t for spent, t in items if spent]
        return max(exhausted) if exhausted else max(t for _, t in items)
    reset = (headers.get("RateLimit-Reset") or "").strip()
    return float(reset) if _digits(reset) else None


def is_idempotent(
    method: str,
    url: httpx.URL,
    headers: Mapping[str, str] | httpx.Headers,
    body: Any = None,
) -> bool:
    """May this request be sent twice without changing the outcome?

    - GET, HEAD, DELETE (HTTP idempotent; a second FHIR delete is a no-op);
    - PUT or PATCH with ``If-Match`` (a repeat after success fails with 412, never overwrites);
    - POST with ``If-None-Exist`` (conditional create);
    - POST to ``.../_search``;
    - POST of a ``batch`` Bundle whose entries are all reads.

    Anything else (plain create, unconditional update, transaction, operations) is not.
    """
    method = method.upper()
    h = httpx.Headers(headers)
    if method in _READ_METHODS or method == "DELETE":
        return True
    if method in {"PUT", "PATCH"}:
        return "if-match" in h
    if method == "POST":
        if "if-none-exist" in h:
            return True
        if url.path.rstrip("/").endswith("/_search"):
            return True
        return is_read_only_batch(body)
    return False


def is_read_only_batch(body: Any) -> bool:
    if not isinstance(body, Mapping):
        return False
    if body.get("resourceType") != "Bundle" or body.get("type") != "batch":
        return False
    entries = body.get("entry") or []
    if not isinstance(entries, Sequence):
        return False
    for entry in entries:
        request = entry.get("request") if isinstance(entry, Mapping) else None
        method = request.get("method") if isinstance(request, Mapping) else None
        if not isinstance(method, str) or method.upper() not in _READ_METHODS:
            return False
    return True


def is_retryable_transport_error(exc: httpx.TransportError) -> bool:
    """Network failures and timeouts; not protocol misuse (bad scheme, local protocol error)."""
    return isinstance(exc, httpx.TimeoutException | httpx.NetworkError | httpx.RemoteProtocolError)


def transport_outcome(exc: httpx.TransportError) -> str:
    """A transport failure for a message: its kind, and for a connection that could not be made
    what stopped it, which the kind alone (``ConnectError``) does not tell: a host name that does
    not resolve, a refused connection, a TLS certificate the trust store does not accept (a
    hospital's own CA: give its PEM bundle in ``SSL_CERT_FILE``), https to a plain-HTTP port.
    Only the connection's own failure is described (nothing was exchanged with the server, so
    nothing of a request or an answer can be in it)."""
    kind = type(exc).__name__
    if not isinstance(exc, httpx.ConnectError):
        return kind
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            why = getattr(cause, "verify_message", None) or "certificate verify failed"
            return (
                f"{kind} (the server's TLS certificate is not trusted: {why}; a site CA is "
                "given as a PEM bundle in SSL_CERT_FILE)"
            )
        if isinstance(cause, ssl.SSLError):
            return f"{kind} (TLS failed: {cause.reason or 'no handshake'}; is that port https?)"
        if isinstance(cause, socket.gaierror):
            return f"{kind} (the host name does not resolve: {cause.strerror or 'unknown host'})"
        if isinstance(cause, OSError) and (cause.errno or cause.strerror):
            # asyncio's "Connect call failed ('10.0.0.5', 443)" says less than its errno
            errno = cause.errno if isinstance(cause.errno, int) and cause.errno > 0 else None
            return f"{kind} ({os.strerror(errno) if errno else cause.strerror})"
        cause = cause.__cause__ or cause.__context__
    return kind


def may_have_reached_server(exc: httpx.TransportError, request: httpx.Request) -> bool:
    """Could the server have received ``request`` before ``exc`` happened?

    No if the failure was on another request (the auth flow's token or discovery request, sent
    first) or before a connection existed (connect error or timeout, pool timeout). Yes for
    everything after that: write and read timeouts, a connection dropped mid-exchange.
    """
    try:
        failed = exc.request
    except RuntimeError:  # no request attached: assume the worst
        return True
    if failed is not request:
        return False
    return not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
