"""An async FHIR R4 client over one shared ``httpx.AsyncClient``.

The decisions live in pure modules and are only driven here: the paging walk
(``_paging.walk_pages``), retries and idempotency (``_retry``), auth (``auth``, an
``httpx.Auth`` flow). Resources are plain dicts parsed with orjson.

Retries: 429, 502, 503, 504, timeouts and connection errors are retried with exponential backoff
and full jitter (the server's ``Retry-After``, Azure's ``x-ms-retry-after-ms`` or the reset in
a ``RateLimit`` header, Medplum's, honoured), up to ``retry_max_attempts`` and within
``retry_budget_seconds``, for idempotent requests. A
non-idempotent request (plain create, transaction) is retried only when the server cannot have
processed it: a connect error or pool timeout before sending, a failed token fetch, a 429 or a
503. After a read/write timeout, a dropped connection, a 502 or a 504 it raises
:class:`WriteOutcomeUnknown` without re-sending.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson

from fhirtis.io import _capabilities, _responses, _urls
from fhirtis.io._auth import Authorization, authorization_of, build_auth
from fhirtis.io._capabilities import Capabilities, Refused
from fhirtis.io._capped import aread_capped
from fhirtis.io._closing import AsyncClosing
from fhirtis.io._config import FhirClientConfig
from fhirtis.io._errors import (
    FhirServerError,
    ForeignUrl,
    MalformedResponse,
    NotFound,
    TokenEndpointUnavailable,
    TooManyRetries,
    UnsupportedFhirVersion,
    WriteOutcomeUnknown,
)
from fhirtis.io._paging import PageRequest, next_link, parse_page, resolve_next, walk_pages
from fhirtis.io._retry import (
    NOT_PROCESSED_STATUSES,
    RETRYABLE_STATUSES,
    RetryPolicy,
    is_idempotent,
    is_read_only_batch,
    is_retryable_transport_error,
    may_have_reached_server,
    parse_retry_after,
    retry_after_of,
    transport_outcome,
)

__all__ = ["FhirClient", "FhirResponse", "SearchParams", "Timing"]

log = logging.getLogger("fhirtis.io")

FHIR_JSON = "application/fhir+json"
FORM = "application/x-www-form-urlencoded"

#: Search parameters: a mapping (a sequence value repeats the parameter, as in
#: ``{"date": ["ge2020-01-01", "le2020-12-31"]}``) or a sequence of (name, value) pairs.
SearchParams = (
    Mapping[str, str | int | Sequence[str | int]] | Sequence[tuple[str, str | int]] | None
)


@dataclass(frozen=True)
class Timing:
    """Time sources, injectable so tests never really sleep.

    ``sleep`` and ``random`` drive backoff; ``monotonic`` measures the retry budget; ``time``
    (Unix time) reads HTTP-date ``Retry-After`` values and dates tokens and JWT assertions.
    """

    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = random.random
    monotonic: Callable[[], float] = time.monotonic
    time: Callable[[], float] = time.time


_RESENT = "fhirtis.resent"  # set in an answer's httpx extensions: see FhirResponse.resent


@dataclass(frozen=True)
class FhirResponse:
    """What :meth:`FhirClient.request` returns: status, headers and the JSON body, if any."""

    status: int
    headers: httpx.Headers
    body: dict[str, Any] | None = field(default=None)
    resent: bool = False
    """The request was sent again after an earlier try that may have reached the server (its
    answer was lost, or a gateway answered 502/504): that try may be what made this outcome
    (a conditional create answered 200 "exists" may have been created by it)."""

    @property
    def etag(self) -> str | None:
        value: str | None = self.headers.get("ETag")
        return value

    @property
    def location(self) -> str | None:
        value: str | None = self.headers.get("Location") or self.headers.get("Content-Location")
        return value


class FhirClient(AsyncClosing):
    """Async FHIR client for one server (``config.base_url``).

    ``http``: an ``httpx.AsyncClient`` to share (the caller closes it); by default the client
    creates and owns one. ``auth``: overrides the auth built from ``config``. Use as
    ``async with FhirClient(config) as fhir: ...`` or call :meth:`aclose`.
    """

    def __init__(
        self,
        config: FhirClientConfig,
        *,
        http: httpx.AsyncClient | None = None,
        auth: httpx.Auth | None = None,
        timing: Timing | None = None,
    ) -> None:
        self._config = config
        self._base = config.base
        self._timing = timing if timing is not None else Timing()
        self._auth = auth if auth is not None else build_auth(config, clock=self._timing.time)
        self._owns_http = http is None
        if http is None:
            limits = httpx.Limits(
                max_connections=config.concurrency,
                max_keepalive_connections=config.concurrency,
            )
            http = httpx.AsyncClient(timeout=config.timeout, limits=limits)
        self._http = http
        self._policy = RetryPolicy(
            max_attempts=config.retry_max_attempts,
            backoff_base=config.retry_backoff_base_seconds,
            backoff_max=config.retry_backoff_max_seconds,
            budget=config.retry_budget_seconds,
        )
        self._in_flight = asyncio.Semaphore(config.concurrency)
        self._capabilities_lock = asyncio.Lock()
        self._writer: FhirClient | None = None
        self._bundle_limit = config.max_bundle_entries
        self._next_slot = 0.0  # the earliest monotonic time the next request may start
        self._pace_lock = asyncio.Lock()

    @property
    def config(self) -> FhirClientConfig:
        return self._config

    async def aclose(self) -> None:
        """Close the HTTP client if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    # -- what the server can do ------------------------------------------------------------------

    async def capabilities(self, *, refresh: bool = False) -> Capabilities:
        """What this server can do: its CapabilityStatement (``GET [base]/metadata``, read once
        per server and process, cached for ``capabilities_ttl_seconds``) plus what it refused
        since. A missing or malformed statement falls back to "unknown" (everything is tried and
        learned from refusals); it never raises for a statement's content."""
        key = self._config.base_url
        cache = _capabilities.CACHE
        found = None if refresh else cache.get(key)
        if found is not None:
            return self._r4(found)
        async with self._capabilities_lock:
            found = None if refresh else cache.get(key)
            if found is not None:
                return self._r4(found)
            try:
                response = await self.request("GET", "metadata")
                caps = _capabilities.parse_statement(
                    response.body, response.headers.get("Content-Type")
                )
            except MalformedResponse:
                caps = _capabilities.unknown(
                    "malformed", "the server's /metadata is not JSON: assumed nothing"
                )
            except FhirServerError as exc:
                caps = _capabilities.unknown(
                    "missing",
                    f"no CapabilityStatement (HTTP {exc.status} for /metadata): assumed nothing",
                    exc.status,
                )
            for note in caps.notes:
                level = logging.WARNING if caps.release == "R4B" else logging.INFO
                log.log(level, "capabilities of %s: %s", _urls.origin_text(self._base), note)
            return self._r4(cache.put(key, caps))

    def _r4(self, caps: Capabilities) -> Capabilities:
        """``caps``, or :class:`UnsupportedFhirVersion` where the server said it serves another
        FHIR release than R4 (or R4B): before any patient is read from it or written to it. A
        statement that says no version, or none that could be read, is taken as R4 (logged)."""
        if caps.fhir_version is None or caps.release != "other":
            return caps
        base = _urls.redact(self._base).rstrip("/")
        hint = _capabilities.r4_base_hint(base)
        found = _capabilities.release_name(caps.fhir_version)
        message = (
            f"the FHIR server at {base} serves FHIR {found} (its "
            "/metadata says so); fhirtis reads and writes FHIR R4 (4.0.x) only: "
        )
        message += (
            f"use the server's R4 base URL, {hint}"
            if hint is not None
            else "give the server's R4 base URL (vendors serve each FHIR version under its own)"
        )
        raise UnsupportedFhirVersion(message, version=caps.fhir_version, base_url=base, hint=hint)

    def authorization(self) -> Authorization | None:
        """What fhirtis's own client-credentials flow knows of this server's authorization (the
        SMART scope syntax it advertises, the scopes asked and granted); None without one."""
        return authorization_of(self._auth)

    def cached_capabilities(self) -> Capabilities | None:
        """What is known of this server without asking it (None: nothing yet, or expired)."""
        return _capabilities.CACHE.get(self._config.base_url)

    def learn(self, refused: Refused) -> None:
        """Remember that this server refused something (for every client of the server)."""
        caps = _capabilities.CACHE.learn(self._config.base_url, refused)
        if caps is None:
            caps = _capabilities.CACHE.put(
                self._config.base_url, _capabilities.unknown("assumed", "not read yet")
            )
            _capabilities.CACHE.learn(self._config.base_url, refused)
        log.info(
            "capabilities of %s: learned %s", _urls.origin_text(self._base), refused.describe()
        )

    @property
    def max_bundle_entries(self) -> int | None:
        """The most entries a Bundle of writes may have: ``max_bundle_entries``, or fewer where
        this server refused a larger Bundle (:meth:`learn_bundle_limit`); None: no limit."""
        return self._bundle_limit

    def learn_bundle_limit(self, entries: int) -> None:
        """The server refused a Bundle for its number of entries: from now on at most
        ``entries`` (at least 1) a Bundle, for this client's life."""
        entries = max(1, entries)
        if self._bundle_limit is None or entries < self._bundle_limit:
            self._bundle_limit = entries
            log.warning(
                "%s refused a Bundle for its size: writing at most %d entries a Bundle",
                _urls.origin_text(self._base),
                entries,
            )

    def writer(self) -> FhirClient:
        """The client derived resources are written with: this one, or one for
        ``write_base_url`` sharing this client's connection pool."""
        target = self._config.for_writes()
        if target is self._config:
            return self
        if self._writer is None:
            self._writer = FhirClient(target, http=self._http, timing=self._timing)
        return self._writer

    # -- reads -------------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """``GET [base]/[type]/[id]``; raises :class:`NotFound` for 404 and 410."""
        url = _urls.join(
            self._base,
            _urls.check_resource_type(resource_type),
            _urls.check_resource_id(resource_id),
        )
        response = await self._send("GET", url, idempotent=True)
        resource = self._json_body(response, "GET", url, what="resource")
        if resource.get("resourceType") != resource_type:
            where = _urls.redact(url)
            raise MalformedResponse(
                f"GET {where} did not return a {resource_type}",
                status=response.status_code,
                url=where,
            )
        return resource

    async def search(
        self,
        resource_type: str,
        params: SearchParams = None,
        *,
        count: int | None = None,
        use_post: bool = False,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Every entry of every page (``fullUrl``, ``resource``, ``search``), fetched lazily.

        ``search.mode`` tells matches from ``_include``-d resources. See
        :meth:`search_bundle_pages` for the parameters.
        """
        async for bundle in self.search_bundle_pages(
            resource_type, params, count=count, use_post=use_post
        ):
            for entry in bundle.get("entry") or []:
                yield entry

    async def search_bundle_pages(
        self,
        resource_type: str,
        params: SearchParams = None,
        *,
        count: int | None = None,
        use_post: bool = False,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each searchset Bundle page, following ``next`` links lazily.

        ``_count`` is ``params["_count"]`` if given, else ``count``, else ``config.page_size``.
        ``use_post`` sends the first page as ``POST [type]/_search`` (parameters in the body,
        not in URLs or logs); later pages follow the server's ``next`` links with GET.
        A ``next`` link off the base's origin raises :class:`ForeignNextLink` and one already
        fetched raises :class:`PagingLoop`, both before anything is sent.
        """
        first = self._first_page(resource_type, params, count, use_post)
        async for bundle in self._walk(first):
            yield bundle

    async def following_pages(
        self, page: Mapping[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The pages after ``page``, a searchset already in hand (e.g. an entry of a batch
        response), following ``next`` links with the same origin and loop checks."""
        link = next_link(dict(page))
        if link is None:
            return
        first = PageRequest("GET", resolve_next(self._base, self._base, link, self._config.aliases))
        async for bundle in self._walk(first, continues=True):
            yield bundle

    async def _walk(
        self, first: PageRequest, *, continues: bool = False
    ) -> AsyncGenerator[dict[str, Any], None]:
        """The pages from ``first`` on (``continues``: ``first`` is itself a later page)."""
        walk = walk_pages(self._base, first, self._config.aliases)
        pages = 0
        try:
            page = next(walk)
            while True:
                pages += 1
                if pages > self._config.max_pages_per_search:
                    raise MalformedResponse(
                        f"a search went on past {self._config.max_pages_per_search} pages "
                        "(max_pages_per_search); stopped",
                        status=None,
                        url=_urls.redact(page.url),
                    )
                try:
                    bundle = await self._fetch_page(page)
                except NotFound as exc:
                    if page is first and not continues:
                        raise
                    # a later page gone (an expired paging session) is not a missing resource
                    raise FhirServerError(
                        f"a later page of a search answered {exc.status}: {exc}",
                        status=exc.status,
                        url=exc.url,
                    ) from None
                # the walk only needs the links; copy them before the caller can touch the page
                links = {"link": copy.deepcopy(bundle.get("link"))}
                yield bundle
                try:
                    page = walk.send(links)
                except StopIteration:
                    return
        finally:
            walk.close()

    # -- writes ------------------------------------------------------------------------------

    async def batch(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """POST a ``batch`` Bundle of ``entries``; returns the batch-response Bundle.

        Retried like a read if every entry is a GET or HEAD, otherwise like a write.
        Entry-level failures are in the response's ``entry[].response.status``.
        """
        bundle: dict[str, Any] = {
            "resourceType": "Bundle",
            "type": "batch",
            "entry": [dict(e) for e in entries],
        }
        return await self._post_bundle(bundle, idempotent=is_read_only_batch(bundle))

    async def transaction(self, bundle: Mapping[str, Any]) -> dict[str, Any]:
        """POST a ``transaction`` Bundle; returns the transaction-response Bundle.

        Never re-sent once it may have reached the server: if no answer comes back,
        :class:`WriteOutcomeUnknown` is raised and the caller should re-read and re-plan.
        """
        if bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
            raise ValueError("transaction() needs a Bundle of type 'transaction'")
        return await self._post_bundle(bundle, idempotent=False)

    # -- anything else -------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: SearchParams = None,
        json: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> FhirResponse:
        """Any request to the server: ``url`` relative to the base (``"Patient/1/$everything"``,
        ``"metadata"``) or absolute on the base's origin.

        ``idempotent`` defaults to the rules of :func:`fhirtis.io._retry.is_idempotent`
        (GET, HEAD, DELETE, If-Match updates, If-None-Exist creates, ``_search``, read-only
        batches). Raises a :class:`FhirServerError` subclass for any status but 2xx (a 3xx
        redirect is not followed); its ``resent`` says an earlier try may have reached the
        server.
        """
        method = method.upper()
        target = self._resolve(url)
        items = _param_items(params)
        if items:
            target = target.copy_with(
                params=httpx.QueryParams([*target.params.multi_items(), *items])
            )
        content = orjson.dumps(json) if json is not None else None
        extra = dict(headers or {})
        if content is not None:
            extra.setdefault("Content-Type", FHIR_JSON)
        if idempotent is None:
            idempotent = is_idempotent(method, target, extra, json)
        response = await self._send(
            method, target, content=content, headers=extra, idempotent=idempotent
        )
        if not response.is_success:
            # a redirect (never followed: the token stays on this server) is no success either:
            # Epic answers a merged Patient's read with one, a gateway http:// with 301/308
            error = _responses.error_for(
                method,
                target,
                response.status_code,
                response.content,
                prefix="" if response.status_code >= 400 else "a redirect, not followed: ",
            )
            error.resent = bool(response.extensions.get(_RESENT))
            raise error
        body = None
        if response.content:
            body = _responses.json_object(
                response.content,
                what="body",
                method=method,
                url=target,
                status=response.status_code,
                media_type=response.headers.get("content-type"),
            )
        return FhirResponse(
            status=response.status_code,
            headers=response.headers,
            body=body,
            resent=bool(response.extensions.get(_RESENT)),
        )

    # -- internals -----------------------------------------------------------------------------

    def _resolve(self, url: str) -> httpx.URL:
        target = httpx.URL(url)
        if target.is_relative_url and not url.startswith("//"):
            path, _, query = url.lstrip("/").partition("?")
            resolved = _urls.join(self._base, path) if path else self._base
            return resolved.copy_with(query=query.encode() or None)
        if target.is_relative_url:
            target = httpx.URL(f"{self._base.scheme}:{url}")
        self._check_origin(target)
        return target

    def _check_origin(self, url: httpx.URL) -> None:
        if not _urls.same_origin(url, self._base):
            foreign = _urls.origin_text(url)
            raise ForeignUrl(
                f"refused request to {foreign}: not the configured FHIR server "
                f"{_urls.origin_text(self._base)}",
                origin=foreign,
            )

    def _first_page(
        self,
        resource_type: str,
        params: SearchParams,
        count: int | None,
        use_post: bool,
    ) -> PageRequest:
        items = _param_items(params)
        if not any(name == "_count" for name, _ in items):
            items.append(("_count", str(count if count is not None else self._config.page_size)))
        type_url = _urls.join(self._base, _urls.check_resource_type(resource_type))
        if use_post:
            return PageRequest("POST", _urls.join(type_url, "_search"), tuple(items))
        return PageRequest("GET", type_url.copy_with(params=httpx.QueryParams(tuple(items))))

    async def _fetch_page(self, page: PageRequest) -> dict[str, Any]:
        if page.method == "POST":
            response = await self._send(
                "POST",
                page.url,
                content=urlencode(page.form or ()).encode(),
                headers={"Content-Type": FORM},
                idempotent=True,
            )
        else:
            response = await self._send("GET", page.url, idempotent=True)
        if not response.is_success:
            raise _responses.error_for(
                page.method, page.url, response.status_code, response.content
            )
        return parse_page(response.content, page.url, response.status_code)

    async def _post_bundle(self, bundle: Mapping[str, Any], *, idempotent: bool) -> dict[str, Any]:
        response = await self._send(
            "POST",
            self._base,
            content=orjson.dumps(bundle),
            headers={"Content-Type": FHIR_JSON},
            idempotent=idempotent,
        )
        result = self._json_body(response, "POST", self._base, what="Bundle response")
        if result.get("resourceType") != "Bundle":
            where = _urls.redact(self._base)
            # Redox answers 200 with an OperationOutcome when the EHR behind it failed: kept
            outcome = result if result.get("resourceType") == "OperationOutcome" else None
            raise MalformedResponse(
                f"POST {where} did not return a Bundle",
                status=response.status_code,
                url=where,
                operation_outcome=outcome,
            )
        return result

    def _json_body(
        self, response: httpx.Response, method: str, url: httpx.URL, *, what: str
    ) -> dict[str, Any]:
        if not response.is_success:
            raise _responses.error_for(method, url, response.status_code, response.content)
        return _responses.json_object(
            response.content,
            what=what,
            method=method,
            url=url,
            status=response.status_code,
            media_type=response.headers.get("content-type"),
        )

    async def _pace(self) -> None:
        """Keep to ``max_requests_per_second``: each request takes the next free time slot."""
        rate = self._config.max_requests_per_second
        if rate is None:
            return
        async with self._pace_lock:
            now = self._timing.monotonic()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / rate
        if slot > now:
            await self._timing.sleep(slot - now)

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool,
        stream: bool = False,
        auth: httpx.Auth | None = None,
        check_origin: bool = True,
        policy: RetryPolicy | None = None,
    ) -> httpx.Response:
        """Send with retries; returns the first answer that is not a retryable status.

        For :mod:`fhirtis.io._bulk_client`: ``stream`` returns the answer with its body unread (the
        caller closes it); ``auth`` replaces the client's auth for this request;
        ``check_origin=False`` allows another origin (only with an ``auth`` that sends no
        credentials); ``policy`` replaces the retry policy (e.g. a shorter budget).
        """
        if check_origin:
            self._check_origin(url)
        elif auth is None:
            raise ValueError("a request off the FHIR server's origin needs its own auth")
        send_auth = auth if auth is not None else self._auth
        retry_policy = policy if policy is not None else self._policy
        merged = {"Accept": FHIR_JSON, "User-Agent": self._config.user_agent, **(headers or {})}
        target = _urls.log_target(url)
        where = _urls.redact(url)
        timing = self._timing
        started = timing.monotonic()
        deadline = self._config.request_deadline_seconds
        attempt = 0
        reached = False  # an earlier try may have reached the server
        while True:
            attempt += 1
            request = self._http.build_request(
                method, url, content=content, headers=merged, timeout=self._config.timeout
            )
            retry_after: float | None = None
            handing = _Handing(send_auth, request)
            try:
                left = None if deadline is None else deadline - (timing.monotonic() - started)
                async with _within(left, request, handing):
                    await self._pace()
                    async with self._in_flight:
                        response = await self._http.send(
                            request, auth=handing, follow_redirects=False, stream=True
                        )
                        if not stream and response.status_code in RETRYABLE_STATUSES:
                            try:
                                await response.aread()  # a gateway's error page, for the retry
                            except httpx.DecodingError:
                                response._content = b""  # unreadable; its status is what counts
                                await response.aclose()
                        elif not stream:
                            cap = self._config.max_response_bytes
                            await aread_capped(response, cap, "max_response_bytes")
            except TokenEndpointUnavailable as exc:
                # the FHIR request was not sent: safe to retry whatever it is
                outcome = f"HTTP {exc.status} from the token endpoint"
                last_status = exc.status
                # the one rule of a throttled answer, a FHIR server's or the token endpoint's
                retry_after = (
                    retry_after_of(exc.headers, timing.time(), exc.status)
                    if exc.headers is not None
                    else parse_retry_after(exc.retry_after, timing.time())
                )
                log.info("%s %s: token endpoint answered %s", method, target, exc.status)
                cause: BaseException | None = exc
            except httpx.TransportError as exc:
                kind = type(exc).__name__
                if not is_retryable_transport_error(exc):
                    raise
                if not idempotent and may_have_reached_server(exc, request):
                    log.warning("%s %s: %s; outcome unknown, not re-sent", method, target, kind)
                    raise WriteOutcomeUnknown(
                        f"{method} {where} may have reached the server but no answer came back "
                        f"({kind}); it was not re-sent: re-read and plan again",
                        method=method,
                        url=where,
                    ) from exc
                log.info("%s %s: %s", method, target, kind)
                outcome, last_status, cause = transport_outcome(exc), None, exc
                reached = reached or may_have_reached_server(exc, request)
            else:
                status = response.status_code
                log.debug("%s %s -> %d", method, target, status)
                if status not in RETRYABLE_STATUSES:
                    if reached:
                        response.extensions[_RESENT] = True
                    return response
                reached = reached or status not in NOT_PROCESSED_STATUSES
                if stream:
                    await response.aclose()
                if not idempotent and status not in NOT_PROCESSED_STATUSES:
                    log.warning("%s %s -> %d; outcome unknown, not re-sent", method, target, status)
                    raise WriteOutcomeUnknown(
                        f"{method} {where} got HTTP {status} from a gateway; the server may have "
                        "processed it. It was not re-sent: re-read and plan again",
                        method=method,
                        url=where,
                    )
                outcome, last_status, cause = f"HTTP {status}", status, None
                retry_after = retry_after_of(response.headers, timing.time(), status)
            elapsed = timing.monotonic() - started
            delay = retry_policy.next_delay(attempt, elapsed, retry_after, timing.random)
            if delay is not None and deadline is not None and elapsed + delay >= deadline:
                delay = None  # no time left for another try
            if delay is None:
                raise TooManyRetries(
                    f"{method} {where} failed after {attempt} attempt(s); last: {outcome}",
                    url=where,
                    attempts=attempt,
                    last_status=last_status,
                ) from cause
            log.info(
                "%s %s: %s; retry %d/%d in %.2f s",
                method,
                target,
                outcome,
                attempt + 1,
                retry_policy.max_attempts,
                delay,
            )
            await timing.sleep(delay)


class _Handing(httpx.Auth):
    """``auth`` for one attempt of ``request``, noting when its flow hands ``request`` itself
    to the transport (``sent``): before that (its turn under ``max_requests_per_second``, a
    free slot of ``concurrency``, the access token's own requests) the server cannot have it."""

    def __init__(self, auth: httpx.Auth, request: httpx.Request) -> None:
        self.requires_request_body = auth.requires_request_body
        self.requires_response_body = auth.requires_response_body
        self._auth = auth
        self._request = request
        self.sent = False

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self._auth.async_auth_flow(request)
        try:
            out = await anext(flow)
            while True:
                self.sent = self.sent or out is self._request
                response = yield out
                out = await flow.asend(response)
        except StopAsyncIteration:
            return
        finally:
            await flow.aclose()


@asynccontextmanager
async def _within(
    seconds: float | None, request: httpx.Request, handing: _Handing
) -> AsyncIterator[None]:
    """An attempt of ``request`` limited to ``seconds`` (None: no limit) in all, however its
    answer comes (httpx's read timeout is per read: an answer trickling in never passes it).
    Past it, :class:`httpx.ReadTimeout`, as for any answer that did not come in time: the
    request may have reached the server; or, where ``request`` was never handed to the
    transport (``handing``), :class:`httpx.PoolTimeout`: it was not sent."""
    if seconds is None:
        yield
        return
    try:
        async with asyncio.timeout(max(seconds, 0.0)):
            yield
    except TimeoutError:
        if not handing.sent:
            raise httpx.PoolTimeout(
                "not sent within the request's deadline (request_deadline_seconds): waiting "
                "for its turn, a free connection slot or the access token",
                request=request,
            ) from None
        raise httpx.ReadTimeout(
            "no whole answer within the request's deadline (request_deadline_seconds)",
            request=request,
        ) from None


def _param_items(params: SearchParams) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        items: list[tuple[str, str]] = []
        for name, value in params.items():
            if isinstance(value, str | int):
                items.append((name, str(value)))
            else:
                items.extend((name, str(v)) for v in value)
        return items
    return [(name, str(value)) for name, value in params]
