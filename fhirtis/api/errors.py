"""Every failure of the HTTP service is an OperationOutcome with the right status.

Messages name what is wrong (a parameter, a scope, a status of the FHIR server) — never a
patient's data, a token, or a stack trace. Unexpected errors are logged by type only and answered
500 with a generic OperationOutcome.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("fhirtis.api")
FHIR_JSON = "application/fhir+json"

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


def outcome_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


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
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return outcome_response(
            exc.status_code, outcome(exc.status_code, detail), dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error: %s", type(exc).__name__)
        return outcome_response(500, outcome(500, "internal error"))
