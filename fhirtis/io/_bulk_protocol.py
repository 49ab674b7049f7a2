"""Bulk Data ``$export`` decisions (pure): kick-off requests, the status polling walk, the
completion manifest, NDJSON line splitting and parsing.

Nothing here sleeps or sends. ``poll_status`` is a generator in the style of
``_paging.walk_pages``: it yields how long to wait before the next status request and receives
each answer, so the polling rules (``Retry-After``, growing intervals, transient failures,
the time budget) are written once and tested without a server. ``bulk.BulkExportClient``
drives it.

Follows the FHIR Bulk Data Access IG v2 (``export.html``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import quote

import httpx
import orjson

from fhirtis.io import _responses, _urls
from fhirtis.io._errors import (
    BulkExportFailed,
    BulkExportTimeout,
    ForeignUrl,
    MalformedNdjson,
    MalformedResponse,
    TooManyRetries,
)
from fhirtis.io._retry import RETRYABLE_STATUSES, RetryPolicy, retry_after_of

ExportLevel = Literal["group", "patient", "system"]

FHIR_JSON = "application/fhir+json"
FHIR_NDJSON = "application/fhir+ndjson"
#: Kick-off headers required by the IG.
KICKOFF_HEADERS = {"Accept": FHIR_JSON, "Prefer": "respond-async"}
#: The IG says status requests SHOULD accept ``application/json`` (the manifest).
STATUS_HEADERS = {"Accept": "application/json"}
FILE_HEADERS = {"Accept": FHIR_NDJSON}

#: Growth of the wait between status polls when the server gives no ``Retry-After``.
POLL_BACKOFF_FACTOR = 1.5
#: A server's ``Retry-After`` below this is raised to it, so ``Retry-After: 0`` cannot make
#: the client poll in a tight loop.
MIN_POLL_SECONDS = 1.0
#: NDJSON lines longer than this are refused (a file without newlines must not fill memory).
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
#: A UTF-8 byte order mark, read (and left out) before the first line of a file.
UTF8_BOM = b"\xef\xbb\xbf"

#: IssueType codes under ``transient``: "retry later", not "the export failed".
TRANSIENT_ISSUE_CODES = frozenset(
    {"transient", "lock-error", "no-store", "exception", "timeout", "incomplete", "throttled"}
)

_INSTANT = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})", re.ASCII
)
_TYPE_FILTER = re.compile(r"([A-Z][A-Za-z]{1,63})\?(.+)", re.DOTALL)


# -- kick-off --------------------------------------------------------------------------------


def kickoff_url(base: httpx.URL, level: ExportLevel, group_id: str | None) -> httpx.URL:
    """``[base]/Group/[id]/$export``, ``[base]/Patient/$export`` or ``[base]/$export``."""
    if level == "group":
        if group_id is None:
            raise ValueError("a group-level export needs group_id")
        return _urls.join(base, "Group", _urls.check_resource_id(group_id), "$export")
    if group_id is not None:
        raise ValueError("group_id is only for a group-level export")
    if level == "patient":
        return _urls.join(base, "Patient", "$export")
    if level == "system":
        return _urls.join(base, "$export")
    raise ValueError(f"unknown export level {level!r}: use 'group', 'patient' or 'system'")


def kickoff_params(
    types: Sequence[str] | None,
    since: datetime | str | None,
    type_filters: Sequence[str] | None,
) -> list[tuple[str, str]]:
    """The kick-off query parameters, named as in the IG.

    - ``_type``: one comma-delimited value (every server version accepts that form);
    - ``_since``: a FHIR instant; an aware ``datetime`` is sent in UTC (``...Z``), a string is
      checked and sent as is (e.g. the ``transactionTime`` of the previous export);
    - ``_typeFilter``: repeated, one query per parameter (IG v2), so that commas inside a
      query (``code=a,b``) stay unambiguous; each value is percent-encoded on the wire.
    """
    params: list[tuple[str, str]] = []
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not names:
            raise ValueError("types is empty: pass None to export every type")
        checked = [_urls.check_resource_type(name) for name in names]
        params.append(("_type", ",".join(dict.fromkeys(checked))))
    if since is not None:
        params.append(("_since", format_since(since)))
    if type_filters is not None:
        filters = [type_filters] if isinstance(type_filters, str) else list(type_filters)
        for query in filters:
            params.append(("_typeFilter", check_type_filter(query)))
    return params


def encode_query(params: Sequence[tuple[str, str]]) -> bytes:
    """The query string as in the IG's examples: ``_type=Patient,Observation`` with literal
    commas (resource type names need no escaping), ``_since`` with literal colons, and each
    ``_typeFilter`` query fully percent-encoded (``MedicationRequest%3Fstatus%3Dactive``)."""
    safe = {"_type": ",", "_since": ":"}
    return "&".join(
        f"{quote(name, safe='')}={quote(value, safe=safe.get(name, ''))}" for name, value in params
    ).encode("ascii")


def format_since(since: datetime | str) -> str:
    if isinstance(since, datetime):
        if since.tzinfo is None or since.utcoffset() is None:
            raise ValueError("_since needs a timezone-aware datetime (a FHIR instant)")
        return since.astimezone(UTC).isoformat().replace("+00:00", "Z")
    text = since.strip()
    if not _INSTANT.fullmatch(text):
        raise ValueError(f"_since must be a FHIR instant like 2024-01-31T12:00:00Z, not {since!r}")
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"_since is not a valid date and time: {since!r}") from None
    return text


def check_type_filter(query: str) -> str:
    """A ``_typeFilter`` entry: ``[ResourceType]?[search parameters]``."""
    match = _TYPE_FILTER.fullmatch(query.strip())
    if match is None:
        raise ValueError(
            "a _typeFilter entry must look like 'MedicationRequest?status=active' "
            "(a resource type, '?', search parameters)"
        )
    return match.group(0)


def accept_kickoff(
    status: int,
    headers: httpx.Headers,
    content: bytes,
    *,
    request_url: httpx.URL,
    base: httpx.URL,
    aliases: Sequence[httpx.URL] = (),
) -> httpx.URL:
    """The status (polling) URL from a kick-off answer, or the error it stands for."""
    where = _urls.redact(request_url)
    if status >= 400:
        raise _responses.error_for(
            "GET",
            request_url,
            status,
            content,
            default=BulkExportFailed,
            prefix="bulk export kick-off refused: ",
        )
    if status != 202:
        raise MalformedResponse(
            f"bulk export kick-off GET {where} answered HTTP {status}, not 202 Accepted",
            status=status,
            url=where,
        )
    location = headers.get("Content-Location")
    if not location or not location.strip():
        raise MalformedResponse(
            f"bulk export kick-off GET {where} answered 202 without a Content-Location",
            status=status,
            url=where,
        )
    return resolve_status_url(base, request_url, location.strip(), aliases)


def resolve_status_url(
    base: httpx.URL, request_url: httpx.URL, location: str, aliases: Sequence[httpx.URL] = ()
) -> httpx.URL:
    """Resolve a status URL (RFC 3986, against ``request_url``) and keep it on the FHIR
    server's origin: status requests carry the access token. A URL on one of ``aliases`` (other
    origins of the same server) is moved onto the base's origin."""
    try:
        url = _urls.onto_base(request_url.join(location), base, aliases)
    except httpx.InvalidURL:
        where = _urls.redact(request_url)
        raise MalformedResponse(
            f"bulk export GET {where} gave an invalid status URL", status=None, url=where
        ) from None
    if not _urls.same_origin(url, base):
        foreign = _urls.origin_text(url)
        raise ForeignUrl(
            f"refused bulk export status URL on {foreign}: not the configured FHIR server "
            f"{_urls.origin_text(base)}; no request was sent to it",
            origin=foreign,
        )
    return url


