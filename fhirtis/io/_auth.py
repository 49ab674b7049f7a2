"""Authentication for the FHIR client, as ``httpx.Auth`` flows.

Each scheme is one generator (``response = yield request``) that httpx drives for both
``httpx.Client`` and ``httpx.AsyncClient``: the algorithm is written once. The SMART flow's
discovery and token requests are yielded from that same generator, so they go through the
caller's transport, proxies and mocks like any other request. The only sync/async-specific
code is a lock around fetching a token, so that concurrent requests share one fetch.

Tokens are attached only to requests on the configured FHIR server's origin; a request
anywhere else raises :class:`~fhirtis.io._errors.ForeignUrl` before it is sent.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, NotRequired, TypedDict, Unpack
from urllib.parse import quote_plus

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key
from pydantic import SecretStr

from fhirtis.io import _responses, _urls
from fhirtis.io._capped import aread_capped, read_capped
from fhirtis.io._config import UNSENDABLE_TOKEN, FhirClientConfig, SigningAlg, sendable_token
from fhirtis.io._errors import (
    ForeignUrl,
    MalformedResponse,
    TokenEndpointUnavailable,
    Unauthorized,
)
from fhirtis.io._retry import RETRYABLE_STATUSES
from fhirtis.io._scopes import (
    grants,
    is_resource_scope,
    not_granted,
    scope_syntax,
    scope_tokens,
    v1_equivalent,
)

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "Authorization",
    "BearerTokenAuth",
    "ClientSecretAuth",
    "NoAuth",
    "SmartBackendAuth",
    "authorization_of",
    "build_auth",
    "load_private_key",
]

log = logging.getLogger("fhirtis.io")

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Lifetime of a client assertion. SMART allows at most 5 minutes; keep a margin for skew.
ASSERTION_LIFETIME_SECONDS = 240
#: When the token endpoint gives no ``expires_in``.
DEFAULT_TOKEN_LIFETIME_SECONDS = 300.0
#: Refresh a token this long before it expires (at most a fifth of its lifetime).
TOKEN_REFRESH_MARGIN_SECONDS = 60.0
#: How long a token endpoint's refusal of the client (400/401, invalid_client...) is repeated to
#: the requests that need a token without asking it again.
TOKEN_REFUSAL_HOLD_SECONDS = 60.0
#: The most of a SMART configuration or token answer read (a real one is a few kB).
AUTH_ANSWER_MAX_BYTES = 1_000_000
#: The most of a CapabilityStatement read for its oauth-uris (one listing every type and search
#: parameter runs to several hundred kB).
STATEMENT_MAX_BYTES = 20_000_000

_OAUTH_ERROR_CODE = re.compile(r"[a-z_]{1,64}")
_CONTEXTS = ("system", "user", "patient")
#: The most of a server's ``scopes_supported`` named in a message.
SCOPES_NAMED = 12
#: The CapabilityStatement extension declaring a server's OAuth endpoints (SMART App Launch 1.0).
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
_FHIR_JSON = "application/fhir+json"


def _attach_bearer(request: httpx.Request, token: str, base: httpx.URL) -> None:
    if not _urls.same_origin(request.url, base):
        foreign = _urls.origin_text(request.url)
        raise ForeignUrl(
            f"refused to send the access token to {foreign}: not the configured FHIR server "
            f"{_urls.origin_text(base)}",
            origin=foreign,
        )
    request.headers["Authorization"] = f"Bearer {token}"


class NoAuth(httpx.Auth):
    """No Authorization header (and none taken from the URL or the httpx client)."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        yield request


class BearerTokenAuth(httpx.Auth):
    """A static bearer token, sent to the FHIR server's origin only. A 401 is final."""

    def __init__(self, token: SecretStr | str, *, base_url: str | httpx.URL) -> None:
        text = token.get_secret_value() if isinstance(token, SecretStr) else token
        sendable = sendable_token(text)
        if sendable is None:  # never sent: httpx's error would quote it
            raise ValueError(f"the bearer token {UNSENDABLE_TOKEN}")
        self._token = SecretStr(sendable)
        self._base = httpx.URL(str(base_url))

    def __repr__(self) -> str:
        return f"BearerTokenAuth(base_url={str(self._base)!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        _attach_bearer(request, self._token.get_secret_value(), self._base)
        yield request


