"""Evaluate a patient on a FHIR server and write the derived resources back, idempotently.

pull (one batch of searches, every ``next`` link followed) → evaluate (pure) → look up what
exists by business identifier (one batch) → plan (creates, changed updates, nothing else) →
one ``transaction`` with one Provenance. Re-running converges: a 412 on ``If-Match`` (someone
changed a resource meanwhile) or a write whose outcome is unknown (the connection dropped after
sending) re-reads what exists and re-plans, a bounded number of times. Conditional creates make
a repeated create harmless, so no failure leaves a duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from fhirtis.fhir.bundle import PatientResources
from fhirtis.fhir.derive import Derived
from fhirtis.fhir.extract import patient_refs
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.plan import Action, WritePlan
from fhirtis.fhir.queries import existing_entries, identifier_of, patient_read_entries
from fhirtis.io import (
    FhirClient,
    FhirClientError,
    FhirServerError,
    Forbidden,
    NotFound,
    PreconditionFailed,
    TooManyRetries,
    Unauthorized,
    WriteOutcomeUnknown,
)
from fhirtis.pipeline.offline import (
    Options,
    PatientResult,
    evaluate_patient_resources,
    extractor_for,
)
from fhirtis.settings import Settings

Json = dict[str, Any]
log = logging.getLogger("fhirtis.pipeline.server")

MAX_REPLANS = 3


class RunStatus(StrEnum):
    DRY_RUN = "dry-run"  # planned, nothing sent
    WRITTEN = "written"
    UNCHANGED = "unchanged"  # nothing to write: the server already holds these results
    NOT_FOUND = "not-found"
    FAILED = "failed"  # the patient is incomplete: see error


@dataclass
class PatientRun:
    patient_id: str
    status: RunStatus
    result: PatientResult | None = None
    plan: WritePlan | None = None
    error: str | None = None
    requests: dict[str, int] = field(default_factory=dict)
    error_status: int | None = None  # the HTTP status that best describes the failure

    @property
    def planned(self) -> list[tuple[str, str, Action]]:
        if self.plan is None:
            return []
        return [(w.derived.resource_type, w.derived.identifier, w.action) for w in self.plan.writes]


class PullError(FhirClientError):
    """A read the evaluation needs failed; the patient is not evaluated."""


def describe(exc: FhirClientError) -> str:
    """The error, with the server's OperationOutcome issue codes and locations (not its
    diagnostics, which may echo patient data)."""
    text = str(exc)
    outcome = getattr(exc, "operation_outcome", None)
    if isinstance(outcome, dict):
        parts = []
        for issue in outcome.get("issue", [])[:5]:
            if isinstance(issue, dict):
                where = ",".join(str(e) for e in issue.get("expression", []) or [])
                parts.append(f"{issue.get('code', '?')}" + (f" at {where}" if where else ""))
        if parts:
            text += f" ({'; '.join(parts)})"
    return text


def status_for(exc: FhirClientError) -> int:
    """The HTTP status a caller of fhirtis should see for a failure of the FHIR server."""
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, Forbidden):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, WriteOutcomeUnknown):
        return 504
    if isinstance(exc, TooManyRetries):
        return 504 if exc.last_status is None else 502
    return 502


def _entry_ok(entry: Mapping[str, Any]) -> bool:
    response = entry.get("response")
    status = str(response.get("status", "")) if isinstance(response, dict) else ""
    return status[:1] == "2"


def _entries(bundle: Json) -> list[Json]:
    entries = bundle.get("entry")
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


async def _gather(client: FhirClient, batch: Json, entries: Sequence[Json]) -> list[Json]:
    """Every resource of a batch-response of searches and reads, all pages followed."""
    out: list[Json] = []
    responses = batch.get("entry") or []
    if (
        batch.get("resourceType") != "Bundle"
        or not isinstance(responses, list)
        or len(responses) != len(entries)
        or not all(isinstance(e, dict) for e in responses)
    ):
        raise PullError("the server's batch response does not answer every request")
    for sent, entry in zip(entries, responses, strict=True):
        url = sent["request"]["url"].split("?")[0]
        if not _entry_ok(entry):
            response = entry.get("response")
            status = response.get("status", "?") if isinstance(response, dict) else "?"
            raise PullError(f"batch entry {url} failed with status {status}")
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise PullError(f"batch entry {url} has no resource")
        if resource.get("resourceType") != "Bundle":
            out.append(resource)
            continue
        out.extend(e["resource"] for e in _entries(resource) if isinstance(e.get("resource"), dict))
        async for page in client.following_pages(resource):
            out.extend(e["resource"] for e in _entries(page) if isinstance(e.get("resource"), dict))
    return out


async def pull_patient(
    client: FhirClient, patient_id: str, settings: Settings, requests: dict[str, int]
) -> PatientResources:
    """Read everything of one patient the computation needs."""
    extractor = extractor_for(settings)
    entries = patient_read_entries(patient_id, extractor.t, client.config.page_size)
    batch = await client.batch(entries)
    requests["read"] = requests.get("read", 0) + 1
    first = (_entries(batch) or [{}])[0]
    response = first.get("response")
    if isinstance(response, dict) and str(response.get("status", "")).startswith("404"):
        raise NotFound(f"Patient/{patient_id} not found", status=404, url=f"Patient/{patient_id}")
    resources = await _gather(client, batch, entries)
    unique: dict[str, Json] = {}
    for r in resources:
        unique.setdefault(f"{r.get('resourceType')}/{r.get('id')}", r)
    listed = [(key, r) for key, r in unique.items()]
    patient_ref = f"Patient/{patient_id}"
    others = patient_refs(r for _, r in listed) - {patient_ref}
    issues = (
        [Issue("warning", "business-rule", f"{len(others)} other patients referenced; ignored")]
        if others
        else []
    )
    return PatientResources(patient_ref, listed, dict(unique), issues)


async def existing_derived(
    client: FhirClient, derived: Sequence[Derived], requests: dict[str, int]
) -> dict[str, Json]:
    """fhirtis's earlier output on the server, by business identifier."""
    entries = existing_entries(derived, client.config.page_size)
    if not entries:
        return {}
    batch = await client.batch(entries)
    requests["read"] = requests.get("read", 0) + 1
    out: dict[str, Json] = {}
    for r in await _gather(client, batch, entries):
        ident = identifier_of(r)
        if ident is not None:
            if ident in out:
                log.warning(
                    "two stored resources share a derived identifier (%s)", r.get("resourceType")
                )
            out.setdefault(ident, r)
    return out