# -- polling ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PollSchedule:
    """When to poll: ``interval`` first (growing by ``factor`` up to ``max_interval``) while
    the server gives no ``Retry-After``; never longer in total than ``budget`` seconds."""

    interval: float
    max_interval: float
    budget: float
    factor: float = POLL_BACKOFF_FACTOR
    min_interval: float = MIN_POLL_SECONDS

    def default_wait(self, waits_so_far: int) -> float:
        return min(self.max_interval, self.interval * self.factor**waits_so_far)


@dataclass(frozen=True)
class StatusAnswer:
    """A status request's answer, with ``elapsed`` seconds since polling began and ``now``
    as Unix time (for an HTTP-date ``Retry-After``)."""

    status: int
    headers: httpx.Headers
    content: bytes
    elapsed: float
    now: float


@dataclass(frozen=True)
class PollWait:
    """Wait ``seconds``, then send the next status request. ``progress`` is the answer's
    ``X-Progress`` (202 only)."""

    seconds: float
    progress: str | None = None


def poll_status(
    status_url: httpx.URL,
    schedule: PollSchedule,
    retry: RetryPolicy,
    rand: Callable[[], float],
) -> Generator[PollWait, StatusAnswer, Manifest]:
    """Yield the wait before each status request (0 for the first) and receive its answer;
    return the manifest once the server answers 200.

    - 202: in progress. Wait ``Retry-After`` (seconds or HTTP-date; at least
      ``schedule.min_interval``) or, without one, ``schedule.interval`` growing by
      ``schedule.factor`` up to ``schedule.max_interval``.
    - 429, 502, 503, 504, and 5xx whose OperationOutcome has only transient issue codes: a
      passing failure. Back off with ``retry`` (exponential with full jitter, ``Retry-After``,
      Azure's ``x-ms-retry-after-ms`` or a 429's ``RateLimit`` reset honoured,
      ``retry.max_attempts`` in a row, then
      :class:`TooManyRetries`).
    - any other 4xx/5xx: the export failed (:class:`BulkExportFailed`, or NotFound for a 404
      after a cancel or expiry, Unauthorized, Forbidden).
    - a wait that would end past ``schedule.budget`` raises :class:`BulkExportTimeout` at once
      instead of sleeping.
    """
    where = _urls.redact(status_url)
    policy = dataclasses.replace(retry, budget=schedule.budget)
    default_waits = 0
    failures = 0
    progress: str | None = None
    wait = PollWait(0.0)
    while True:
        answer = yield wait
        status = answer.status
        if status == 200:
            return parse_manifest(answer.content, status_url, status)
        retry_after = retry_after_of(answer.headers, answer.now, status)
        if status == 202:
            failures = 0
            progress = _progress(answer.headers)
            if retry_after is None:
                delay = schedule.default_wait(default_waits)
                default_waits += 1
            else:
                delay = max(schedule.min_interval, retry_after)
            wait = PollWait(delay, progress)
        elif status in RETRYABLE_STATUSES or (
            status >= 500 and is_transient_outcome(_responses.operation_outcome(answer.content))
        ):
            failures += 1
            delay_or_none = policy.next_delay(failures, answer.elapsed, retry_after, rand)
            if delay_or_none is None:
                if failures >= policy.max_attempts:
                    raise TooManyRetries(
                        f"bulk export status GET {where} failed {failures} time(s) in a row; "
                        f"last: HTTP {status}",
                        url=where,
                        attempts=failures,
                        last_status=status,
                    )
                raise poll_timeout(where, answer.elapsed, schedule.budget, progress)
            wait = PollWait(delay_or_none)
        elif status >= 400:
            raise _responses.error_for(
                "GET",
                status_url,
                status,
                answer.content,
                default=BulkExportFailed,
                prefix="bulk export failed: ",
            )
        else:
            raise MalformedResponse(
                f"bulk export status GET {where} answered HTTP {status}, not 200 or 202",
                status=status,
                url=where,
            )
        if answer.elapsed + wait.seconds > schedule.budget:
            raise poll_timeout(where, answer.elapsed, schedule.budget, progress)