class _Ask(NamedTuple):
    """A request of the token flow (discovery, token) and how much of its answer is read: the
    flow says which answer it asks for (:data:`AUTH_ANSWER_MAX_BYTES`,
    :data:`STATEMENT_MAX_BYTES`); the drivers read it to that limit."""

    request: httpx.Request
    max_bytes: int


@dataclass
class _Token:
    value: str
    refresh_at: float
    #: fetched after a 401 and refused 401 again: the 401s are not about the token's age, so
    #: they are final (no new token per request) until this one expires
    futile: bool = False


@dataclass(frozen=True)
class Authorization:
    """What fhirtis's own client-credentials flow knows of a server's authorization (no token,
    no secret): where its token endpoint came from, the SMART scope syntax the server advertises
    (``v1``, ``v2``, ``v1 and v2``, ``not advertised``; ``unknown`` where its SMART
    configuration was not read), its ``scopes_supported``, the scopes asked, and those granted
    by the last token (None before one, or where the token response did not say) with the
    SMART resource scopes asked and not granted."""

    token_endpoint: str | None
    source: str
    scope_syntax: str
    scopes_supported: tuple[str, ...] | None
    scopes_asked: str
    scopes_granted: str | None
    not_granted: tuple[str, ...]

    def types_not_granted(self, types: Iterable[str], permissions: str) -> list[str]:
        """The resource types of ``types`` on which the granted scopes do not give all of the
        SMART v2 ``permissions`` (``rs`` to read and search, ``cud``; in any context), where
        the token response named SMART resource scopes at all (Entra, for one, names none)."""
        granted = (self.scopes_granted or "").split()
        if not any(is_resource_scope(g) for g in granted):
            return []
        return [
            t
            for t in types
            if not any(grants(granted, f"{c}/{t}.{permissions}") for c in _CONTEXTS)
        ]


@dataclass(frozen=True)
class _Refusal:
    """The token endpoint's last refusal of the client, repeated without asking until ``until``."""

    until: float
    message: str
    status: int | None
    url: str


class ClientFlow(TypedDict):
    """Where and how the client-credentials flow runs (:class:`_ClientCredentialsAuth`): the
    arguments its authentications share."""

    base_url: str | httpx.URL
    client_id: str
    scope: str
    token_url: NotRequired[str | None]
    timeout: NotRequired[httpx.Timeout | None]
    user_agent: NotRequired[str | None]
    clock: NotRequired[Callable[[], float]]


def _flow_of(config: FhirClientConfig, clock: Callable[[], float]) -> ClientFlow:
    """The flow of a configuration whose ``client_id`` and ``scope`` are set (checked by it)."""
    if config.client_id is None or config.scope is None:
        raise ValueError(f"auth_mode {config.auth_mode!r} needs client_id and scope")
    return ClientFlow(
        base_url=config.base,
        client_id=config.client_id,
        scope=config.scope,
        token_url=config.token_url,
        timeout=config.timeout,
        user_agent=config.user_agent,
        clock=clock,
    )


