"""Running the service: health (``/livez``, ``/readyz``), Prometheus metrics (``/metrics``),
the audit line per access, structured JSON logs, and the headers every answer carries.

- ``/livez``: the process serves HTTP (200). No authentication.
- ``/readyz``: settings valid (the app exists), profiles loaded, the default FHIR server's
  ``/metadata`` answered 2xx within 5 s and says no other FHIR release than R4 (its
  ``fhirVersion``): 200, else 503 naming the failed check. No
  authentication; no patient data.
- ``/metrics``: Prometheus text format (``prometheus-client``, one registry per app):
  ``fhirtis_http_requests_total{route,method,status}`` (the route *template*, never a patient
  id), ``fhirtis_evaluation_seconds{kind}`` (evaluate, cds), ``fhirtis_fhir_requests_total
  {outcome}`` (2xx, 3xx, 4xx, 5xx or the transport error's name). Keep it internal.
- Audit: one INFO line on the ``fhirtis.audit`` logger per access to patient data: who (the
  token's ``sub``/``client_id``, or the CDS client's ``iss``/``sub``; never the token), which
  patient (its id), what (evaluate, write, cds), the outcome (HTTP status). Resource ids only.
- Every answer carries ``X-Content-Type-Options: nosniff``; every answer outside the page's
  files and the docs' assets carries ``Cache-Control: no-store`` (answers hold patient data).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import httpx
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhirtis.fhir.codes import terminology
from fhirtis.io import parse_statement

__all__ = [
    "AUDIT",
    "CountingTransport",
    "HeadAsGet",
    "JsonFormatter",
    "Metrics",
    "SecurityHeaders",
    "audit",
    "counting_client",
    "log_config",
    "router",
]

AUDIT = logging.getLogger("fhirtis.audit")
#: ``/readyz``: the FHIR server's ``/metadata`` answered whole within this time, else not
#: ready (httpx's timeout is per read: a statement trickling in would keep the check, and the
#: connection it holds, long after the prober gave up)
READY_CHECK_SECONDS = 5.0
_CACHEABLE_PREFIXES = ("/app", "/static-offline-docs")
# the request counter's method label: any other method a caller makes up is counted as "other"
# (a label value per made-up method would grow the registry without bound)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"})


class Metrics:
    """The service's Prometheus metrics, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "fhirtis_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.evaluation = Histogram(
            "fhirtis_evaluation_seconds",
            "Time to read and evaluate one patient (evaluate) or answer a CDS call (cds)",
            ["kind"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120),
            registry=self.registry,
        )
        self.fhir = Counter(
            "fhirtis_fhir_requests",
            "Requests to FHIR servers, by outcome (status class or transport error)",
            ["outcome"],
            registry=self.registry,
        )


class CountingTransport(httpx.AsyncBaseTransport):
    """The service's HTTP transport to FHIR servers, counting each request's outcome."""

    def __init__(self, metrics: Metrics, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self._metrics = metrics
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.HTTPError as exc:
            self._metrics.fhir.labels(type(exc).__name__).inc()
            raise
        self._metrics.fhir.labels(f"{response.status_code // 100}xx").inc()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def counting_client(metrics: Metrics, timeout: httpx.Timeout) -> httpx.AsyncClient:
    """The service's HTTP client to FHIR servers (and token endpoints, CDS clients' JWKS), each
    request counted (:class:`CountingTransport`). It takes the outgoing proxy (``HTTPS_PROXY``,
    ``HTTP_PROXY``, ``ALL_PROXY``; ``NO_PROXY``) and the trusted CAs (``SSL_CERT_FILE``,
    ``SSL_CERT_DIR``) from the environment as every other client of fhirtis: httpx takes no
    proxy from the environment for a client given its own transport, so the transports it made
    (the direct one and one per proxy) are wrapped instead."""
    client = httpx.AsyncClient(timeout=timeout)
    client._transport = CountingTransport(metrics, client._transport)
    client._mounts = {
        pattern: None if transport is None else CountingTransport(metrics, transport)
        for pattern, transport in client._mounts.items()
    }
    return client


class SecurityHeaders:
    """ASGI middleware: the headers every answer carries, and the request count by route."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        no_store = not path.startswith(_CACHEABLE_PREFIXES) and path != "/docs"
        status = 500

        async def with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if not (no_store and k.lower() == b"cache-control")
                    and k.lower() != b"x-content-type-options"  # the page's own: once only
                ]
                headers.append((b"x-content-type-options", b"nosniff"))
                if no_store:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            method = str(scope.get("method"))
            method = method if method in _METHODS else "other"
            self.metrics.requests.labels(template, method, str(status)).inc()


class HeadAsGet:
    """ASGI middleware: HEAD is served as GET, without the body (RFC 9110 §9.3.2: the same
    status and header fields as GET; load balancers and monitors send ``HEAD /metadata``).
    FastAPI's GET routes do not take HEAD; a resource without GET still answers HEAD 405."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        # in place, so that what routing adds to the scope (the route, for the request count)
        # reaches the middleware outside; the count still says HEAD
        scope["method"] = "GET"
        try:
            await self.app(scope, receive, without_body)
        finally:
            scope["method"] = "HEAD"


def audit(
    action: str, patient: str | None, who: Mapping[str, Any], status: int, **extra: Any
) -> None:
    """One audit line: who, which patient id, what, the outcome. Never a token or patient data."""
    AUDIT.info(
        "%s Patient/%s: %d",
        action,
        patient or "-",
        status,
        extra={
            "audit": {"action": action, "patient": patient, "who": dict(who), "status": status}
            | extra
        },
    )


def who_of_claims(claims: Mapping[str, Any], *, verified: bool) -> dict[str, Any]:
    """The caller as the audit names it: ``sub`` and ``client_id`` of a token's claims."""
    out: dict[str, Any] = {"verified": verified}
    for name in ("sub", "client_id", "iss"):
        value = claims.get(name)
        if isinstance(value, str) and len(value) <= 256:
            out[name] = value
    return out


def who_of_unverified_token(token: str) -> dict[str, Any]:
    """A pass-through caller as the audit names it: the ``sub``, ``client_id`` and ``iss`` its
    token claims if it is a JWT (not verified: ``verified`` false), and the token's fingerprint,
    the first 16 hex digits of its SHA-256 (which the authorization server that issued it can
    compute; the token itself is never written)."""
    who = who_of_claims(_unverified_claims(token), verified=False)
    who["token_sha256"] = hashlib.sha256(token.encode()).hexdigest()[:16]
    return who


def _unverified_claims(token: str) -> Mapping[str, Any]:
    """The claims of a JWT's payload, read without checking its signature; {} for anything else
    (an opaque token, a payload that is not a JSON object)."""
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    try:
        claims = orjson.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, orjson.JSONDecodeError):  # binascii.Error is a ValueError
        return {}
    return claims if isinstance(claims, dict) else {}


