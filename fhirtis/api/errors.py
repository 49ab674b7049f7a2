"""Every failure of the HTTP service is an OperationOutcome with the right status.

Messages name what is wrong (a parameter, a scope, a status of the FHIR server) — never a
patient's data, a token, or a stack trace. Unexpected errors are logged by type only and answered
500 with a generic OperationOutcome.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("fhirtis.api")
FHIR_JSON = "application/fhir+json"
#: The Content-Type of every FHIR answer: FHIR R4 http.html ("Content Types and encodings")
#: requires the charset, HTTP's default being ISO-8859-1.
FHIR_JSON_UTF8 = f"{FHIR_JSON}; charset=utf-8"
ONLY_JSON = "this service reads and answers JSON only (application/fhir+json or application/json)"
_JSON_TYPES = frozenset({"application/json", FHIR_JSON})
_ANY_JSON = frozenset({"*/*", "application/*"})
#: Generic JSON types a client may accept (FHIR R4 http.html, "Content Types and encodings":
#: answered with the type requested, in the JSON format)
_GENERIC_JSON = frozenset({"application/json", "text/json"})
_FORMAT_ALIASES = {"json": "application/json"}
#: The FHIR versions served, as the ``fhirVersion`` MIME-type parameter names them: R4, as
#: ``4.0`` (major.minor, FHIR R4 versioning.html) or a full ``4.0.x``.
_R4 = re.compile(r"4\.0(?:\.\d+)?")
ONLY_R4 = "this service implements FHIR R4 only (fhirVersion 4.0)"
_HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")

_ISSUE_CODE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    412: "conflict",
    415: "not-supported",
    422: "processing",
    429: "throttled",
    502: "transient",
    503: "transient",
    504: "timeout",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        code: str | None = None,
        expression: str | None = None,
        headers: dict[str, str] | None = None,
        issues: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.code = code or _ISSUE_CODE.get(status, "exception")
        self.expression = expression
        self.headers = headers
        self.issues = issues or []


def outcome(
    status: int,
    diagnostics: str,
    *,
    code: str | None = None,
    expression: str | None = None,
    extra: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    issue: dict[str, Any] = {
        "severity": "error" if status < 500 else "fatal",
        "code": code or _ISSUE_CODE.get(status, "exception"),
        "diagnostics": diagnostics,
    }
    if expression:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue, *(extra or [])]}


class FhirJSONResponse(JSONResponse):
    """JSON whose strings may hold a lone surrogate, as JSON's ``"\\ud800"`` escape parses to
    (an unknown parameter's name echoed back, a display read from a server): written back as the
    same escape, never a failure to encode (a 500)."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(
            content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
        )
        return text.encode("utf-8", "backslashreplace")


def outcome_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return FhirJSONResponse(body, status_code=status, media_type=FHIR_JSON_UTF8, headers=headers)


def is_json_media_type(value: str) -> bool:
    """Whether a media type (its parameters ignored) is JSON: ``application/json``,
    ``application/fhir+json`` or another ``application/*+json``."""
    media = value.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip())
            except ValueError:
                return 1.0
    return 1.0


def other_fhir_version(media_type: str) -> str | None:
    """The FHIR version a media type's ``fhirVersion`` parameter names when it is not R4 (FHIR
    R4 versioning.html, "Mime Type Parameter"), else None (R4, or no such parameter)."""
    for param in media_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "fhirversion":
            version = value.strip().strip('"')
            return None if _R4.fullmatch(version) else version
    return None


def accepts_json(accept: str) -> bool:
    """Whether an ``Accept`` header lets the answer be JSON: an empty one does, else one of its
    media ranges with a quality above 0 must match a JSON type (``*/*``, ``application/*``)
    and ask for no FHIR version but R4."""
    ranges = [r for r in accept.split(",") if r.strip()]
    for media_range in ranges:
        rank = _json_rank(media_range)
        if rank is not None and rank[0] > 0:
            return True
    return not ranges


def _json_rank(media_range: str) -> tuple[float, int] | None:
    """A JSON ``Accept`` range's preference: (quality, 0 for a generic JSON type, 1 for FHIR's
    or a wildcard), None for a range that rules JSON R4 out."""
    media, *params = media_range.split(";")
    media = media.strip().lower()
    if other_fhir_version(media_range) is not None:
        return None
    if media in _GENERIC_JSON:
        return (_quality(params), 0)
    if media in _ANY_JSON or is_json_media_type(media):
        return (_quality(params), 1)
    return None