class _ClientCredentialsAuth(httpx.Auth):
    """OAuth 2.0 ``client_credentials`` (RFC 6749 §4.4), the flow shared by the client
    authentications below (each builds its own token request):

    - the token endpoint comes from ``token_url`` or, once, from
      ``{base}/.well-known/smart-configuration`` (where that answers 4xx, from the
      CapabilityStatement's oauth-uris extension, as SMART App Launch 1.0 servers declare it);
    - the access token is cached until shortly before ``expires_in``; a refusal of the client
      by the token endpoint is repeated for :data:`TOKEN_REFUSAL_HOLD_SECONDS` without asking;
    - on a 401 from the FHIR server the token is refreshed once and the request sent once more;
      a second 401 is returned to the caller, and while that new token lasts a 401 is final
      (no token request per FHIR request when the server refuses every token).

    ``clock`` is a Unix-time source (``time.time``), injectable for tests.
    """

    requires_request_body = True  # so the request can be sent again after a 401
    # The drivers below read the discovery and token answers themselves and leave the FHIR
    # server's answer unread: a streamed response (a Bulk Data file) stays streamed.
    requires_response_body = False

    def __init__(self, **flow: Unpack[ClientFlow]) -> None:
        self._base = httpx.URL(str(flow["base_url"]))
        self._client_id = flow["client_id"]
        self._scope = flow["scope"]
        self._token_url = flow.get("token_url")
        timeout = flow.get("timeout")
        self._timeout = timeout if timeout is not None else httpx.Timeout(30.0)
        self._user_agent = flow.get("user_agent")
        self._clock = flow.get("clock", time.time)
        self._token: _Token | None = None
        self._refusal: _Refusal | None = None
        # what discovery read: the SMART configuration's capabilities and scopes_supported
        self._source = "token_url" if self._token_url is not None else "not read yet"
        self._capabilities: tuple[str, ...] | None = None
        self._scopes_supported: tuple[str, ...] | None = None
        self._granted: str | None = None
        self._not_granted: tuple[str, ...] = ()
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={str(self._base)!r}, client_id={self._client_id!r})"

    def _token_request(self, token_url: httpx.URL) -> httpx.Request:
        """The request for an access token at ``token_url``, with the client's credentials."""
        raise NotImplementedError

    # -- the algorithm: a token attached (fetched when none is usable), and fetched again once
    # after a 401; the sync and async drivers below run it under their locks ----------------

    def _authorize(
        self, request: httpx.Request, rejected: str | None
    ) -> Generator[_Ask, httpx.Response, str]:
        """Attach the cached token to ``request``, or a new one when there is none valid or
        the cached one is ``rejected`` (the server answered 401 to it; a token another request
        got meanwhile is used as is). Returns the token attached."""
        token = self._usable(rejected)
        if token is None:
            self._token = None
            token = yield from self._fetch_token()
        _attach_bearer(request, token, self._base)
        return token

    def _usable(self, rejected: str | None) -> str | None:
        """The cached token, unless it is missing, expired or ``rejected``."""
        token = self._valid_token()
        return None if token is None or token == rejected else token

    def _fetch_token(self) -> Generator[_Ask, httpx.Response, str]:
        """Discover the token endpoint if needed, then get and cache an access token."""
        if self._token_url is None:
            url = _urls.join(self._base, ".well-known", "smart-configuration")
            response = yield _Ask(self._build_request("GET", url), AUTH_ANSWER_MAX_BYTES)
            status = response.status_code
            if 400 <= status < 500 and status not in RETRYABLE_STATUSES:
                # a server of SMART App Launch 1.0's time: the token endpoint is declared in the
                # CapabilityStatement only (oauth-uris)
                log.info(
                    "no SMART configuration at %s (HTTP %d); reading the CapabilityStatement",
                    _urls.log_target(url),
                    status,
                )
                metadata = _urls.join(self._base, "metadata")
                # a statement listing every type may be larger than a token answer
                ask = self._build_request("GET", metadata, accept=_FHIR_JSON)
                statement = yield _Ask(ask, STATEMENT_MAX_BYTES)
                self._token_url = self._accept_statement(statement, metadata, url, status)
                self._source = "CapabilityStatement (oauth-uris)"
            else:
                self._token_url = self._accept_discovery(response, url)
                self._source = "SMART configuration"
        refusal = self._refusal
        if refusal is not None and self._clock() < refusal.until:
            raise Unauthorized(refusal.message, status=refusal.status, url=refusal.url)
        token_url = httpx.URL(self._token_url)
        response = yield _Ask(self._token_request(token_url), AUTH_ANSWER_MAX_BYTES)
        try:
            token = self._accept_token(response, token_url)
        except Unauthorized as refused:
            if _oauth_error_code(response.content) == "invalid_scope":
                refused = Unauthorized(
                    f"{refused}: {self._scope_advice()}", status=refused.status, url=refused.url
                )
            # the client itself refused (RFC 6749 §5.2: 400 or 401, invalid_client,
            # unauthorized_client, invalid_scope): not asked again for every request meanwhile
            if refused.status in (400, 401, 403):
                self._refusal = _Refusal(
                    until=self._clock() + TOKEN_REFUSAL_HOLD_SECONDS,
                    message=str(refused),
                    status=refused.status,
                    url=refused.url,
                )
            raise refused from None
        self._refusal = None
        self._token = token
        return token.value

    def authorization(self) -> Authorization:
        """What is known of the server's authorization (:class:`Authorization`)."""
        return Authorization(
            token_endpoint=self._token_url,
            source=self._source,
            scope_syntax=scope_syntax(self._capabilities),
            scopes_supported=self._scopes_supported,
            scopes_asked=self._scope,
            scopes_granted=self._granted,
            not_granted=self._not_granted,
        )

    def _scope_advice(self) -> str:
        """For a token request refused ``invalid_scope``: the scopes asked (no secret) and what
        the server advertises, with the v1 spelling where it takes v1 scopes only."""
        parts = [f"the scopes asked (setting scope) were {self._scope!r}"]
        syntax = scope_syntax(self._capabilities)
        if syntax == "v1":
            parts.append(
                "the server's SMART configuration advertises SMART v1 scopes only "
                "(permission-v1, not permission-v2): ask for "
                f"{v1_equivalent(self._scope)!r}"
            )
        elif syntax == "v2":
            parts.append(
                "the server's SMART configuration advertises SMART v2 scopes only "
                "(permission-v2: system/Observation.rs, not .read)"
            )
        elif syntax == "v1 and v2":
            parts.append(
                "the server's SMART configuration advertises SMART v1 and v2 scopes "
                "(permission-v1, permission-v2): ask only for scopes registered for the client"
            )
        elif syntax == "not advertised":
            parts.append(
                "the server's SMART configuration advertises neither permission-v1 nor "
                f"permission-v2; in SMART v1 syntax the scopes are {v1_equivalent(self._scope)!r}"
            )
        else:
            parts.append(
                f"the server's SMART configuration was not read (token endpoint from "
                f"{self._source}); in SMART v1 syntax the scopes are "
                f"{v1_equivalent(self._scope)!r}"
            )
        supported = self._scopes_supported
        if supported:
            named = " ".join(supported[:SCOPES_NAMED])
            more = len(supported) - SCOPES_NAMED
            parts.append(
                f"its scopes_supported: {named}" + (f" and {more} more" if more > 0 else "")
            )
        return "; ".join(parts)

    def _valid_token(self) -> str | None:
        token = self._token
        if token is None or self._clock() >= token.refresh_at:
            return None
        return token.value

    def _build_request(
        self,
        method: str,
        url: httpx.URL,
        form: dict[str, str] | None = None,
        accept: str = "application/json",
    ) -> httpx.Request:
        headers = {"Accept": accept}
        if self._user_agent:
            headers["User-Agent"] = self._user_agent
        return httpx.Request(
            method, url, data=form, headers=headers, extensions={"timeout": self._timeout.as_dict()}
        )

    def _accept_discovery(self, response: httpx.Response, url: httpx.URL) -> str:
        data = _json_answer(response, url, "GET", "SMART configuration")
        self._capabilities = _strings(data.get("capabilities"))
        self._scopes_supported = _strings(data.get("scopes_supported"))
        endpoint = data.get("token_endpoint")
        where = _urls.redact(url)
        if not isinstance(endpoint, str):
            raise MalformedResponse(
                f"SMART configuration {where} has no token_endpoint",
                status=response.status_code,
                url=where,
            )
        return self._checked_endpoint(endpoint, f"SMART configuration {where}", response, where)

    def _accept_statement(
        self, response: httpx.Response, url: httpx.URL, well_known: httpx.URL, status: int
    ) -> str:
        """The token endpoint of the CapabilityStatement's oauth-uris extension."""
        found = response.status_code
        if 400 <= found < 500 and found not in RETRYABLE_STATUSES:
            # a setup error, never a 4xx of the FHIR request it came before ("no such patient")
            raise MalformedResponse(
                f"no token endpoint: SMART configuration {_urls.redact(well_known)} answered "
                f"HTTP {status} and CapabilityStatement {_urls.redact(url)} HTTP {found}; "
                "set token_url",
                status=found,
                url=_urls.redact(url),
            )
        data = _json_answer(response, url, "GET", "CapabilityStatement")
        where = _urls.redact(url)
        endpoint = _oauth_token_uri(data)
        if endpoint is None:
            raise MalformedResponse(
                f"no token endpoint: SMART configuration {_urls.redact(well_known)} answered "
                f"HTTP {status} and CapabilityStatement {where} has no oauth-uris token; "
                "set token_url",
                status=response.status_code,
                url=where,
            )
        return self._checked_endpoint(endpoint, f"CapabilityStatement {where}", response, where)

    def _checked_endpoint(
        self, endpoint: str, source: str, response: httpx.Response, where: str
    ) -> str:
        """``endpoint`` if it is an absolute http(s) URL, https for an https FHIR server."""
        token_url = _urls.absolute_http(endpoint)
        if token_url is None:
            raise MalformedResponse(
                f"{source} has an invalid token_endpoint", status=response.status_code, url=where
            )
        if self._base.scheme == "https" and token_url.scheme != "https":
            raise MalformedResponse(
                f"{source} has a non-https token_endpoint", status=response.status_code, url=where
            )
        log.debug("token endpoint discovered at %s", _urls.origin_text(token_url))
        return endpoint

    def _accept_token(self, response: httpx.Response, url: httpx.URL) -> _Token:
        data = _json_answer(response, url, "POST", "token request", answer="token response")
        where = _urls.redact(url)
        value = data.get("access_token")
        token_type = data.get("token_type", "bearer")
        if not isinstance(value, str) or not value:
            raise MalformedResponse(
                f"token response from {where} has no access_token",
                status=response.status_code,
                url=where,
            )
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise MalformedResponse(
                f"token response from {where} is not a bearer token",
                status=response.status_code,
                url=where,
            )
        sendable = sendable_token(value)
        if sendable is None:  # never sent: httpx's error for the header would quote it
            raise MalformedResponse(
                f"token response from {where}: its access_token {UNSENDABLE_TOKEN}",
                status=response.status_code,
                url=where,
            )
        value = sendable
        self._note_granted(data.get("scope"))
        lifetime = _lifetime(data.get("expires_in"))
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, lifetime / 5)
        log.debug("access token obtained from %s, expires in %.0f s", where, lifetime)
        return _Token(value=value, refresh_at=self._clock() + lifetime - margin)

    def _note_granted(self, granted: Any) -> None:
        """Record the scopes a token response granted (SMART Backend Services: ``scope`` is
        required, and "can be different from the scopes requested"); say, before anything is
        read with the token, which SMART resource scopes asked were not granted: what they
        cover will be refused (403) or answered in part. Once per change."""
        if not isinstance(granted, str):
            self._granted = None
            self._not_granted = ()
            return
        self._granted = " ".join(scope_tokens(granted.split()))
        missing = not_granted(self._scope, self._granted)
        if missing and missing != self._not_granted:
            # the scopes asked come from the settings; the server's own words are not logged
            log.warning(
                "the token endpoint granted fewer scopes than asked: not granted %s; the "
                "resources they cover will not be read or written (fhirtis capabilities "
                "shows the scopes granted)",
                " ".join(missing),
            )
        self._not_granted = missing

    def _refresh_after(
        self, response: httpx.Response, token: str, attempt: int, url: httpx.URL
    ) -> bool:
        """Whether ``response`` to a request sent with ``token`` calls for a new token and the
        request sent again: a 401, on the first attempt, unless ``token`` is futile. A 401 on
        the second attempt makes the token sent then futile."""
        if response.status_code != 401:
            return False
        cached = self._token if self._token is not None and self._token.value == token else None
        if attempt == 2:
            if cached is not None and not cached.futile:
                cached.futile = True
                log.warning(
                    "401 from %s with a new access token too; the token is not the cause: "
                    "401s are final until it expires",
                    _urls.log_target(url),
                )
            return False
        if cached is not None and cached.futile:
            return False
        log.info("401 from %s; refreshing the access token once", _urls.log_target(url))
        return True

    # -- drivers: the same flow, with a lock so that concurrent requests share one token fetch
    # (the first, and the refresh after a 401 that several requests in flight may meet) ------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        rejected: str | None = None
        for attempt in (1, 2):
            token = self._usable(rejected)
            if token is None:
                with self._thread_lock:
                    token = yield from _drive_sync(self._authorize(request, rejected))
            else:
                _attach_bearer(request, token, self._base)
            response = yield request  # the FHIR server's answer: left unread
            if not self._refresh_after(response, token, attempt, request.url):
                return
            rejected = token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        rejected: str | None = None
        for attempt in (1, 2):
            token = self._usable(rejected)
            if token is None:
                if self._async_lock is None:
                    self._async_lock = asyncio.Lock()
                async with self._async_lock:
                    flow = self._authorize(request, rejected)
                    try:
                        pending = next(flow)
                        while True:
                            response = yield pending.request
                            await aread_capped(response, pending.max_bytes)
                            pending = flow.send(response)
                    except StopIteration as done:
                        token = done.value
            else:
                _attach_bearer(request, token, self._base)
            response = yield request  # the FHIR server's answer: left unread
            if not self._refresh_after(response, token, attempt, request.url):
                return
            rejected = token