router = APIRouter(include_in_schema=False)


@router.get("/livez")
async def livez() -> JSONResponse:
    return JSONResponse({"status": "live"})


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state.fhirtis
    checks: dict[str, str] = {"settings": "ok"}
    try:
        terminology()
        checks["profiles"] = "ok"
    except Exception as exc:  # a broken install: say what kind, not more
        checks["profiles"] = f"failed: {type(exc).__name__}"
    if not state.allowed:
        checks["fhir_server"] = "failed: no FHIR server configured"
    else:
        server = state.allowed[0]
        try:
            async with asyncio.timeout(READY_CHECK_SECONDS):
                response = await state.http_for(server).get(
                    server.rstrip("/") + "/metadata",
                    headers={"Accept": "application/fhir+json"},
                    timeout=READY_CHECK_SECONDS,
                )
            ok = response.is_success
            checks["fhir_server"] = "ok" if ok else f"failed: HTTP {response.status_code}"
            other = _other_release(response) if ok else None
            if other is not None:  # every evaluation would be refused (UnsupportedFhirVersion)
                checks["fhir_server"] = f"failed: FHIR {other}, not R4 (4.0.x)"
        except httpx.HTTPError as exc:
            checks["fhir_server"] = f"failed: {type(exc).__name__}"
        except TimeoutError:
            checks["fhir_server"] = f"failed: no answer within {READY_CHECK_SECONDS:g} s"
    ready = all(v == "ok" for v in checks.values())
    body = {"status": "ready" if ready else "not ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


def _other_release(response: httpx.Response) -> str | None:
    """The FHIR version a ``/metadata`` answer says where it is another release than R4 (and
    R4B, read as R4); None for R4, a version not said, or a body that is no statement."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None
    caps = parse_statement(body, response.headers.get("Content-Type"))
    return caps.fhir_version if caps.release == "other" else None


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.fhirtis_metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class Timer:
    """Observes the evaluation latency histogram for ``kind`` on exit."""

    def __init__(self, metrics: Metrics, kind: str) -> None:
        self._metrics, self._kind = metrics, kind
        self._started = time.perf_counter()

    def __enter__(self) -> Timer:
        return self

    def __exit__(self, *_: object) -> None:
        self._metrics.evaluation.labels(self._kind).observe(time.perf_counter() - self._started)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the audit fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "audit", None)
        if isinstance(fields, dict):
            out["audit"] = fields
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = record.exc_info[0].__name__  # the type only: no values, no trace
        return json.dumps(out, default=str)


def log_config(level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``fhirtis serve``: JSON lines on stderr, fhirtis's and
    uvicorn's loggers at ``level`` (uvicorn's access log stays off)."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "fhirtis.api.ops.JsonFormatter"}},
        "handlers": {"stderr": handler},
        "loggers": {
            "fhirtis": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stderr"], "level": level, "propagate": False},
            "uvicorn.error": {"handlers": ["stderr"], "level": level, "propagate": False},
        },
    }
