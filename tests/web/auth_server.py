"""A minimal SMART on FHIR authorization server, for the tests only.

It plays the EHR: its ``/fhir`` is the FHIR base (``iss``) the page is launched with. It
publishes ``/fhir/.well-known/smart-configuration``, auto-approves ``/authorize`` (EHR launch:
``launch`` must be one it issued) and exchanges codes at ``/token`` for access tokens with the
launch's patient context. It is honest about what a real one checks: the client and its
registered redirect URI, ``aud`` = the FHIR base, PKCE S256 (the verifier against the
challenge), single-use codes that expire, and the same client and redirect URI at the exchange.

``/fhir/*`` is a proxy to the real test FHIR server (``tests/fhir_server``) that answers only
requests carrying an access token it issued, and rewrites the upstream base in the answers (so
paging links stay on the ``iss``). It records what it saw, for the tests to check that fhirtis
forwarded the browser's token.

Also here: :func:`serving`, to run an ASGI app with uvicorn in a thread on a loopback socket.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

CODE_LIFETIME_S = 60.0
TOKEN_LIFETIME_S = 3600
SUPPORTED_SCOPES = ("launch", "patient/*.read")  # no id_token: openid and fhirUser not granted
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_FORM = "application/x-www-form-urlencoded"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str
    patient: str
    issued: float
    used: bool = False


@dataclass
class _Token:
    client_id: str
    scope: str
    patient: str
    expires: float


@dataclass
class Record:
    """What happened, for the tests."""

    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    issued_tokens: list[str] = field(default_factory=list)
    fhir_requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    refused_fhir_requests: int = 0


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class SmartAuthServer:
    """The EHR's authorization server and FHIR front door.

    ``clients`` maps each public client_id to its registered redirect URIs; ``launches`` maps
    the opaque launch values the EHR issued to the patient in context.
    """

    def __init__(
        self,
        root_url: str,
        upstream_fhir: str,
        clients: dict[str, set[str]],
        launches: dict[str, str],
        app_origins: list[str],
        need_patient_banner: bool | None = None,
    ) -> None:
        self.root_url = root_url.rstrip("/")
        # SMART App Launch token response: said only when set (an EHR may leave it out)
        self.need_patient_banner = need_patient_banner
        self.iss = f"{self.root_url}/fhir"
        self.upstream = upstream_fhir.rstrip("/")
        self.clients = clients
        self.launches = launches
        self.record = Record()
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.app = self._build(app_origins)

    # -- the app -----------------------------------------------------------------------------

    def _build(self, app_origins: list[str]) -> FastAPI:
        http: dict[str, httpx.AsyncClient] = {}

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            async with httpx.AsyncClient(timeout=30.0) as client:
                http["client"] = client
                yield

        app = FastAPI(lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
        # The browser calls the configuration and token endpoints from the app's origin.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=app_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Accept", "Content-Type", "Authorization"],  # the app reads /fhir
        )

        @app.get("/fhir/.well-known/smart-configuration")
        async def smart_configuration() -> JSONResponse:
            return JSONResponse(self.smart_configuration())

        @app.get("/authorize", response_model=None)
        async def authorize(request: Request) -> Response:
            return self.authorize(dict(request.query_params))

        @app.post("/token")
        async def token(request: Request) -> JSONResponse:
            # OAuth token requests are form-encoded (parsed here: no python-multipart needed).
            if request.headers.get("content-type", "").split(";")[0].strip() != _FORM:
                status, body = 400, {"error": "invalid_request", "error_description": "form"}
            else:
                pairs = parse_qsl((await request.body()).decode(), keep_blank_values=True)
                status, body = self.exchange(dict(pairs))
            return JSONResponse(
                body,
                status_code=status,
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )

        @app.api_route("/fhir", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        @app.api_route("/fhir/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
        async def fhir(request: Request, path: str = "") -> Response:
            return await self.proxy(http["client"], request, path)

        return app

    def smart_configuration(self) -> dict[str, Any]:
        return {
            "issuer": self.root_url,
            "authorization_endpoint": f"{self.root_url}/authorize",
            "token_endpoint": f"{self.root_url}/token",
            "grant_types_supported": ["authorization_code"],
            "response_types_supported": ["code"],
            "scopes_supported": [*SUPPORTED_SCOPES],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "capabilities": [
                "launch-ehr",
                "client-public",
                "context-ehr-patient",
                "permission-patient",
                "permission-v1",
            ],
        }

    # -- /authorize ----------------------------------------------------------------------------

    def authorize(self, q: dict[str, str]) -> Response:
        with self._lock:
            self.record.authorize_requests.append(dict(q))
        client_id = q.get("client_id", "")
        redirect_uri = q.get("redirect_uri", "")
        # Unknown client or redirect URI: never redirect (RFC 6749 §4.1.2.1).
        if client_id not in self.clients:
            return PlainTextResponse("unknown client_id", status_code=400)
        if redirect_uri not in self.clients[client_id]:
            return PlainTextResponse("redirect_uri is not registered", status_code=400)
        state = q.get("state")

        def error(code: str, description: str) -> RedirectResponse:
            params = {"error": code, "error_description": description}
            if state is not None:
                params["state"] = state
            return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

        if q.get("response_type") != "code":
            return error("unsupported_response_type", "response_type must be code")
        if q.get("aud") != self.iss:
            return error("invalid_request", "aud must be this server's FHIR base")
        launch = q.get("launch")
        if launch not in self.launches:
            return error("invalid_request", "unknown launch")
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return error("invalid_request", "PKCE with S256 is required")
        requested = q.get("scope", "").split()
        if "launch" not in requested:
            return error("invalid_scope", "an EHR launch needs the launch scope")
        granted = " ".join(s for s in requested if s in SUPPORTED_SCOPES)
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(
                client_id=client_id,
                redirect_uri=redirect_uri,
                challenge=q["code_challenge"],
                scope=granted,
                patient=self.launches[launch],
                issued=time.monotonic(),
            )
        params = {"code": code}
        if state is not None:
            params["state"] = state
        return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)

    # -- /token ------------------------------------------------------------------------------

    def exchange(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.record.token_requests.append(dict(form))

            def fail(code: str, description: str, status: int = 400) -> tuple[int, dict[str, Any]]:
                return status, {"error": code, "error_description": description}

            if form.get("grant_type") != "authorization_code":
                return fail("unsupported_grant_type", "only authorization_code")
            client_id = form.get("client_id", "")
            if client_id not in self.clients:
                return fail("invalid_client", "unknown client_id", 401)
            grant = self._codes.get(form.get("code", ""))
            if grant is None or grant.used:
                return fail("invalid_grant", "unknown or used code")
            grant.used = True  # single use, even when this exchange fails
            if time.monotonic() - grant.issued > CODE_LIFETIME_S:
                return fail("invalid_grant", "the code has expired")
            if grant.client_id != client_id:
                return fail("invalid_grant", "the code was issued to another client")
            if form.get("redirect_uri") != grant.redirect_uri:
                return fail("invalid_grant", "redirect_uri differs from the authorization request")
            verifier = form.get("code_verifier", "")
            if not _VERIFIER.fullmatch(verifier) or s256(verifier) != grant.challenge:
                return fail("invalid_grant", "PKCE verification failed")
            token = secrets.token_urlsafe(32)
            self._tokens[token] = _Token(
                client_id, grant.scope, grant.patient, time.monotonic() + TOKEN_LIFETIME_S
            )
            self.record.issued_tokens.append(token)
            answer: dict[str, Any] = {
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S,
                "scope": grant.scope,
                "patient": grant.patient,
            }
            if self.need_patient_banner is not None:
                answer["need_patient_banner"] = self.need_patient_banner
            return 200, answer

    # -- /fhir proxy ---------------------------------------------------------------------------

    def _valid(self, authorization: str | None) -> str | None:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        with self._lock:
            grant = self._tokens.get(token.strip())
        if grant is None or grant.expires < time.monotonic():
            return None
        return token.strip()

    async def proxy(self, client: httpx.AsyncClient, request: Request, path: str) -> Response:
        token = self._valid(request.headers.get("authorization"))
        with self._lock:
            self.record.fhir_requests.append((request.method, path, token))
        if token is None:
            with self._lock:
                self.record.refused_fhir_requests += 1
            return JSONResponse(
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "login", "diagnostics": "no token"}],
                },
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="test-ehr"'},
            )
        if request.method in {"PUT", "DELETE", "PATCH"}:  # patient/*.read grants no writes
            return JSONResponse({"resourceType": "OperationOutcome"}, status_code=403)
        url = f"{self.upstream}/{path}" if path else self.upstream
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() not in {"authorization", "origin"}
        }
        upstream = await client.request(
            request.method,
            url,
            params=list(request.query_params.multi_items()),
            content=await request.body(),
            headers=headers,
        )
        body = upstream.content.replace(self.upstream.encode(), self.iss.encode())
        keep = {"content-type", "etag", "last-modified", "location"}
        out = {
            k: v.replace(self.upstream, self.iss)
            for k, v in upstream.headers.items()
            if k.lower() in keep
        }
        return Response(body, status_code=upstream.status_code, headers=out)


# -- running servers in the test process ------------------------------------------------------


def loopback_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (bound, so the port is known now)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


@contextmanager
def serving(app: Any, sock: socket.socket, timeout: float = 15.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread on ``sock``; stop it, join and close on exit."""
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        ws="none",
        http="h11",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout)
        sock.close()