class SmartBackendAuth(_ClientCredentialsAuth):
    """SMART Backend Services: ``client_credentials`` with a ``private_key_jwt`` assertion;
    each assertion is a fresh JWT (alg RS384/ES384, ``kid`` header; iss = sub = client_id,
    aud = token endpoint, exp in 4 minutes, a random ``jti``)."""

    def __init__(
        self,
        *,
        private_key: RSAKey | ECKey,
        kid: str,
        alg: SigningAlg,
        **flow: Unpack[ClientFlow],
    ) -> None:
        _check_key(private_key, alg)
        super().__init__(**flow)
        self._key = private_key
        self._kid = kid
        self._alg = alg

    @classmethod
    def from_config(
        cls, config: FhirClientConfig, *, clock: Callable[[], float] = time.time
    ) -> SmartBackendAuth:
        if config.kid is None:
            raise ValueError("SMART backend auth needs client_id, kid and scope")
        flow = _flow_of(config, clock)
        if config.private_key_pem is not None:
            pem: bytes = config.private_key_pem.get_secret_value().encode()
        elif config.private_key_path is not None:
            pem = _read_credential(config.private_key_path, "private_key_path")
        else:
            raise ValueError("SMART backend auth needs a private key")
        try:
            key = load_private_key(pem, config.alg)
        except ValueError as exc:
            if config.private_key_path is None:
                raise
            raise ValueError(f"fhir.private_key_path {config.private_key_path}: {exc}") from None
        return cls(private_key=key, kid=config.kid, alg=config.alg, **flow)

    def _token_request(self, token_url: httpx.URL) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.make_assertion(str(token_url)),
        }
        return self._build_request("POST", token_url, form=form)

    def make_assertion(self, audience: str) -> str:
        """A signed client-authentication JWT for the token endpoint ``audience``."""
        now = int(self._clock())
        claims: dict[str, Any] = {
            "iss": self._client_id,
            "sub": self._client_id,
            "aud": audience,
            "exp": now + ASSERTION_LIFETIME_SECONDS,
            "jti": secrets.token_urlsafe(32),
        }
        header = {"alg": self._alg, "kid": self._kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[self._alg])