async def run_patient(
    client: FhirClient,
    patient_id: str,
    settings: Settings,
    options: Options | None = None,
    *,
    write: bool = False,
) -> PatientRun:
    """Evaluate one patient on the server; with ``write``, write back what changed."""
    requests: dict[str, int] = {}
    try:
        resources = await pull_patient(client, patient_id, settings, requests)
    except NotFound:
        return PatientRun(
            patient_id, RunStatus.NOT_FOUND, error="patient not found", requests=requests
        )
    except FhirClientError as exc:
        log.warning("pull failed for Patient/%s: %s", patient_id, type(exc).__name__)
        return PatientRun(
            patient_id,
            RunStatus.FAILED,
            error=describe(exc),
            requests=requests,
            error_status=status_for(exc),
        )
    result = evaluate_patient_resources(resources, settings, options)
    run = await settle(client, patient_id, result, write=write, requests=requests)
    run.result = result
    return run


class Plannable(Protocol):
    """An evaluated patient whose derived resources can be planned against a server's state."""

    @property
    def derived(self) -> Sequence[Derived]: ...

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan: ...


async def settle(
    client: FhirClient,
    patient_id: str,
    evaluated: Plannable,
    *,
    write: bool,
    requests: dict[str, int] | None = None,
) -> PatientRun:
    """Plan the derived resources against what the server holds and, with ``write``, write what
    changed (re-reading and re-planning on 412 or an unknown outcome). The returned run has no
    ``result``; :func:`run_patient` sets it."""
    requests = {} if requests is None else requests
    result = None
    sent_before = False  # a write was sent whose outcome we learn only by re-reading
    for attempt in range(MAX_REPLANS + 1):
        try:
            existing = await existing_derived(client, evaluated.derived, requests)
        except FhirClientError as exc:
            return PatientRun(
                patient_id,
                RunStatus.FAILED,
                result,
                error=describe(exc),
                requests=requests,
                error_status=status_for(exc),
            )
        plan = evaluated.plan(existing)
        if plan.bundle is None:
            status = RunStatus.WRITTEN if sent_before else RunStatus.UNCHANGED
            return PatientRun(patient_id, status, result, plan, requests=requests)
        if not write:
            return PatientRun(patient_id, RunStatus.DRY_RUN, result, plan, requests=requests)
        try:
            await client.transaction(plan.bundle)
            requests["write"] = requests.get("write", 0) + 1
            log.info(
                "Patient/%s written: %s",
                patient_id,
                ", ".join(f"{k}={v}" for k, v in plan.summary.items()),
            )
            return PatientRun(patient_id, RunStatus.WRITTEN, result, plan, requests=requests)
        except (PreconditionFailed, WriteOutcomeUnknown) as exc:
            requests["write"] = requests.get("write", 0) + 1
            sent_before = sent_before or isinstance(exc, WriteOutcomeUnknown)
            log.info(
                "Patient/%s write attempt %d: %s; re-reading and re-planning",
                patient_id,
                attempt + 1,
                type(exc).__name__,
            )
            continue
        except FhirServerError as exc:
            requests["write"] = requests.get("write", 0) + 1
            return PatientRun(
                patient_id,
                RunStatus.FAILED,
                result,
                plan,
                error=describe(exc),
                requests=requests,
                error_status=status_for(exc),
            )
        except FhirClientError as exc:
            return PatientRun(
                patient_id,
                RunStatus.FAILED,
                result,
                plan,
                error=describe(exc),
                requests=requests,
                error_status=status_for(exc),
            )
    return PatientRun(
        patient_id,
        RunStatus.FAILED,
        result,
        None,
        error=f"still conflicting after {MAX_REPLANS} re-plans",
        error_status=409,
        requests=requests,
    )