def poll_timeout(
    where: str, elapsed: float, budget: float, progress: str | None
) -> BulkExportTimeout:
    return BulkExportTimeout(
        f"bulk export {where} not complete after {elapsed:.0f} s (budget {budget:.0f} s); "
        "it may still be running: poll it again later or cancel it",
        url=where,
        elapsed=elapsed,
        budget=budget,
        progress=progress,
    )


def _progress(headers: httpx.Headers) -> str | None:
    value = headers.get("X-Progress")
    if value is None:
        return None
    text = value.strip()
    return text or None


def is_transient_outcome(outcome: Mapping[str, Any] | None) -> bool:
    """Does this OperationOutcome say "try again later"? (Every error or fatal issue has a
    code from the IssueType ``transient`` family, and there is at least one.)"""
    if outcome is None:
        return False
    issues = outcome.get("issue")
    if not isinstance(issues, list):
        return False
    codes = [
        issue.get("code")
        for issue in issues
        if isinstance(issue, Mapping) and issue.get("severity") in {"error", "fatal"}
    ]
    return bool(codes) and all(code in TRANSIENT_ISSUE_CODES for code in codes)


# -- the completion manifest -----------------------------------------------------------------


@dataclass(frozen=True)
class ManifestFile:
    """One file of a manifest: its resource type, absolute URL, and resource count if given."""

    type: str
    url: str
    count: int | None = None