class ClientSecretAuth(_ClientCredentialsAuth):
    """``client_credentials`` with a client secret, sent as HTTP Basic with the id and secret
    form-urlencoded first (RFC 6749 §2.3.1): Microsoft Entra ID for Azure Health Data Services,
    Medplum, Oracle Health system accounts. The request's form is ``grant_type`` and
    ``scope`` only."""

    def __init__(self, *, client_secret: SecretStr, **flow: Unpack[ClientFlow]) -> None:
        super().__init__(**flow)
        self._secret = client_secret

    @classmethod
    def from_config(
        cls, config: FhirClientConfig, *, clock: Callable[[], float] = time.time
    ) -> ClientSecretAuth:
        flow = _flow_of(config, clock)
        if config.client_secret is not None:
            secret = config.client_secret
        elif config.client_secret_path is not None:
            # a secret store's file (systemd credentials, a mounted secret): its line end is
            # no part of the secret
            raw = _read_credential(config.client_secret_path, "client_secret_path")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(
                    f"fhir.client_secret_path {config.client_secret_path}: not UTF-8 text"
                ) from None
            secret = SecretStr(text.rstrip("\r\n"))
        else:
            raise ValueError("client-secret auth needs a client secret")
        if not secret.get_secret_value():
            raise ValueError("the client secret is empty")
        return cls(client_secret=secret, **flow)

    def _token_request(self, token_url: httpx.URL) -> httpx.Request:
        form = {"grant_type": "client_credentials", "scope": self._scope}
        request = self._build_request("POST", token_url, form=form)
        user = quote_plus(self._client_id, safe="")
        password = quote_plus(self._secret.get_secret_value(), safe="")
        basic = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        request.headers["Authorization"] = f"Basic {basic}"
        return request