def generic_json_asked(accept: str) -> str | None:
    """The generic JSON type (``application/json``, ``text/json``) an ``Accept`` header prefers
    to ``application/fhir+json``, if it does (a tie goes to FHIR's)."""
    best: tuple[tuple[float, int], str] | None = None
    for media_range in accept.split(","):
        rank = _json_rank(media_range) if media_range.strip() else None
        if rank is not None and rank[0] > 0 and (best is None or rank > best[0]):
            best = (rank, media_range.split(";")[0].strip().lower())
    return best[1] if best is not None and best[0][1] == 0 else None


class GenericJsonAnswer:
    """ASGI middleware: a FHIR JSON answer goes as the generic JSON type the request's
    ``Accept`` prefers (``application/json``, ``text/json``; FHIR R4 http.html: the server
    SHOULD respond with the requested mime type), unless ``_format`` names the format; FHIR
    answers say ``Vary: Accept``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"))
        accept = b",".join(v for k, v in scope.get("headers", ()) if k == b"accept")
        generic = None
        if not any(name == "_format" for name, _ in query):
            generic = generic_json_asked(accept.decode("latin-1"))

        async def negotiated(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                kinds = [v for k, v in headers if k.lower() == b"content-type"]
                if kinds and kinds[0].lower().startswith(FHIR_JSON.encode()):
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-type"]
                    kind = f"{generic}; charset=utf-8" if generic else FHIR_JSON_UTF8
                    headers.append((b"content-type", kind.encode()))
                    headers.append((b"vary", b"Accept"))
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, negotiated)


def format_is_json(value: str) -> bool:
    """Whether a ``_format`` value (FHIR R4 http.html) names JSON: ``json``, ``application/json``
    or ``application/fhir+json`` (a ``+`` sent unencoded in a query reads as a space)."""
    media, sep, params = value.strip().partition(";")
    media = media.strip().replace(" ", "+").lower()
    return is_json_media_type(_FORMAT_ALIASES.get(media, media) + sep + params) and (
        other_fhir_version(value) is None
    )


def require_json_answer(request: Request) -> None:
    """406 unless the caller may be answered in JSON, FHIR R4: ``_format`` decides where given
    (it overrides ``Accept``, FHIR R4 http.html), else the ``Accept`` header. A ``fhirVersion``
    other than 4.0 is refused, not answered in R4 regardless (FHIR R4 versioning.html: such a
    client learns from an error that the server lacks the version it asked for)."""
    formats = request.query_params.getlist("_format")
    asked = formats or ",".join(request.headers.getlist("accept")).split(",")
    if formats:
        acceptable = all(format_is_json(f) for f in formats)
    else:
        acceptable = accepts_json(",".join(asked))
    if acceptable:
        return
    versions = sorted({v for v in map(other_fhir_version, asked) if v is not None})
    if versions:
        names = ", ".join(f"fhirVersion={v}" for v in versions)
        raise ApiError(406, f"{ONLY_R4}: the request's _format or Accept asks for {names}")
    raise ApiError(406, f"{ONLY_JSON}: the request's _format or Accept asks for another")


def allowed_methods(request: Request) -> list[str]:
    """Every method the request's URL serves, over all its routes (Starlette's 405 names those of
    the first route for the path only: ``Allow: GET`` where GET and POST are served): RFC 9110
    §15.5.6, a 405 lists the target resource's supported methods. Mounts (the page's files)
    are left out: they take any method to their own handler."""
    found = []
    for method in _HTTP_METHODS:
        scope = {**request.scope, "method": method}
        routes = (r for r in request.app.router.routes if not isinstance(r, Mount))
        if any(route.matches(scope)[0] is Match.FULL for route in routes):
            found.append(method)
    if "GET" in found and "HEAD" not in found:  # HEAD is served as GET (ops.HeadAsGet)
        found.insert(found.index("GET") + 1, "HEAD")
    return found


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        body = outcome(
            exc.status, exc.diagnostics, code=exc.code, expression=exc.expression, extra=exc.issues
        )
        return outcome_response(exc.status, body, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        issues = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            issues.append(
                {
                    "severity": "error",
                    "code": "invalid",
                    "diagnostics": str(err.get("msg")),
                    "expression": [where or "(request)"],
                }
            )
        body = {"resourceType": "OperationOutcome", "issue": issues}
        return outcome_response(400, body)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return outcome_response(exc.status_code, outcome(exc.status_code, detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__)
        return outcome_response(500, outcome(500, "internal error"))
