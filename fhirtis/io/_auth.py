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
import logging
import math
import re
import secrets
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key
from pydantic import SecretStr

from fhirtis.io import _responses, _urls
from fhirtis.io._capped import aread_capped, read_capped
from fhirtis.io._config import FhirClientConfig, SigningAlg
from fhirtis.io._errors import (
    ForeignUrl,
    MalformedResponse,
    TokenEndpointUnavailable,
    Unauthorized,
)
from fhirtis.io._retry import RETRYABLE_STATUSES

__all__ = [
    "CLIENT_ASSERTION_TYPE",
    "BearerTokenAuth",
    "NoAuth",
    "SmartBackendAuth",
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
#: The most of a SMART configuration or token answer read (a real one is a few kB).
AUTH_ANSWER_MAX_BYTES = 1_000_000

_OAUTH_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


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
        self._token = token if isinstance(token, SecretStr) else SecretStr(token)
        self._base = httpx.URL(str(base_url))

    def __repr__(self) -> str:
        return f"BearerTokenAuth(base_url={str(self._base)!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        _attach_bearer(request, self._token.get_secret_value(), self._base)
        yield request


@dataclass
class _Token:
    value: str
    refresh_at: float


class SmartBackendAuth(httpx.Auth):
    """SMART Backend Services: ``client_credentials`` with a ``private_key_jwt`` assertion.

    - the token endpoint comes from ``token_url`` or, once, from
      ``{base}/.well-known/smart-configuration``;
    - each assertion is a fresh JWT (alg RS384/ES384, ``kid`` header; iss = sub = client_id,
      aud = token endpoint, exp in 4 minutes, a random ``jti``);
    - the access token is cached until shortly before ``expires_in``;
    - on a 401 from the FHIR server the token is refreshed once and the request sent once more;
      a second 401 is returned to the caller.

    ``clock`` is a Unix-time source (``time.time``), injectable for tests.
    """

    requires_request_body = True  # so the request can be sent again after a 401
    # The drivers below read the discovery and token answers themselves and leave the FHIR
    # server's answer unread: a streamed response (a Bulk Data file) stays streamed.
    requires_response_body = False

    def __init__(
        self,
        *,
        base_url: str | httpx.URL,
        client_id: str,
        private_key: RSAKey | ECKey,
        kid: str,
        alg: SigningAlg,
        scope: str,
        token_url: str | None = None,
        timeout: httpx.Timeout | None = None,
        user_agent: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_key(private_key, alg)
        self._base = httpx.URL(str(base_url))
        self._client_id = client_id
        self._key = private_key
        self._kid = kid
        self._alg = alg
        self._scope = scope
        self._token_url = token_url
        self._timeout = timeout if timeout is not None else httpx.Timeout(30.0)
        self._user_agent = user_agent
        self._clock = clock
        self._token: _Token | None = None
        self._thread_lock = threading.Lock()
        self._async_lock: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return f"SmartBackendAuth(base_url={str(self._base)!r}, client_id={self._client_id!r})"

    @classmethod
    def from_config(
        cls, config: FhirClientConfig, *, clock: Callable[[], float] = time.time
    ) -> SmartBackendAuth:
        if config.client_id is None or config.kid is None or config.scope is None:
            raise ValueError("SMART backend auth needs client_id, kid and scope")
        if config.private_key_pem is not None:
            pem: bytes = config.private_key_pem.get_secret_value().encode()
        elif config.private_key_path is not None:
            pem = Path(config.private_key_path).read_bytes()
        else:
            raise ValueError("SMART backend auth needs a private key")
        return cls(
            base_url=config.base,
            client_id=config.client_id,
            private_key=load_private_key(pem, config.alg),
            kid=config.kid,
            alg=config.alg,
            scope=config.scope,
            token_url=config.token_url,
            timeout=config.timeout,
            user_agent=config.user_agent,
            clock=clock,
        )

    # -- the algorithm: a token attached (fetched when none is usable), and fetched again once
    # after a 401; the sync and async drivers below run it under their locks ----------------

    def _authorize(
        self, request: httpx.Request, rejected: str | None
    ) -> Generator[httpx.Request, httpx.Response, str]:
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

    def _fetch_token(self) -> Generator[httpx.Request, httpx.Response, str]:
        """Discover the token endpoint if needed, then get and cache an access token."""
        if self._token_url is None:
            url = _urls.join(self._base, ".well-known", "smart-configuration")
            response = yield self._build_request("GET", url)
            self._token_url = self._accept_discovery(response, url)
        token_url = httpx.URL(self._token_url)
        form = {
            "grant_type": "client_credentials",
            "scope": self._scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.make_assertion(str(token_url)),
        }
        response = yield self._build_request("POST", token_url, form=form)
        token = self._accept_token(response, token_url)
        self._token = token
        return token.value

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

    def _valid_token(self) -> str | None:
        token = self._token
        if token is None or self._clock() >= token.refresh_at:
            return None
        return token.value

    def _build_request(
        self, method: str, url: httpx.URL, form: dict[str, str] | None = None
    ) -> httpx.Request:
        headers = {"Accept": "application/json"}
        if self._user_agent:
            headers["User-Agent"] = self._user_agent
        return httpx.Request(
            method, url, data=form, headers=headers, extensions={"timeout": self._timeout.as_dict()}
        )

    def _accept_discovery(self, response: httpx.Response, url: httpx.URL) -> str:
        _raise_for_auth_status(response, url, "GET", "SMART configuration")
        data = _responses.json_object(
            response.content,
            what="SMART configuration",
            method="GET",
            url=url,
            status=response.status_code,
        )
        endpoint = data.get("token_endpoint")
        where = _urls.redact(url)
        if not isinstance(endpoint, str):
            raise MalformedResponse(
                f"SMART configuration {where} has no token_endpoint",
                status=response.status_code,
                url=where,
            )
        token_url = _urls.absolute_http(endpoint)
        if token_url is None:
            raise MalformedResponse(
                f"SMART configuration {where} has an invalid token_endpoint",
                status=response.status_code,
                url=where,
            )
        if self._base.scheme == "https" and token_url.scheme != "https":
            raise MalformedResponse(
                f"SMART configuration {where} has a non-https token_endpoint",
                status=response.status_code,
                url=where,
            )
        log.debug("token endpoint discovered at %s", _urls.origin_text(token_url))
        return endpoint

    def _accept_token(self, response: httpx.Response, url: httpx.URL) -> _Token:
        _raise_for_auth_status(response, url, "POST", "token request")
        data = _responses.json_object(
            response.content,
            what="token response",
            method="POST",
            url=url,
            status=response.status_code,
        )
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
        lifetime = _lifetime(data.get("expires_in"))
        margin = min(TOKEN_REFRESH_MARGIN_SECONDS, lifetime / 5)
        log.debug("access token obtained from %s, expires in %.0f s", where, lifetime)
        return _Token(value=value, refresh_at=self._clock() + lifetime - margin)

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
            if response.status_code != 401 or attempt == 2:
                return
            log.info("401 from %s; refreshing the access token once", _urls.log_target(request.url))
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
                            response = yield pending
                            await aread_capped(response, AUTH_ANSWER_MAX_BYTES)
                            pending = flow.send(response)
                    except StopIteration as done:
                        token = done.value
            else:
                _attach_bearer(request, token, self._base)
            response = yield request  # the FHIR server's answer: left unread
            if response.status_code != 401 or attempt == 2:
                return
            log.info("401 from %s; refreshing the access token once", _urls.log_target(request.url))
            rejected = token


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


def _drive_sync(
    flow: Generator[httpx.Request, httpx.Response, str],
) -> Generator[httpx.Request, httpx.Response, str]:
    """Drive ``flow`` (discovery and token requests), reading each answer's body (capped at
    :data:`AUTH_ANSWER_MAX_BYTES`); returns what ``flow`` returns."""
    try:
        pending = next(flow)
        while True:
            response = yield pending
            read_capped(response, AUTH_ANSWER_MAX_BYTES)
            pending = flow.send(response)
    except StopIteration as done:
        token: str = done.value
        return token


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


def load_private_key(pem: bytes | str, alg: SigningAlg) -> RSAKey | ECKey:
    """A PEM private key for ``alg``: RSA (2048 bits or more) for RS384, P-384 for ES384."""
    key: RSAKey | ECKey
    try:
        key = import_key(pem, "RSA") if alg == "RS384" else import_key(pem, "EC")
    except (JoseError, ValueError) as exc:
        kind = "RSA" if alg == "RS384" else "EC"
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


def build_auth(config: FhirClientConfig, *, clock: Callable[[], float] = time.time) -> httpx.Auth:
    """The ``httpx.Auth`` for ``config.auth_mode``."""
    if config.auth_mode == "bearer":
        if config.bearer_token is None:  # guarded by the config's validator
            raise ValueError("auth_mode 'bearer' needs bearer_token")
        return BearerTokenAuth(config.bearer_token, base_url=config.base)
    if config.auth_mode == "smart-backend":
        return SmartBackendAuth.from_config(config, clock=clock)
    return NoAuth()