def _lifetime(expires_in: Any) -> float:
    """``expires_in`` in seconds (a number, or ASCII digits as some servers send); default 300
    (also for digits too many to be a real lifetime, and for 0 or less)."""
    if isinstance(expires_in, str):
        text = expires_in.strip()
        seconds = float(text) if text.isascii() and text.isdigit() else math.inf
        return seconds if math.isfinite(seconds) else DEFAULT_TOKEN_LIFETIME_SECONDS
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) and expires_in > 0:
        return float(expires_in)
    # 0 or less is no lifetime (RFC 6749 §5.1): taken as none given, not as a token to replace
    # before every request (one that has really expired meets the refresh a 401 starts)
    return DEFAULT_TOKEN_LIFETIME_SECONDS


def _oauth_token_uri(statement: dict[str, Any]) -> str | None:
    """The ``token`` of a CapabilityStatement's ``rest.security`` extension oauth-uris (SMART App
    Launch 1.0.0; ``valueUri``, or ``valueUrl``/``valueString`` as some servers write it)."""
    for rest in _dicts(statement.get("rest")):
        security = rest.get("security")
        if not isinstance(security, dict):
            continue
        for extension in _dicts(security.get("extension")):
            if extension.get("url") != OAUTH_URIS:
                continue
            for part in _dicts(extension.get("extension")):
                if part.get("url") != "token":
                    continue
                for key in ("valueUri", "valueUrl", "valueString"):
                    value = part.get(key)
                    if isinstance(value, str) and value:
                        return value
    return None


