"""FHIR Bulk Data ``$export`` (Bulk Data Access IG v2): kick-off, status polling, cancel, and
NDJSON downloads streamed line by line.

A :class:`BulkExportClient` works through a :class:`~fhirtis.io.FhirClient`: the same
``httpx.AsyncClient``, configuration, auth, retry policy, origin checks and injectable time.
The decisions live in the pure module ``_bulk`` (the polling walk ``poll_status``, manifest
checks, line splitting and parsing); this module only drives them.

Credentials: kick-off, status and cancel requests go to the FHIR server's origin only, with the
client's auth. A file is fetched with the access token only when the manifest says
``requiresAccessToken: true``, and then only from the FHIR server's origin (a file elsewhere
raises :class:`~fhirtis.io.ForeignUrl` before any file is requested). Without
``requiresAccessToken`` files are fetched with no ``Authorization`` header at all.

Typical use::

    bulk = BulkExportClient(fhir)
    status_url = await bulk.kick_off("group", "g1", types=["Patient", "Observation"])
    manifest = await bulk.poll(status_url, on_progress=print)
    async for resource_type, resource in bulk.download(manifest):
        ...
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from fhirtis.io import _responses, _urls
from fhirtis.io._bulk_protocol import (
    DEFAULT_MAX_LINE_BYTES,
    FILE_HEADERS,
    KICKOFF_HEADERS,
    STATUS_HEADERS,
    UTF8_BOM,
    ExportLevel,
    Manifest,
    ManifestFile,
    NdjsonLines,
    PollSchedule,
    StatusAnswer,
    accept_kickoff,
    encode_query,
    file_name,
    file_target,
    format_since,
    kickoff_params,
    kickoff_url,
    parse_line,
    poll_status,
    poll_timeout,
    resolve_status_url,
)
from fhirtis.io._client import FhirClient
from fhirtis.io._errors import MalformedNdjson, MalformedResponse, TooManyRetries
from fhirtis.io._retry import is_retryable_transport_error

__all__ = ["BulkExportClient", "ExportLevel", "Manifest", "ManifestFile"]

log = logging.getLogger("fhirtis.io")

ProgressCallback = Callable[[str], object]
BadLineCallback = Callable[[MalformedNdjson], object]


class _NoCredentials(httpx.Auth):
    """No ``Authorization`` header, not even one set on a shared ``httpx.AsyncClient``."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.pop("Authorization", None)
        yield request


_NO_CREDENTIALS = _NoCredentials()
#: Redirects a file download follows (to a pre-signed URL, without credentials).
MAX_FILE_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclasses.dataclass(frozen=True)
class _FileDownload:
    file: ManifestFile
    url: httpx.URL
    with_token: bool


