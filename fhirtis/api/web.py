"""The clinician's page: a SMART on FHIR app (EHR launch) served under ``/app/``.

The page is static (``fhirtis/api/static/``: plain JavaScript, no build step, nothing fetched
from a CDN). An EHR launches it at ``/app/launch.html?iss=<FHIR base>&launch=<opaque>`` (or
``/app/?iss=…&launch=…``); the page reads the EHR's ``.well-known/smart-configuration``, sends
the user to its authorization endpoint (authorization code with PKCE S256), exchanges the code
for an access token at the token endpoint, and calls ``POST /Patient/{id}/$myositis-evaluate``
of this service with that token and ``X-FHIR-Server: <iss>``. Register ``/app/launch.html`` as
the launch URL and ``/app/`` as the redirect URI with the EHR.

``GET /app/config.json`` tells the page its OAuth ``client_id`` (environment variable
``FHIRTIS_APP_CLIENT_ID``, default ``fhirtis-app``), the scopes it asks for, and the FHIR
servers the service may talk to, and the clinical numbers it draws (``clinical``: category
thresholds, measure maxima, maximum rates, dose target — never copied into the script). The page
refuses to start a launch from any other ``iss``, so a crafted launch link cannot send the user to
an unknown authorization server.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.types import Scope

from fhirtis import __version__
from fhirtis.clinical.facts import Measure
from fhirtis.clinical.policy import DEFAULT_POLICY, Policy, Population
from fhirtis.clinical.tis import MAX_SCORE, THRESHOLDS

CLIENT_ID_ENV = "FHIRTIS_APP_CLIENT_ID"
DEFAULT_CLIENT_ID = "fhirtis-app"
SCOPE = "launch openid fhirUser patient/*.read"

# The page runs only its own script and style; it talks to this service and to the EHR's
# authorization server (any origin: the iss comes from the launch, checked by the page against
# the allow-list). No referrer, so the authorization code in the redirect URL never leaks.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self' https: http:; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def security_headers(frame_ancestors: list[str]) -> dict[str, str]:
    """The page's headers; ``frame-ancestors``: the EHR origins that may embed it (none when the
    setting is empty)."""
    ancestors = " ".join(frame_ancestors) or "'none'"
    headers = dict(SECURITY_HEADERS)
    headers["Content-Security-Policy"] += f"; frame-ancestors {ancestors}"
    return headers


class _PageFiles(StaticFiles):
    """The page's files, with the security headers on every answer."""

    def __init__(self, *, headers: dict[str, str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._headers = headers

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self._headers)
        return response


def client_id() -> str:
    return os.environ.get(CLIENT_ID_ENV, "").strip() or DEFAULT_CLIENT_ID


def clinical_numbers(policy: Policy) -> dict[str, Any]:
    """The clinical numbers the page draws (category thresholds, each measure's maximum score, the
    service's maximum rates and dose target), from their one home in :mod:`fhirtis.clinical`."""
    names = ("minimal", "moderate", "major")
    return {
        "category_thresholds": {
            p.value: {n: float(v) for n, v in zip(names, THRESHOLDS[p], strict=True)}
            for p in Population
        },
        "measure_max": {m.value: float(MAX_SCORE[m]) for m in Measure},
        "policy": {
            name: float(getattr(policy, name))
            for name in (
                "max_rate_mg_kg_min",
                "max_rate_with_risk_mg_kg_min",
                "target_dose_g_per_kg",
                "dose_tolerance_percent",
                "obesity_bmi",
            )
        },
    }


def page_config(request: Request) -> dict[str, Any]:
    state = getattr(request.app.state, "fhirtis", None)
    servers: list[str] = list(state.allowed) if state is not None else []
    policy = state.settings.policy if state is not None else DEFAULT_POLICY
    return {
        "client_id": client_id(),
        "scope": SCOPE,
        "fhir_servers": servers,
        "version": __version__,
        "clinical": clinical_numbers(policy),
    }


router = APIRouter(include_in_schema=False)


@router.get("/app/config.json")
async def config(request: Request) -> JSONResponse:
    return JSONResponse(page_config(request), headers=SECURITY_HEADERS)  # no frame: JSON


@router.get("/app")
async def app_root(request: Request) -> RedirectResponse:
    query = request.url.query
    return RedirectResponse("app/" + (f"?{query}" if query else ""), status_code=307)


def static_dir() -> Path:
    return Path(__file__).resolve().parent / "static"


def install(app: FastAPI, frame_ancestors: list[str] | None = None) -> None:
    """Serve the page under ``/app/`` (called by :func:`fhirtis.api.app.create_app`)."""
    headers = security_headers(list(frame_ancestors or []))
    app.include_router(router)
    app.mount("/app", _PageFiles(headers=headers, directory=static_dir(), html=True), name="app")