def _strings(value: Any) -> tuple[str, ...] | None:
    """The scope-tokens of a JSON list (a SMART configuration's ``capabilities``,
    ``scopes_supported``), never anything else a server writes there; None if absent."""
    if not isinstance(value, list):
        return None
    return scope_tokens(v for v in value if isinstance(v, str))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _drive_sync(
    flow: Generator[_Ask, httpx.Response, str],
) -> Generator[httpx.Request, httpx.Response, str]:
    """Drive ``flow`` (discovery and token requests), reading each answer's body to the limit
    its request was yielded with (:class:`_Ask`); returns what ``flow`` returns."""
    try:
        pending = next(flow)
        while True:
            response = yield pending.request
            read_capped(response, pending.max_bytes)
            pending = flow.send(response)
    except StopIteration as done:
        token: str = done.value
        return token


def _json_answer(
    response: httpx.Response, url: httpx.URL, method: str, what: str, *, answer: str = ""
) -> dict[str, Any]:
    """The JSON object of an answer in the token flow, once its status is a success
    (:func:`_raise_for_auth_status`, ``what`` naming the request); ``answer`` (else ``what``)
    names the body where it is no JSON object."""
    _raise_for_auth_status(response, url, method, what)
    return _responses.json_object(
        response.content,
        what=answer or what,
        method=method,
        url=url,
        status=response.status_code,
        media_type=response.headers.get("content-type"),
    )