class BulkExportClient:
    """Bulk Data ``$export`` over a :class:`FhirClient` (which the caller keeps and closes).

    ``max_line_bytes`` bounds one NDJSON line (one resource) in memory.
    """

    def __init__(self, fhir: FhirClient, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be positive")
        self._fhir = fhir
        self._max_line_bytes = max_line_bytes

    @property
    def fhir(self) -> FhirClient:
        return self._fhir

    @staticmethod
    def since_value(since: datetime | str) -> str:
        """``since`` as :meth:`kick_off` sends it as ``_since`` (an aware datetime in UTC, a
        string as given); ValueError, saying why, for what is not a FHIR instant with a time
        zone (check a user's value, or a manifest's ``transactionTime``, before keeping it)."""
        return format_since(since)

    # -- kick-off, status, cancel ------------------------------------------------------------

    async def kick_off(
        self,
        level: ExportLevel,
        group_id: str | None = None,
        *,
        types: Sequence[str] | None = None,
        since: datetime | str | None = None,
        type_filters: Sequence[str] | None = None,
    ) -> str:
        """Start an export and return its status URL (the answer's ``Content-Location``).

        ``level``: ``"group"`` (``Group/[group_id]/$export``), ``"patient"``
        (``Patient/$export``) or ``"system"`` (``$export``). Sent as ``_type`` (comma-joined),
        ``_since`` (a FHIR instant; an aware datetime or a string such as a previous
        manifest's ``transaction_time``) and one ``_typeFilter`` per filter, with
        ``Accept: application/fhir+json`` and ``Prefer: respond-async``.

        Raises ValueError for bad arguments before sending; :class:`BulkExportFailed` (or
        Unauthorized, Forbidden, NotFound) when the server refuses, with its OperationOutcome
        as data; :class:`MalformedResponse` for an answer other than 202 + Content-Location;
        :class:`ForeignUrl` for a status URL off the FHIR server's origin.
        """
        fhir = self._fhir
        url = kickoff_url(fhir._base, level, group_id)
        params = kickoff_params(types, since, type_filters)
        if params:
            url = url.copy_with(query=encode_query(params))
        response = await fhir._send("GET", url, headers=KICKOFF_HEADERS, idempotent=True)
        status_url = accept_kickoff(
            response.status_code,
            response.headers,
            response.content,
            request_url=url,
            base=fhir._base,
            aliases=fhir.config.aliases,
        )
        log.info("bulk export started at %s", _urls.log_target(url))
        return str(status_url)

    async def poll(
        self,
        status_url: str,
        *,
        on_progress: ProgressCallback | None = None,
        budget: float | None = None,
    ) -> Manifest:
        """Poll the status URL until the export completes; return its manifest.

        Waits as the server's ``Retry-After`` says (seconds or HTTP-date), else
        ``config.bulk_poll_interval_seconds`` growing by half each time up to
        ``config.bulk_poll_max_interval_seconds``. Each ``X-Progress`` is passed to
        ``on_progress``. 429/502/503/504, network errors and 5xx answers whose
        OperationOutcome is transient are retried with the client's retry policy. Gives up
        with :class:`BulkExportTimeout` rather than wait past ``budget`` seconds (default
        ``config.bulk_budget_seconds``); the export is not cancelled then.

        Raises :class:`BulkExportFailed` when the server reports the export failed (the
        OperationOutcome is kept as data), NotFound after a cancel or expiry.
        """
        fhir = self._fhir
        url = self._status_url(status_url)
        config = fhir.config
        schedule = PollSchedule(
            interval=config.bulk_poll_interval_seconds,
            max_interval=config.bulk_poll_max_interval_seconds,
            budget=config.bulk_budget_seconds if budget is None else budget,
        )
        if schedule.budget <= 0:
            raise ValueError("the polling budget must be positive")
        timing = fhir._timing
        walk = poll_status(url, schedule, fhir._policy, timing.random)
        started = timing.monotonic()
        try:
            wait = next(walk)
            while True:
                if wait.progress is not None and on_progress is not None:
                    on_progress(wait.progress)
                if wait.seconds > 0:
                    log.debug("bulk export status: next poll in %.1f s", wait.seconds)
                    await timing.sleep(wait.seconds)
                response = await self._poll_once(url, schedule.budget, started)
                answer = StatusAnswer(
                    status=response.status_code,
                    headers=response.headers,
                    content=response.content,
                    elapsed=timing.monotonic() - started,
                    now=timing.time(),
                )
                try:
                    wait = walk.send(answer)
                except StopIteration as done:
                    manifest: Manifest = done.value
                    log.info(
                        "bulk export complete: %d output file(s), %d error file(s)",
                        len(manifest.output),
                        len(manifest.error),
                    )
                    return manifest
        finally:
            walk.close()

    async def _poll_once(self, url: httpx.URL, budget: float, started: float) -> httpx.Response:
        """One status request; its own retries (429, 5xx gateways, network) stay within what
        is left of the polling budget."""
        fhir = self._fhir
        elapsed = fhir._timing.monotonic() - started
        policy = dataclasses.replace(fhir._policy, budget=max(0.0, budget - elapsed))
        try:
            return await fhir._send(
                "GET", url, headers=STATUS_HEADERS, idempotent=True, policy=policy
            )
        except TooManyRetries as exc:
            if exc.attempts < policy.max_attempts:  # stopped by the budget, not the attempts
                spent = fhir._timing.monotonic() - started
                raise poll_timeout(_urls.redact(url), spent, budget, None) from exc
            raise

    async def cancel(self, status_url: str) -> None:
        """``DELETE`` the status URL: cancel a running export, or tell the server a finished
        one's files may be removed. Raises NotFound if the server no longer knows it."""
        fhir = self._fhir
        url = self._status_url(status_url)
        response = await fhir._send(
            "DELETE", url, headers={"Accept": "application/fhir+json"}, idempotent=True
        )
        if response.status_code >= 400:
            raise _responses.error_for("DELETE", url, response.status_code, response.content)
        log.info("bulk export cancelled at %s", _urls.log_target(url))

    def _status_url(self, status_url: str) -> httpx.URL:
        url = httpx.URL(status_url)
        if url.is_relative_url:
            raise ValueError("status_url must be the absolute URL that kick_off returned")
        return resolve_status_url(self._fhir._base, url, status_url, self._fhir.config.aliases)

    # -- downloads ---------------------------------------------------------------------------

    async def download(
        self,
        manifest: Manifest,
        files: Iterable[ManifestFile] | None = None,
        *,
        on_bad_line: BadLineCallback | None = None,
    ) -> AsyncGenerator[tuple[str, dict[str, Any]], None]:
        """Each resource of each file, as ``(resource type, resource)``, streamed line by line.

        ``files`` defaults to ``manifest.output``; pass ``manifest.error`` for the
        OperationOutcomes or ``manifest.deleted`` for the deletion Bundles. Every file URL is
        checked before the first request (see the module's note on credentials).

        A line that is not a JSON resource of the file's type raises :class:`MalformedNdjson`
        (file and line number, never the content) or, with ``on_bad_line``, is passed to it
        and skipped (a line longer than ``max_line_bytes`` always raises). A dropped
        connection is retried with the client's retry policy and the
        download resumes after the last line already delivered.
        """
        for item in self._plan(manifest, files):
            count = 0
            async for number, raw in self._lines(item):
                resource = self._parse(item, number, raw, on_bad_line)
                if resource is not None:
                    count += 1
                    yield item.file.type, resource
            _check_count(item, count)

    async def download_to(
        self,
        manifest: Manifest,
        directory: str | Path,
        files: Iterable[ManifestFile] | None = None,
        *,
        on_bad_line: BadLineCallback | None = None,
        resume: bool = True,
    ) -> list[Path]:
        """Stream each file to ``directory`` (created if needed); return the paths in order.

        Each line is checked as in :meth:`download` and written as one line (``\\n``-ended,
        blank and reported bad lines left out, and a byte order mark before the first). A file
        is written to ``*.part`` and renamed when complete, named
        ``[type].[index].[digest].ndjson`` (see ``_bulk.file_name``), so that with ``resume`` a
        repeated call for the same manifest keeps the files already complete and fetches only
        the rest.
        """
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        plan = self._plan(manifest, files)
        paths: list[Path] = []
        for index, item in enumerate(plan):
            final = folder / file_name(manifest, item.file, index)
            paths.append(final)
            if resume and final.exists():
                log.info("bulk file %s already downloaded", final.name)
                continue
            part = final.with_name(final.name + ".part")
            count = 0
            try:
                with part.open("wb") as out:
                    async for number, raw in self._lines(item):
                        if self._parse(item, number, raw, on_bad_line) is None:
                            continue
                        # written as read: without a byte order mark (readers refuse it)
                        out.write(raw.removeprefix(UTF8_BOM) if number == 1 else raw)
                        out.write(b"\n")
                        count += 1
                part.replace(final)
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            _check_count(item, count)
        return paths

    def _plan(
        self, manifest: Manifest, files: Iterable[ManifestFile] | None
    ) -> list[_FileDownload]:
        """Every file's URL and credentials, all checked before the first request."""
        chosen = manifest.output if files is None else tuple(files)
        base = self._fhir._base
        return [
            _FileDownload(
                file=file,
                url=file_target(manifest, file, base, self._fhir.config.aliases),
                with_token=manifest.requires_access_token,
            )
            for file in chosen
        ]

    async def _lines(self, item: _FileDownload) -> AsyncGenerator[tuple[int, bytes], None]:
        """The file's lines as ``(number, bytes)``; after a dropped connection the file is
        requested again and the lines already delivered are skipped."""
        fhir = self._fhir
        timing = fhir._timing
        policy = fhir._policy
        target = _urls.log_target(item.url)
        delivered = 0
        failures = 0
        started = timing.monotonic()
        while True:
            delay = 0.0
            response = await self._open(item)
            try:
                if not response.is_success:
                    try:
                        content = await response.aread()
                    except httpx.DecodingError:
                        content = b""  # an error page labelled gzip that is not: the status counts
                    raise _responses.error_for("GET", item.url, response.status_code, content)
                lines = NdjsonLines(
                    url=item.url, resource_type=item.file.type, max_line_bytes=self._max_line_bytes
                )
                try:
                    async for chunk in response.aiter_bytes():
                        for number, raw in lines.feed(chunk):
                            if number > delivered:
                                delivered = number
                                yield number, raw
                except httpx.DecodingError:
                    # labelled Content-Encoding: gzip (an object stored uncompressed under gzip
                    # metadata, a proxy that unpacked it), but not: a malformed answer, not a
                    # raw httpx error (only FhirClientErrors leave fhirtis.io)
                    where = _urls.redact(item.url)
                    raise MalformedResponse(
                        f"GET {where}: the file's Content-Encoding could not be decoded "
                        f"(after line {delivered})",
                        status=response.status_code,
                        url=where,
                    ) from None
                except httpx.TransportError as exc:
                    if not is_retryable_transport_error(exc):
                        raise
                    failures += 1
                    next_delay = policy.next_delay(
                        failures, timing.monotonic() - started, None, timing.random
                    )
                    if next_delay is None:
                        where = _urls.redact(item.url)
                        raise TooManyRetries(
                            f"GET {where} broke off {failures} time(s); last: {type(exc).__name__}",
                            url=where,
                            attempts=failures,
                            last_status=None,
                        ) from exc
                    delay = next_delay
                    log.info(
                        "GET %s: %s after line %d; again in %.2f s",
                        target,
                        type(exc).__name__,
                        delivered,
                        delay,
                    )
                else:
                    for number, raw in lines.end():
                        if number > delivered:
                            delivered = number
                            yield number, raw
                    return
            finally:
                await response.aclose()
            await timing.sleep(delay)

    async def _open(self, item: _FileDownload) -> httpx.Response:
        """GET the file (streamed), following redirects to a pre-signed URL without
        credentials: Oracle Health answers a file URL with ``307`` and an object-store
        ``Location`` that must not get the Authorization header. At most
        ``MAX_FILE_REDIRECTS``; never from https to http."""
        fhir = self._fhir
        url, with_token = item.url, item.with_token
        for _ in range(MAX_FILE_REDIRECTS + 1):
            # with the token: the client's auth, on its origin; else no credential, any host
            response = await fhir._send(
                "GET",
                url,
                headers=FILE_HEADERS,
                idempotent=True,
                stream=True,
                auth=None if with_token else _NO_CREDENTIALS,
                check_origin=with_token,
            )
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECTS or not location:
                return response
            await response.aclose()
            where = _urls.redact(item.url)
            target = _urls.absolute_http(location.strip(), url)
            if target is None:
                raise MalformedResponse(
                    f"GET {where}: the redirect is not to an http(s) URL",
                    status=response.status_code,
                    url=where,
                )
            if url.scheme == "https" and target.scheme != "https":
                raise MalformedResponse(
                    f"GET {where}: refused a redirect from https to http",
                    status=response.status_code,
                    url=where,
                )
            log.debug("GET %s: redirected to %s", _urls.log_target(url), _urls.origin_text(target))
            url, with_token = target, False
        raise MalformedResponse(
            f"GET {_urls.redact(item.url)}: more than {MAX_FILE_REDIRECTS} redirects",
            status=None,
            url=_urls.redact(item.url),
        )

    def _parse(
        self,
        item: _FileDownload,
        number: int,
        raw: bytes,
        on_bad_line: BadLineCallback | None,
    ) -> dict[str, Any] | None:
        try:
            return parse_line(raw, line=number, url=item.url, resource_type=item.file.type)
        except MalformedNdjson as exc:
            if on_bad_line is None:
                raise
            log.warning("%s", exc)
            on_bad_line(exc)
            return None


def _check_count(item: _FileDownload, count: int) -> None:
    if item.file.count is not None and item.file.count != count:
        log.warning(
            "bulk file %s: the manifest announced %d resource(s), %d read",
            _urls.log_target(item.url),
            item.file.count,
            count,
        )
