"""Trusting CDS clients (CDS Hooks 2.0, https://cds-hooks.hl7.org/2.0/#trusting-cds-clients).

Every service call carries ``Authorization: Bearer <JWT>`` signed by a trusted CDS client
(``cds.trusted_clients``: its ``iss`` and its JWKS, at ``jwks_url`` or in ``jwks_path``). The
service checks:

- the signature, with a key of that client's JWKS, by an algorithm CDS Hooks names (ES384,
  RS384; ES256/RS256 are not accepted);
- ``iss``: a trusted client; ``aud``: the URL of the service called (``/cds-services/{id}``;
  for its feedback endpoint, ``/cds-services/{id}/feedback`` or the service's URL);
- ``exp``: a finite number, in the future and at most the client's
  ``max_token_lifetime_seconds`` ahead (default 900: CDS Hooks 2.0 sets no maximum, and Epic
  documents 15-minute tokens; 30 s allowed for clock skew); ``iat`` and ``nbf``, when given,
  finite numbers not in the future;
- ``jti``: a string not seen before from that client while the token is valid (replay).

Anything else is 401, with ``WWW-Authenticate: Bearer realm="fhirtis-cds"`` (RFC 9110 §11.6.1:
every 401 carries a challenge; :class:`CdsChallenge` adds it to the CDS error answer, whose
body stays ``{"error", "message"}``). ``GET /cds-services`` (discovery) stays public. A JWKS
URL is read with the service's HTTP client (within 5 s and 1 MB, else 503) and kept for 5 minutes
(read again, at most every 30 s, when a token names a key it does not hold). Tokens are never
logged.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhirtis.api.cds_hooks.request import CdsError
from fhirtis.settings import TrustedCdsClient

__all__ = ["ALGORITHMS", "CHALLENGE", "CdsCaller", "CdsChallenge", "CdsClientVerifier"]

ALGORITHMS = ["ES384", "RS384"]
SKEW_SECONDS = 30
JWKS_TTL_SECONDS = 300.0
JWKS_MIN_REFRESH_SECONDS = 30.0
MAX_TOKEN_CHARS = 16_384
#: A JWKS URL's answer: read whole within this time, and no larger than this (a few keys are a
#: few kB); else the keys cannot be read (503), as for a refused connection.
JWKS_FETCH_SECONDS = 5.0
MAX_JWKS_BYTES = 1_000_000
#: The challenge of a CDS service call refused 401 (the CDS client's JWT is a bearer token).
CHALLENGE = 'Bearer realm="fhirtis-cds"'
_CDS_PREFIX = "/cds-services/"


@dataclass(frozen=True)
class CdsCaller:
    """Who called: the trusted client's ``iss`` and the token's ``sub`` (never the token)."""

    iss: str
    sub: str | None


def unauthorized(message: str) -> CdsError:
    return CdsError(401, "unauthorized", message)


class CdsChallenge:
    """ASGI middleware: a 401 answer to a CDS service call gets ``WWW-Authenticate``
    (:data:`CHALLENGE`) unless it has one; nothing else changes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(_CDS_PREFIX):
            await self.app(scope, receive, send)
            return

        async def with_challenge(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 401:
                headers = list(message.get("headers", []))
                if all(k.lower() != b"www-authenticate" for k, _ in headers):
                    headers.append((b"www-authenticate", CHALLENGE.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_challenge)


@dataclass
class _Keys:
    keys: KeySet | None = None
    fetched_at: float = -math.inf
    #: how many fetches of the key set have ended, read or failed: a call that waited on the
    #: lock while one ended takes its outcome instead of fetching again
    fetches: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class CdsClientVerifier:
    """Checks the JWT of a CDS service call against the trusted clients."""

    def __init__(
        self,
        clients: Sequence[TrustedCdsClient],
        http: httpx.AsyncClient,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = {c.iss: c for c in clients}
        self._http = http
        self._clock = clock
        self._keys: dict[str, _Keys] = {}
        self._seen: dict[tuple[str, str], float] = {}  # (iss, jti) → exp
        for c in clients:  # a missing or broken key file stops the service at start
            if c.jwks_path is not None:
                self._keys[c.iss] = _Keys(_key_set(c.jwks_path.read_text()), math.inf)

    async def verify(self, authorization: str | None, audience: str | Sequence[str]) -> CdsCaller:
        """The caller of a JWT whose ``aud`` is ``audience`` (or one of them), else 401."""
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("a bearer JWT of a trusted CDS client is required")
        if len(token) > MAX_TOKEN_CHARS or not token.isascii() or not token.isprintable():
            raise unauthorized("the bearer JWT is not valid")
        try:
            unverified = json.loads(jws.extract_compact(token.encode()).payload)
        except (JoseError, ValueError, UnicodeDecodeError):
            raise unauthorized("the bearer JWT is not valid") from None
        iss = unverified.get("iss") if isinstance(unverified, dict) else None
        client = self._clients.get(iss) if isinstance(iss, str) else None
        if client is None:
            raise unauthorized("the JWT's issuer is not a trusted CDS client")
        claims = await self._decode(client, token)
        self._check_claims(client, claims, audience)
        sub = claims.get("sub")
        return CdsCaller(client.iss, sub if isinstance(sub, str) else None)

    async def _decode(self, client: TrustedCdsClient, token: str) -> dict[str, Any]:
        for refresh in (False, True):
            keys = await self._key_set(client, refresh=refresh)
            if keys is None:
                break
            try:
                return dict(jwt.decode(token, keys, algorithms=ALGORITHMS).claims)
            except (JoseError, ValueError):
                continue
        raise unauthorized("the JWT's signature is not valid")

    async def _key_set(self, client: TrustedCdsClient, *, refresh: bool) -> KeySet | None:
        if client.jwks_url is None:
            return None if refresh else self._keys[client.iss].keys
        # one lock per client: a key server that hangs keeps no other client's calls waiting;
        # the calls that waited while a fetch ended share its outcome (a hanging key server
        # answers them all 503 at once, not one fetch time after another)
        entry = self._keys.setdefault(client.iss, _Keys())
        before = entry.fetches
        async with entry.lock:
            if entry.fetches != before:  # fetched (or failed) while this call waited
                if entry.keys is None:
                    raise _jwks_unavailable()
                return entry.keys  # new keys, or on a refresh still the old ones: tried again
            age = time.monotonic() - entry.fetched_at
            stale = age > JWKS_TTL_SECONDS or (refresh and age > JWKS_MIN_REFRESH_SECONDS)
            if entry.keys is None or stale:
                if refresh and age <= JWKS_MIN_REFRESH_SECONDS:
                    return None
                try:
                    entry.keys = _key_set(await self._read_jwks(client.jwks_url))
                except (httpx.HTTPError, ValueError, JoseError, TimeoutError):
                    if entry.keys is None:
                        raise _jwks_unavailable() from None
                finally:
                    entry.fetches += 1
                entry.fetched_at = time.monotonic()
            elif refresh:
                return None
            return entry.keys

    async def _read_jwks(self, url: str) -> bytes:
        """The answer of ``url``, read whole in :data:`JWKS_FETCH_SECONDS` and at most
        :data:`MAX_JWKS_BYTES` (ValueError beyond); TimeoutError when slower."""
        async with (
            asyncio.timeout(JWKS_FETCH_SECONDS),
            self._http.stream("GET", url, timeout=JWKS_FETCH_SECONDS) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError("the JWKS is larger than MAX_JWKS_BYTES")
            return bytes(body)

    def _check_claims(
        self, client: TrustedCdsClient, claims: dict[str, Any], audience: str | Sequence[str]
    ) -> None:
        now = self._clock()
        problems = []
        if claims.get("iss") != client.iss:
            problems.append("issuer")
        aud = claims.get("aud")
        audiences = aud if isinstance(aud, list) else [aud]
        wanted = {a.rstrip("/") for a in ([audience] if isinstance(audience, str) else audience)}
        if not wanted & {a.rstrip("/") for a in audiences if isinstance(a, str)}:
            problems.append("audience")
        exp: Any = claims.get("exp")
        longest = client.max_token_lifetime_seconds + SKEW_SECONDS
        if not _finite(exp) or exp <= now or exp > now + longest:
            problems.append("expiry")
        for name in ("iat", "nbf"):
            value: Any = claims.get(name)
            if value is not None and (not _finite(value) or value > now + SKEW_SECONDS):
                problems.append(name)
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            problems.append("jti")
        if problems:
            raise unauthorized(f"the JWT is not valid ({', '.join(problems)})")
        assert isinstance(jti, str) and isinstance(exp, int | float)
        self._seen = {k: e for k, e in self._seen.items() if e + SKEW_SECONDS >= now}
        key = (client.iss, jti)
        if key in self._seen:
            raise unauthorized("the JWT was used before (jti replayed)")
        self._seen[key] = float(exp)


def _jwks_unavailable() -> CdsError:
    return CdsError(503, "jwks-unavailable", "the CDS client's keys cannot be read")


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _key_set(text: str | bytes) -> KeySet:
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise ValueError("a JWKS must be a JSON object with keys")
    return KeySet.import_key_set(data)  # type: ignore[arg-type]