def _raise_for_auth_status(
    response: httpx.Response, url: httpx.URL, method: str, what: str
) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    where = _urls.redact(url)
    if status in RETRYABLE_STATUSES:
        raise TokenEndpointUnavailable(
            f"{what} to {where} answered HTTP {status}",
            status=status,
            url=where,
            retry_after=response.headers.get("Retry-After"),
            headers=response.headers,
        )
    if what == "token request":
        code = _oauth_error_code(response.content)
        detail = f" ({code})" if code else ""
        raise Unauthorized(
            f"{what} to {where} was refused: HTTP {status}{detail}", status=status, url=where
        )
    raise _responses.error_for(method, url, status, response.content)


def _oauth_error_code(content: bytes) -> str | None:
    """The registered OAuth ``error`` code (``invalid_client``...); never the description."""
    try:
        data = orjson.loads(content)
    except orjson.JSONDecodeError:
        return None
    code = data.get("error") if isinstance(data, dict) else None
    if isinstance(code, str) and _OAUTH_ERROR_CODE.fullmatch(code):
        return code
    return None


def _read_credential(path: Path, setting: str) -> bytes:
    """The bytes of a credential file (a private key, a client secret); ValueError naming the
    setting and the file, never its content, when it cannot be read (missing, a folder, no
    permission), so that a misconfigured path is one line, not a traceback."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise ValueError(f"fhir.{setting} {path}: {why}") from None


#: A PEM private key written with a passphrase: PKCS#8 (``ENCRYPTED PRIVATE KEY``) or OpenSSL's
#: traditional form (``Proc-Type: 4,ENCRYPTED``)
_ENCRYPTED_PEM = re.compile(rb"-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,\s*ENCRYPTED")


def load_private_key(pem: bytes | str, alg: SigningAlg) -> RSAKey | ECKey:
    """A PEM private key for ``alg``: RSA (2048 bits or more) for RS384, P-384 for ES384."""
    key: RSAKey | ECKey
    kind = "RSA" if alg == "RS384" else "EC"
    try:
        key = import_key(pem, "RSA") if alg == "RS384" else import_key(pem, "EC")
    except (JoseError, ValueError, TypeError) as exc:
        # TypeError: cryptography's "Password was not given but private key is encrypted", for
        # a key written with a passphrase (openssl genpkey -aes256, openssl pkcs8 -topk8)
        if _ENCRYPTED_PEM.search(pem.encode() if isinstance(pem, str) else pem):
            raise ValueError(
                f"the private key is encrypted with a passphrase, which fhirtis cannot use: "
                f"give the PEM {kind} key unencrypted (openssl pkey -in KEY -out PLAIN_KEY), "
                "readable by fhirtis only"
            ) from None
        raise ValueError(f"the private key is not a PEM {kind} key usable for {alg}") from exc
    _check_key(key, alg)
    return key


def _check_key(key: RSAKey | ECKey, alg: SigningAlg) -> None:
    if not key.is_private:
        raise ValueError("the SMART client key must be a private key")
    if alg == "RS384":
        if not isinstance(key, RSAKey):
            raise ValueError("RS384 needs an RSA key")
        if key.raw_value.key_size < 2048:
            raise ValueError("RS384 needs an RSA key of at least 2048 bits")
    elif not isinstance(key, ECKey) or key.curve_name != "P-384":
        raise ValueError("ES384 needs an EC key on curve P-384")


def authorization_of(auth: httpx.Auth) -> Authorization | None:
    """What ``auth`` knows of the server's authorization; None where it fetches no token
    (``none``, ``bearer``, a caller's token passed through)."""
    return auth.authorization() if isinstance(auth, _ClientCredentialsAuth) else None


def build_auth(config: FhirClientConfig, *, clock: Callable[[], float] = time.time) -> httpx.Auth:
    """The ``httpx.Auth`` for ``config.auth_mode``."""
    if config.auth_mode == "bearer":
        if config.bearer_token is None:  # guarded by the config's validator
            raise ValueError("auth_mode 'bearer' needs bearer_token")
        return BearerTokenAuth(config.bearer_token, base_url=config.base)
    if config.auth_mode == "smart-backend":
        return SmartBackendAuth.from_config(config, clock=clock)
    if config.auth_mode == "client-secret":
        return ClientSecretAuth.from_config(config, clock=clock)
    return NoAuth()
