"""Errors raised by the FHIR I/O layer.

Messages carry a method, a status, a URL (query values redacted, see ``_urls.redact``) and
resource ids only: never a token, never a request or response body. A server's
OperationOutcome is kept on :class:`FhirServerError` as data (``operation_outcome``) for the
caller to inspect, but it is never put into the message, because servers echo patient data
in ``diagnostics``.
"""

from __future__ import annotations

from typing import Any

import httpx

__all__ = [
    "BulkExportFailed",
    "BulkExportTimeout",
    "FhirClientError",
    "FhirServerError",
    "Forbidden",
    "ForeignNextLink",
    "ForeignUrl",
    "MalformedNdjson",
    "MalformedResponse",
    "NotFound",
    "PagingLoop",
    "PreconditionFailed",
    "TokenEndpointUnavailable",
    "TooManyRetries",
    "Unauthorized",
    "UnsupportedFhirVersion",
    "WriteOutcomeUnknown",
]


class FhirClientError(Exception):
    """Base class of every error raised by ``fhirtis.io``."""


class FhirServerError(FhirClientError):
    """A server answered with an error status or an unusable body.

    ``url`` is the redacted URL (query values replaced) of the request that failed.
    ``resent``: the request was sent again after an earlier try that may have reached the
    server (its answer lost, or a gateway's 502/504), so this answer may follow that try's
    effect (a DELETE answered 404 after its first try deleted the resource).
    """

    resent: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        url: str,
        operation_outcome: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.url = url
        self.operation_outcome = operation_outcome


class NotFound(FhirServerError):  # noqa: N818 - names fixed by the API
    """404 Not Found or 410 Gone."""


class PreconditionFailed(FhirServerError):  # noqa: N818 - names fixed by the API
    """412: a failed ``If-Match`` (version changed) or a conditional operation that matched
    several resources. Which one it was is in ``operation_outcome``, not guessed here."""


class Unauthorized(FhirServerError):  # noqa: N818 - names fixed by the API
    """401 from the FHIR server (after one token refresh), or the token endpoint refused us."""


class Forbidden(FhirServerError):  # noqa: N818 - names fixed by the API
    """403: authenticated but not allowed (e.g. a missing scope)."""


class MalformedResponse(FhirServerError):  # noqa: N818 - names fixed by the API
    """A 2xx answer whose body is not what was asked for (not JSON, not a Bundle, ...)."""


class TokenEndpointUnavailable(FhirServerError):  # noqa: N818 - names fixed by the API
    """The SMART discovery or token endpoint answered 429/502/503/504.

    The FHIR request itself was not sent, so the client may retry it whatever its method.
    ``retry_after`` is the raw ``Retry-After`` header, if any; ``headers`` all the answer's
    headers (the client reads the wait from them as from a FHIR answer's: a 429's
    ``RateLimit`` too), never its body.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None,
        url: str,
        retry_after: str | None = None,
        headers: httpx.Headers | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.retry_after = retry_after
        self.headers = headers


class TooManyRetries(FhirClientError):  # noqa: N818 - names fixed by the API
    """Transient failures went on past the attempt limit or the retry time budget."""

    def __init__(self, message: str, *, url: str, attempts: int, last_status: int | None) -> None:
        super().__init__(message)
        self.url = url
        self.attempts = attempts
        self.last_status = last_status

    @property
    def timed_out(self) -> bool:
        """Whether the last failure was a timeout (connect, read, write or pool), as the
        client raises this error ``from`` the last transport error; a refused or dropped
        connection, or an error status, is a failure of the server, not a timeout."""
        return self.last_status is None and isinstance(self.__cause__, httpx.TimeoutException)


class UnsupportedFhirVersion(FhirClientError):  # noqa: N818 - names fixed by the API
    """The server's CapabilityStatement (``GET [base]/metadata``) says it serves another FHIR
    release than R4 (``fhirVersion`` not 4.0.x nor R4B's 4.3.x; a DSTU2 ``Conformance``): its
    resources have another shape (DSTU2 ``MedicationAdministration.effectiveTimeDateTime``, R5
    ``occurence[x]``), so nothing is read from it nor written to it. ``version`` is the version
    it said; ``base_url`` the configured base; ``hint`` the R4 base URL where the base names a
    release (Epic's ``…/api/FHIR/DSTU2`` → ``…/api/FHIR/R4``), else None."""

    def __init__(self, message: str, *, version: str, base_url: str, hint: str | None) -> None:
        super().__init__(message)
        self.version = version
        self.base_url = base_url
        self.hint = hint


class ForeignUrl(FhirClientError):  # noqa: N818 - names fixed by the API
    """A URL outside the configured base's origin (scheme, host, port) was refused.

    Nothing was sent to it, so no credential can leak there.
    """

    def __init__(self, message: str, *, origin: str) -> None:
        super().__init__(message)
        self.origin = origin


class ForeignNextLink(ForeignUrl):
    """A search page's ``next`` link points outside the configured base's origin."""


class PagingLoop(FhirClientError):  # noqa: N818 - names fixed by the API
    """A search page's ``next`` link points to a page already fetched in this search."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


class WriteOutcomeUnknown(FhirClientError):  # noqa: N818 - names fixed by the API
    """A non-idempotent request (plain create, transaction) may have reached the server, but
    no answer came back (timeout, dropped connection, 502/504 from a gateway).

    It was not re-sent. Re-read the affected resources (by identifier) and plan again.
    """

    def __init__(self, message: str, *, method: str, url: str) -> None:
        super().__init__(message)
        self.method = method
        self.url = url


class BulkExportFailed(FhirServerError):  # noqa: N818 - names fixed by the API
    """A Bulk Data ``$export`` was refused at kick-off, or its status request reports that the
    export failed (4xx/5xx other than 401, 403, 404 and 410, which keep their own classes).

    The server's OperationOutcome, if any, is in ``operation_outcome`` (never in the message).
    """


class BulkExportTimeout(FhirClientError):  # noqa: N818 - names fixed by the API
    """Polling a Bulk Data export did not see it complete within the time budget.

    The export may still be running on the server: poll the status URL again later, or cancel
    it. ``url`` is the redacted status URL, ``elapsed`` the seconds spent polling, ``progress``
    the last ``X-Progress`` the server sent (kept as data only).
    """

    def __init__(
        self, message: str, *, url: str, elapsed: float, budget: float, progress: str | None
    ) -> None:
        super().__init__(message)
        self.url = url
        self.elapsed = elapsed
        self.budget = budget
        self.progress = progress


class MalformedNdjson(MalformedResponse):
    """A line of a Bulk Data NDJSON file is not a JSON resource of the file's type (or is too
    long). ``url`` is the redacted file URL, ``line`` the 1-based line number; the line's
    content is never put into the message or the exception."""

    def __init__(
        self, message: str, *, url: str, line: int, resource_type: str, status: int | None = None
    ) -> None:
        super().__init__(message, status=status, url=url)
        self.line = line
        self.resource_type = resource_type