@dataclass(frozen=True)
class Manifest:
    """A completed export (the status request's 200 body).

    ``transaction_time`` is the server's FHIR instant, kept as sent, so that it can be passed
    back unchanged as the next export's ``_since``. ``output`` holds the resource files,
    ``error`` files of OperationOutcomes, ``deleted`` (after a ``_since`` export) files of
    transaction Bundles with DELETE entries.
    """

    transaction_time: str
    requires_access_token: bool
    output: tuple[ManifestFile, ...]
    error: tuple[ManifestFile, ...] = ()
    deleted: tuple[ManifestFile, ...] = ()
    request: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, source: str = "manifest") -> Manifest:
        """Check and read a manifest; raises :class:`MalformedResponse` naming ``source``."""

        def bad(what: str) -> MalformedResponse:
            return MalformedResponse(f"bulk export {source}: {what}", status=None, url=source)

        transaction_time = data.get("transactionTime")
        if not isinstance(transaction_time, str) or not transaction_time.strip():
            raise bad("no transactionTime")
        requires = data.get("requiresAccessToken")
        if requires is None:
            # HAPI FHIR left it out until 2022 (hapi-fhir#4051; its files are Binary reads that
            # need the token): true is the safe reading, the token goes to the FHIR server's
            # origin only and a file elsewhere is refused before any request
            requires = True
        elif isinstance(requires, str) and requires.strip().lower() in {"true", "false"}:
            # Oracle Health Soarian Clinicals sends the JSON string "true" (its documented
            # manifest): read as the boolean it spells
            requires = requires.strip().lower() == "true"
        if not isinstance(requires, bool):
            raise bad("requiresAccessToken is not a boolean")
        request = data.get("request")
        if request is not None and not isinstance(request, str):
            raise bad("request is not a string")
        # a missing output: an export of nothing (IBM FHIR, LinuxForHealth/FHIR#2676; HAPI
        # 6.10.3, hapi-fhir#5632), the IG's empty array; one that is not a list is refused below
        files: dict[str, tuple[ManifestFile, ...]] = {}
        for key in ("output", "error", "deleted"):
            items = data.get(key)
            if items is None:
                files[key] = ()
                continue
            if not isinstance(items, list):
                raise bad(f"{key} is not a list")
            files[key] = tuple(
                _manifest_file(item, key, index, bad) for index, item in enumerate(items)
            )
        return cls(
            transaction_time=transaction_time.strip(),
            requires_access_token=requires,
            output=files["output"],
            error=files["error"],
            deleted=files["deleted"],
            request=request,
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest as the IG writes it (e.g. to keep it for a later download)."""

        def items(files: tuple[ManifestFile, ...]) -> list[dict[str, Any]]:
            return [
                {
                    "type": f.type,
                    "url": f.url,
                    **({"count": f.count} if f.count is not None else {}),
                }
                for f in files
            ]

        data: dict[str, Any] = {
            "transactionTime": self.transaction_time,
            "requiresAccessToken": self.requires_access_token,
            "output": items(self.output),
            "error": items(self.error),
        }
        if self.request is not None:
            data["request"] = self.request
        if self.deleted:
            data["deleted"] = items(self.deleted)
        return data


def _manifest_file(
    item: Any, key: str, index: int, bad: Callable[[str], MalformedResponse]
) -> ManifestFile:
    if not isinstance(item, Mapping):
        raise bad(f"{key}[{index}] is not an object")
    resource_type = item.get("type")
    if not isinstance(resource_type, str):
        raise bad(f"{key}[{index}] has no type")
    try:
        _urls.check_resource_type(resource_type)
    except ValueError:
        raise bad(f"{key}[{index}] has an invalid resource type") from None
    url = item.get("url")
    if not isinstance(url, str):
        raise bad(f"{key}[{index}] has no url")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise bad(f"{key}[{index}] has an invalid url") from None
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise bad(f"{key}[{index}] url is not an absolute http(s) URL")
    count = item.get("count")
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 0):
        raise bad(f"{key}[{index}] count is not a non-negative integer")
    return ManifestFile(type=resource_type, url=url, count=count)


def parse_manifest(content: bytes, url: httpx.URL, status: int) -> Manifest:
    data = _responses.json_object(
        content, what="bulk export manifest", method="GET", url=url, status=status
    )
    try:
        return Manifest.from_json(data, source=f"manifest from {_urls.redact(url)}")
    except MalformedResponse as exc:
        raise MalformedResponse(str(exc), status=status, url=_urls.redact(url)) from None


# -- output files ----------------------------------------------------------------------------


def file_target(
    manifest: Manifest, file: ManifestFile, base: httpx.URL, aliases: Sequence[httpx.URL] = ()
) -> httpx.URL:
    """The URL to download ``file`` from, checked before anything is sent.

    With ``requiresAccessToken`` the token goes with the request, so the file must be on the
    FHIR server's origin (one of ``aliases`` is moved onto it; :class:`ForeignUrl` otherwise).
    Without it, no credential is sent and any http(s) host is allowed (e.g. a signed
    object-store URL).
    """
    url = httpx.URL(file.url)
    if url.scheme not in {"http", "https"} or not url.host:
        raise ValueError("a bulk export file URL must be an absolute http(s) URL")
    if manifest.requires_access_token:
        url = _urls.onto_base(url, base, aliases)
        if not _urls.same_origin(url, base):
            foreign = _urls.origin_text(url)
            raise ForeignUrl(
                f"refused to send the access token to {foreign} for a bulk export file: not "
                f"the configured FHIR server {_urls.origin_text(base)}; no request was sent (if "
                "it is another origin of the same server, name it in "
                "FHIRTIS_FHIR__EQUIVALENT_ORIGINS)",
                origin=foreign,
            )
    return url


def file_name(manifest: Manifest, file: ManifestFile, index: int) -> str:
    """``[type].[index].[digest].ndjson``: the digest (of the export's transaction time and the
    file URL) tells files of one export from another's, so a resumed download can keep the
    files already complete. The type was checked to be a resource type (no path tricks)."""
    digest = hashlib.sha256(f"{manifest.transaction_time}\n{file.url}".encode()).hexdigest()
    return f"{_urls.check_resource_type(file.type)}.{index:04d}.{digest[:12]}.ndjson"


class NdjsonLines:
    """Split a byte stream into lines (pure), whatever the chunk boundaries.

    Splits on ``\\n`` only (a raw U+2028 inside a JSON string is not a line end, unlike
    ``str.splitlines``), drops a trailing ``\\r``; bytes are never decoded here. Line numbers
    start at 1 and count every line, blank ones included. A line longer than
    ``max_line_bytes`` raises :class:`MalformedNdjson`.
    """

    def __init__(self, *, url: httpx.URL, resource_type: str, max_line_bytes: int) -> None:
        self._where = _urls.redact(url)
        self._type = resource_type
        self._max = max_line_bytes
        self._buffer = bytearray()
        self._line = 1

    def feed(self, chunk: bytes) -> list[tuple[int, bytes]]:
        lines: list[tuple[int, bytes]] = []
        view = memoryview(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._buffer += view[start:end]
            lines.append(self._take())
            start = end + 1
        self._buffer += view[start:]
        self._check_length()
        return lines

    def end(self) -> list[tuple[int, bytes]]:
        """The last line if the stream did not end with a newline."""
        if not self._buffer:
            return []
        return [self._take()]

    def _take(self) -> tuple[int, bytes]:
        self._check_length()
        line = bytes(self._buffer)
        self._buffer.clear()
        number = self._line
        self._line += 1
        if line.endswith(b"\r"):
            line = line[:-1]
        return number, line

    def _check_length(self) -> None:
        if len(self._buffer) > self._max:
            raise MalformedNdjson(
                f"NDJSON file {self._where} ({self._type}) line {self._line} is longer than "
                f"{self._max} bytes",
                url=self._where,
                line=self._line,
                resource_type=self._type,
            )


def parse_line(
    raw: bytes, *, line: int, url: httpx.URL, resource_type: str
) -> dict[str, Any] | None:
    """One NDJSON line as a resource of ``resource_type``; None for a blank line.

    Raises :class:`MalformedNdjson` with the file and line number, never the line's content.
    """
    if line == 1:
        raw = raw.removeprefix(UTF8_BOM)
    if not raw.strip():
        return None
    where = _urls.redact(url)

    def bad(what: str) -> MalformedNdjson:
        return MalformedNdjson(
            f"NDJSON file {where} ({resource_type}) line {line}: {what}",
            url=where,
            line=line,
            resource_type=resource_type,
        )

    valid = True
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        valid = False  # the decode error holds the line (.doc): raise outside, unchained
    if not valid:
        raise bad("not valid JSON")
    if not isinstance(data, dict):
        raise bad("not a JSON object")
    if data.get("resourceType") != resource_type:
        raise bad(f"not a {resource_type} resource")
    return data
