"""Evaluate a patient on a FHIR server and write the derived resources back, idempotently.

pull → evaluate (pure) → look up fhirtis's earlier output for the patient (one search per
derived type, by its identifier system) → plan (creates, changed updates, withdrawals of output
no longer derived, nothing else) → write, with one Provenance; the run reports what the server
confirmed (``PatientRun.written``), not the plan. *How* each step talks to the server is
decided from its capabilities (:mod:`fhirtis.io`: its CapabilityStatement, then what it refused):
one batch of searches or individual GETs, ``_include`` or Medications by id; one transaction, or
one batch, or single requests (creates, If-Match updates, then the Provenance). A derived type
the server lacks is not attempted and the run says so per resource (``not_written``).

Re-running converges: a 412 on ``If-Match`` (someone changed a resource meanwhile) or a write
whose outcome is unknown (the connection dropped after sending) re-reads what exists and
re-plans, a bounded number of times. Conditional creates make a repeated create harmless.

**The search-then-create race.** Where the server has no conditional create (its statement
says ``conditionalCreate: false``, or it refused ``If-None-Exist``; e.g. Oracle Health
Millennium), a create follows the search by business identifier. Two writers of the same
patient (two ``fhirtis run --write``, a cohort run and ``$myositis-evaluate write=true``) that
both search before either creates will both create. fhirtis handles it after the fact:

- after its plain creates (and after a transaction's conditional creates: a server may ignore
  ``ifNoneExist``), the writer searches their identifiers again; where it finds several
  copies it keeps the one with the lowest id (every writer picks the same) and deletes the
  others where the server allows ``delete`` on the type;
- where the server refuses delete but allows updates of the type (Observation, Flag,
  DetectedIssue), the other copies are marked ``entered-in-error`` and later runs ignore them;
  otherwise every copy stays; either way the run reports each duplicated resource
  (``PatientRun.duplicates``: ``fhirtis run --json`` "duplicates", a ``duplicate`` warning
  issue in the HTTP answer); later runs match the copy with the lowest id, so they
  update that one only and commit nothing while the result does not change;
- each writer that changed something posts exactly one Provenance naming what *it* wrote (so
  a race leaves two Provenances, one per write; a Provenance may name a copy the other writer
  deleted).

Tested in ``tests/e2e/test_write_race.py`` (a second writer run between the first's search
and its first create, on the ``oracle-like``, ``no-transaction`` and ``full`` test-server
profiles; and two writers started together).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import parse_qsl

from fhirtis.fhir.bundle import PatientResources
from fhirtis.fhir.derive import DERIVED_TYPES, NO_IDENTIFIER_SEARCH, Derived
from fhirtis.fhir.extract import patient_refs
from fhirtis.fhir.needs import NEEDS, Need
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.plan import (
    RETIRABLE,
    RETIRED,
    Action,
    PlannedWrite,
    WritePlan,
    with_withdrawals,
    withdrawal,
)
from fhirtis.fhir.primitives import is_id, json_array
from fhirtis.fhir.queries import (
    DEFAULT_PATIENT_PARAMS,
    OWN_OUTPUT_PATIENT_PARAMS,
    existing_by_patient_urls,
    existing_urls,
    identifier_of,
    medication_urls,
    own_output_narrowing,
    own_output_url,
    patient_read_urls,
)
from fhirtis.io import (
    Capabilities,
    FhirClient,
    FhirClientError,
    FhirServerError,
    Forbidden,
    MalformedResponse,
    NotFound,
    PreconditionFailed,
    Refused,
    TooManyRetries,
    Unauthorized,
    WriteOutcomeUnknown,
    WritePlanShape,
    is_refusal,
    read_plan,
    searchset_problem,
    write_plan,
)
from fhirtis.pipeline.offline import (
    Options,
    PatientResult,
    ask_terminology,
    evaluate_patient_resources,
    extractor_for,
)
from fhirtis.settings import Settings

Json = dict[str, Any]
log = logging.getLogger("fhirtis.pipeline.server")

MAX_REPLANS = 3
MAX_LEARN = 6  # refusals learned while reading or writing one patient (each changes the plan)
MEDICATION_USERS = frozenset(n.resource_type for n in NEEDS if n.include is not None)
MEDICATION_NEED = Need("medications", "Medication", ("_id",))
EXISTING_NEED = Need("existing", "", ("identifier",))
IMMUNE_GLOBULIN_WORDS = ("globulin", "ivig", "igiv", "immunoglobulin")


@dataclass(frozen=True)
class NotWritten:
    """A derived resource the server cannot store (``reason``: "the server does not support
    Flag"); or (``verb`` "withdrawn") earlier output no longer derived that the server does not
    let fhirtis withdraw; or (``verb`` "checked for output to withdraw") a type whose earlier
    output the server does not let fhirtis find."""

    resource_type: str
    identifier: str
    reason: str
    verb: str = "written"

    def message(self) -> str:
        what = f"{self.resource_type} {self.identifier}".strip()
        return f"{what}: not {self.verb}: {self.reason}"


_PAST = {Action.CREATE: "created", Action.UPDATE: "updated", Action.WITHDRAW: "withdrawn"}


@dataclass(frozen=True)
class Written:
    """A write of this run that the server confirmed: what it did (``action``: create, update
    or withdraw) to the derived resource ``identifier``, stored as ``reference`` (``Type/id``)."""

    resource_type: str
    identifier: str
    action: Action
    reference: str

    @property
    def verb(self) -> str:
        """ "created", "updated" or "withdrawn"."""
        return _PAST.get(self.action, self.action.value)


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
    error_code: str | None = None  # FHIR issue code: not-supported (permanent refusal), …
    not_written: list[NotWritten] = field(default_factory=list)
    # derived resources stored more than once after a search-then-create race, on a server that
    # refuses delete ("Observation <identifier>: 2 copies …"); the next run updates the lowest id
    duplicates: list[str] = field(default_factory=list)
    # what the server confirmed this run wrote (every attempt, re-plans included), in order
    written: list[Written] = field(default_factory=list)

    @property
    def planned(self) -> list[tuple[str, str, Action]]:
        if self.plan is None:
            return []
        return [(w.derived.resource_type, w.derived.identifier, w.action) for w in self.plan.writes]

    @property
    def unconfirmed(self) -> list[tuple[str, str, Action]]:
        """The last plan's writes (not "unchanged") that the server did not confirm and that
        are not reported ``not_written``: of a writing run, what may not have been written."""
        done = {(w.resource_type, w.identifier) for w in self.written}
        skipped = {(n.resource_type, n.identifier) for n in self.not_written}
        return [
            (rtype, ident, action)
            for rtype, ident, action in self.planned
            if action is not Action.UNCHANGED
            and (rtype, ident) not in done
            and (rtype, ident) not in skipped
        ]


class PullError(FhirClientError):
    """A read the evaluation needs failed; the patient is not evaluated."""


def describe(exc: FhirClientError) -> str:
    """The error, with the server's OperationOutcome issue codes and locations (not its
    diagnostics, which may echo patient data)."""
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
    if isinstance(exc, TooManyRetries):  # a refused or dropped connection is no timeout
        return 504 if exc.timed_out else 502
    return 502


def code_for(exc: FhirClientError) -> str | None:
    """The FHIR issue code of a failure of the FHIR server when the status alone would mislead:
    a permanent refusal (405, 501, ``not-supported``) or another 4xx is never ``transient``."""
    if isinstance(exc, FhirServerError) and exc.status is not None:
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


def _response(entry: Mapping[str, Any]) -> Mapping[str, Any]:
    response = entry.get("response")
    return response if isinstance(response, dict) else {}


def entry_status(entry: Mapping[str, Any]) -> int | None:
    """A batch-response entry's HTTP status code, or None when it has none."""
    status = str(_response(entry).get("status", ""))[:3]
    return int(status) if status.isdigit() else None


def entry_outcome(entry: Mapping[str, Any]) -> Json | None:
    """A batch-response entry's OperationOutcome (``response.outcome``, or as its resource)."""
    outcome = _response(entry).get("outcome") or entry.get("resource")
    if isinstance(outcome, dict) and outcome.get("resourceType") == "OperationOutcome":
        return outcome
    return None


class Learned(Exception):  # noqa: N818 - a signal, not an error
    """A refusal taught something about the server: learn it and plan again."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.describe())
        self.refused = refused


def _matches(page: Json) -> list[Json]:
    """The resources of a searchset page (entries that are not objects are ignored)."""
    entries = page.get("entry")
    if not isinstance(entries, list):
        return []
    return [
        e["resource"]
        for e in entries
        if isinstance(e, dict) and isinstance(e.get("resource"), dict)
    ]


async def _all_matches(client: FhirClient, searchset: Json) -> list[Json]:
    """The matches of a searchset and of every page after it. A first page in hand (a batch
    entry's, or a GET's) is checked as later pages are (:func:`searchset_problem`)."""
    problem = searchset_problem(searchset)
    if problem is not None:
        raise MalformedResponse(f"a search result {problem}", status=None, url="(search)")
    out = _matches(searchset)
    async for page in client.following_pages(searchset):
        out.extend(_matches(page))
    return out


def _diagnose(need: Need | None, url: str, status: int | None) -> Refused:
    """What a refused search taught: the type is absent (404), the search is not allowed (405),
    else its ``_include``, else its patient parameter (400 ``not-supported``)."""
    rtype = url.split("?", maxsplit=1)[0].split("/", maxsplit=1)[0]
    if need is None:
        return Refused("interaction", rtype, "read")
    if status == 404:
        return Refused("type", rtype)
    if status in (405, 501):
        return Refused("interaction", rtype, "search-type")
    if need.include is not None and f"_include={need.include}" in url:
        return Refused("include", rtype, need.include)
    param = url.split("?", 1)[1].split("=", 1)[0]
    return Refused("search-param", rtype, param)


async def _get_search(client: FhirClient, need: Need | None, url: str) -> list[Json]:
    """One search (every page) or, for ``need`` None, one read, as individual requests: a
    search by GET, or by ``POST [type]/_search`` on a server that takes searches of the type
    that way only (it says so, or it refused the GET with 405 and took the POST: learned)."""
    rtype = url.split("?", maxsplit=1)[0]
    if need is not None and (await client.capabilities()).searches_by_post(rtype):
        return await _post_search(client, need, url)
    try:
        response = await client.request("GET", url)
    except FhirServerError as exc:
        if need is not None and is_refusal(exc.status, exc.operation_outcome):
            if exc.status == 405:
                try:
                    found = await _post_search(client, need, url)
                except Learned as learned:
                    if learned.refused.kind != "interaction":  # POST taken, a parameter not
                        client.learn(Refused("get-search", rtype))
                    raise
                client.learn(Refused("get-search", rtype))
                return found
            raise Learned(_diagnose(need, url, exc.status)) from exc
        raise
    body = response.body or {}
    if need is None:
        return [body]
    return await _all_matches(client, body)


async def _post_search(client: FhirClient, need: Need, url: str) -> list[Json]:
    """The search ``url`` (``Type?params``) as ``POST [type]/_search``, its parameters in the
    body (never in a URL), every page; a refusal is diagnosed from the POST's answer (405: no
    search of the type at all; 400 ``not-supported``: its ``_include`` or parameter)."""
    rtype, _, query = url.partition("?")
    out: list[Json] = []
    try:
        async for page in client.search_bundle_pages(
            rtype, parse_qsl(query, keep_blank_values=True), use_post=True
        ):
            out.extend(_matches(page))
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome):
            raise Learned(_diagnose(need, url, exc.status)) from exc
        raise
    return out


async def _get_all(
    client: FhirClient, urls: Sequence[tuple[Need | None, str]], requests: dict[str, int]
) -> list[Json]:
    """The searches as individual GETs, at most ``concurrency`` at a time."""
    slots = asyncio.Semaphore(client.config.concurrency)

    async def one(need: Need | None, url: str) -> list[Json]:
        async with slots:
            requests["read"] = requests.get("read", 0) + 1
            return await _get_search(client, need, url)

    results = await asyncio.gather(*(one(n, u) for n, u in urls), return_exceptions=True)
    for r in results:  # a learned refusal first: it changes the plan
        if isinstance(r, Learned):
            raise r
    out: list[Json] = []
    for r in results:
        if isinstance(r, BaseException):
            raise r
        out.extend(r)
    return out


async def batch_of_reads(client: FhirClient, urls: Sequence[str]) -> list[Json]:
    """GET ``urls`` in one batch: the batch-response's entries, one object per URL in order
    (else :class:`PullError`). A refused batch raises :class:`Learned` ``Refused("batch")``."""
    try:
        batch = await client.batch([{"request": {"method": "GET", "url": url}} for url in urls])
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome):
            raise Learned(Refused("batch")) from exc
        raise
    responses = batch.get("entry") or []
    if (
        batch.get("resourceType") != "Bundle"
        or not isinstance(responses, list)
        or len(responses) != len(urls)
        or not all(isinstance(e, dict) for e in responses)
    ):
        raise PullError("the server's batch response does not answer every request")
    return responses


async def _batch_all(
    client: FhirClient, urls: Sequence[tuple[Need | None, str]], requests: dict[str, int]
) -> list[Json]:
    """The searches as one batch, every page followed. A refused batch, or a search refused
    inside it that works as a GET, teaches the server's limits."""
    try:
        responses = await batch_of_reads(client, [url for _, url in urls])
    finally:
        requests["read"] = requests.get("read", 0) + 1
    out: list[Json] = []
    for (need, url), entry in zip(urls, responses, strict=True):
        where = url.split("?")[0]
        if not entry_ok(entry):
            status = entry_status(entry)
            if (
                need is None
                and status in (404, 410)
                and not is_refusal(status, entry_outcome(entry))
            ):
                raise NotFound(f"{where} not found", status=404, url=where)
            if is_refusal(status, entry_outcome(entry)):
                # refused in the batch: as a GET too (a search limit), or only in a batch?
                requests["read"] = requests.get("read", 0) + 1
                await _get_search(client, need, url)
                raise Learned(Refused("batch-search"))
            raise PullError(f"batch entry {where} failed with status {status or '?'}")
        resource = entry.get("resource")
        if not isinstance(resource, dict):
            raise PullError(f"batch entry {where} has no resource")
        if resource.get("resourceType") != "Bundle":
            out.append(resource)
            continue
        out.extend(await _all_matches(client, resource))
    return out


async def _read_urls(
    client: FhirClient, urls: Sequence[tuple[Need | None, str]], requests: dict[str, int]
) -> list[Json]:
    """Execute reads the way the server's capabilities allow, learning from refusals."""
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        try:
            if caps.supports_batch_search():
                return await _batch_all(client, urls, requests)
            return await _get_all(client, urls, requests)
        except Learned as learned:
            if learned.refused.kind not in ("batch", "batch-search"):
                raise
            client.learn(learned.refused)
    raise PullError("the server kept refusing its reads")


def _medication_refs(resources: Iterable[Json]) -> dict[str, list[Json]]:
    """Medication references (``Medication/id``) of medication resources → who references."""
    out: dict[str, list[Json]] = {}
    for r in resources:
        if r.get("resourceType") not in MEDICATION_USERS:
            continue
        ref = r.get("medicationReference")
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str) and target.startswith("Medication/"):
            out.setdefault(target, []).append(r)
    return out


def _looks_like_immune_globulin(resource: Json, names: Sequence[str]) -> bool:
    ref = resource.get("medicationReference")
    text = str(ref.get("display") or "") if isinstance(ref, dict) else ""
    lowered = text.lower()
    return bool(lowered) and (
        any(word in lowered for word in IMMUNE_GLOBULIN_WORDS)
        or any(n and n in lowered for n in names)
    )


async def _resolve_medications(
    client: FhirClient,
    unique: dict[str, Json],
    requests: dict[str, int],
    ivig_names: Sequence[str],
) -> list[Issue]:
    """Medications the searches did not bring (no ``_include`` on this server): one
    ``Medication?_id=a,b,…`` search per 40, else reads by id. What stays unresolved is an error
    only where the medication looks like an immune globulin."""
    wanted = {
        ref: users for ref, users in _medication_refs(unique.values()).items() if ref not in unique
    }
    if not wanted:
        return []
    ids = [ref.split("/", 1)[1] for ref in wanted]
    found: list[Json] = []
    try:
        found = await _read_urls(
            client,
            [(MEDICATION_NEED, u) for u in medication_urls(ids, client.config.page_size)],
            requests,
        )
    except Learned:  # no search by _id: read them one by one
        for mid in ids:
            requests["read"] = requests.get("read", 0) + 1
            try:
                found.append(await client.read("Medication", mid))
            except NotFound:
                continue
    for m in found:
        if m.get("resourceType") == "Medication":
            unique.setdefault(f"Medication/{m.get('id')}", m)
    issues: list[Issue] = []
    for ref, users in wanted.items():
        if ref in unique:
            continue
        for user in users:
            where = f"{user.get('resourceType')}/{user.get('id')}"
            if _looks_like_immune_globulin(user, ivig_names):
                issues.append(
                    Issue(
                        "error",
                        "not-found",
                        f"{where}: its Medication ({ref}) could not be read from the server, and "
                        "it looks like an immune globulin",
                        "medicationReference",
                        where,
                    )
                )
            else:
                issues.append(
                    Issue(
                        "information",
                        "not-found",
                        f"{where}: its Medication ({ref}) could not be read from the server",
                        "medicationReference",
                        where,
                    )
                )
    return issues


async def pull_patient(
    client: FhirClient, patient_id: str, settings: Settings, requests: dict[str, int]
) -> PatientResources:
    """Read everything of one patient the computation needs, as the server allows (its read
    plan: one batch or individual GETs, its parameters, ``_include`` or Medications by id)."""
    unique, issues, skipped = await _pull(client, patient_id, settings, requests, None)
    listed = [(key, r) for key, r in unique.items()]
    patient_ref = f"Patient/{patient_id}"
    others = patient_refs(r for _, r in listed) - {patient_ref}
    if others:
        issues.append(
            Issue("warning", "business-rule", f"{len(others)} other patients referenced; ignored")
        )
    for rtype, why in sorted(skipped.items()):
        issues.append(Issue("warning", "not-supported", f"{rtype} not read: {why}"))
    return PatientResources(patient_ref, listed, dict(unique), issues)


async def pull_types(
    client: FhirClient, patient_id: str, settings: Settings, types: Collection[str]
) -> tuple[list[Json], dict[str, str]]:
    """One patient's resources of ``types`` only (searched as :func:`pull_patient` searches
    them) and the Medications they reference, for a cohort whose Bulk export lacks those types.
    Also returns the types the server cannot search at all, each with why."""
    unique, issues, skipped = await _pull(client, patient_id, settings, {}, types)
    if issues:
        log.warning("%d medication reference(s) of %s could not be read", len(issues), patient_id)
    return list(unique.values()), dict(skipped)


async def _pull(
    client: FhirClient,
    patient_id: str,
    settings: Settings,
    requests: dict[str, int],
    types: Collection[str] | None,
) -> tuple[dict[str, Json], list[Issue], Mapping[str, str]]:
    """The reads of :func:`pull_patient` (only ``types``' searches, when given): the resources
    by "Type/id" (the first copy), the unresolved medications' issues, the skipped types."""
    extractor = extractor_for(settings)
    skipped: Mapping[str, str] = {}
    resources: list[Json] = []
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        plan = read_plan(caps, client.config.page_size)
        urls = patient_read_urls(
            patient_id, extractor.t, client.config.page_size, plan.choices, types
        )
        try:
            resources = await _read_urls(client, urls, requests)
        except Learned as learned:
            client.learn(learned.refused)
            continue
        except NotFound:
            raise
        except FhirServerError as exc:
            if exc.status in (404, 410) and exc.url.split("?")[0].endswith(
                f"/Patient/{patient_id}"
            ):
                raise NotFound(
                    f"Patient/{patient_id} not found", status=404, url=f"Patient/{patient_id}"
                ) from None
            raise
        skipped = (
            plan.skipped
            if types is None
            else {t: plan.skipped[t] for t in types if t in plan.skipped}
        )
        break
    else:
        raise PullError("the server kept refusing the reads the evaluation needs")
    unique: dict[str, Json] = {}
    for r in resources:
        unique.setdefault(f"{r.get('resourceType')}/{r.get('id')}", r)
    ivig = extractor.t.value_sets.get("ivig-products")
    issues = await _resolve_medications(client, unique, requests, ivig.names if ivig else ())
    return unique, issues, skipped


async def _find_existing(
    client: FhirClient, derived: Sequence[Derived], requests: dict[str, int]
) -> list[Json]:
    """Stored resources that may be fhirtis's earlier output of ``derived`` (types the server
    lacks are not searched; a type without an ``identifier`` search is searched by patient and
    code). The caller matches them by identifier."""
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        absent = {d.resource_type for d in derived if not caps.has_type(d.resource_type)}
        by_patient = {
            d.resource_type
            for d in derived
            if d.resource_type not in absent
            and d.resource_type not in NO_IDENTIFIER_SEARCH
            and caps.search_param(d.resource_type, ("identifier",)) is None
        }
        known = caps
        urls = existing_urls(derived, client.config.page_size, absent | by_patient)
        urls += existing_by_patient_urls(
            [d for d in derived if d.resource_type in by_patient],
            lambda rtype, known=known: known.search_param(rtype, ("patient", "subject")),  # type: ignore[misc]
            client.config.page_size,
        )
        if not urls:
            return []
        try:
            return await _read_urls(client, [(EXISTING_NEED, u) for u in urls], requests)
        except Learned as learned:
            client.learn(learned.refused)
    raise PullError("the server kept refusing the searches for fhirtis's earlier output")


WITHDRAW_CHECK = "checked for output to withdraw"


@dataclass
class StoredOutput:
    """fhirtis's earlier output on the write server for one patient: ``existing`` (business
    identifier → the stored resource a write updates: the live copy with the lowest id, else a
    withdrawn one, updated back), what is no longer derived (``withdraw``: every live copy), and
    the types whose earlier output could not be searched for (``unchecked``)."""

    existing: dict[str, Json]
    withdraw: list[PlannedWrite]
    unchecked: list[NotWritten]


def _names_patient(resource: Json, patient_ref: str) -> bool:
    """Whether ``resource``'s subject (or patient) is ``patient_ref`` (``Patient/id``)."""
    for key in ("subject", "patient"):
        ref = resource.get(key)
        target = ref.get("reference") if isinstance(ref, dict) else None
        if isinstance(target, str):
            return _reference(target, target) == patient_ref
    return False


async def _find_own_output(
    client: FhirClient, patient_ref: str, derived: Sequence[Derived], requests: dict[str, int]
) -> tuple[list[Json], list[NotWritten]]:
    """All of fhirtis's earlier output for the patient: one search per derived type (paged), by
    patient and any value of fhirtis's identifier system, or (no identifier search) fhirtis's
    code or category system; only resources with fhirtis's identifier naming the patient are
    kept. A type the server lacks is not searched; one it cannot search by patient is looked up
    by the identifiers of ``derived`` only, and said to be unchecked."""
    for _ in range(MAX_LEARN):
        caps = await client.capabilities()
        urls: list[str] = []
        unchecked: list[NotWritten] = []
        by_identifier: list[Derived] = []
        for rtype in DERIVED_TYPES:
            if not caps.has_type(rtype):
                continue
            param = caps.search_param(
                rtype, OWN_OUTPUT_PATIENT_PARAMS.get(rtype, DEFAULT_PATIENT_PARAMS)
            )
            if not caps.allows(rtype, "search-type") or param is None:
                why = f"the server cannot search {rtype} by patient"
                unchecked.append(NotWritten(rtype, "", why, WITHDRAW_CHECK))
                by_identifier += [d for d in derived if d.resource_type == rtype]
                continue
            narrowing = own_output_narrowing(rtype, caps.search_param)
            urls.append(
                own_output_url(rtype, param, patient_ref, narrowing, client.config.page_size)
            )
        try:
            found = (
                await _read_urls(client, [(EXISTING_NEED, u) for u in urls], requests)
                if urls
                else []
            )
        except Learned as learned:
            client.learn(learned.refused)
            continue
        own = [
            r
            for r in found
            if r.get("resourceType") in DERIVED_TYPES
            and identifier_of(r) is not None
            and _names_patient(r, patient_ref)
        ]
        if by_identifier:
            own += await _find_existing(client, by_identifier, requests)
        return own, unchecked
    raise PullError("the server kept refusing the searches for fhirtis's earlier output")


async def stored_output(
    client: FhirClient, patient_ref: str, derived: Sequence[Derived], requests: dict[str, int]
) -> StoredOutput:
    """fhirtis's earlier output for the patient, matched against ``derived`` (its business
    identifiers): what each derived resource updates, and what is to be withdrawn."""
    found, unchecked = await _find_own_output(client, patient_ref, derived, requests)
    by_ident: dict[str, list[Json]] = {}
    seen: set[str] = set()
    for r in found:
        ident = identifier_of(r)
        key = f"{r.get('resourceType')}/{r.get('id')}"
        if ident is None or key in seen:
            continue
        seen.add(key)
        by_ident.setdefault(ident, []).append(r)
    wanted = {d.identifier for d in derived}
    existing: dict[str, Json] = {}
    withdraw: list[PlannedWrite] = []
    for ident, copies in sorted(by_ident.items()):
        copies.sort(key=lambda r: str(r.get("id")))  # every writer keeps the same copy
        live = [c for c in copies if c.get("status") != RETIRED]
        if ident in wanted:
            if len(live) > 1:
                log.warning(
                    "two stored resources share a derived identifier (%s)",
                    live[0].get("resourceType"),
                )
            # a race's retired copy is not it; a withdrawn one derived again is updated back
            existing[ident] = live[0] if live else copies[0]
        else:
            withdraw += [withdrawal(c, ident) for c in live]
    return StoredOutput(existing, withdraw, unchecked)


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
            error_code=code_for(exc),
        )
    answers = await ask_terminology(resources, settings)  # before the pure evaluation
    result = evaluate_patient_resources(resources, settings, options, answers=answers)
    run = await settle(client, patient_id, result, write=write, requests=requests)
    run.result = result
    return run


class Plannable(Protocol):
    """An evaluated patient whose derived resources can be planned against a server's state."""

    @property
    def derived(self) -> Sequence[Derived]: ...

    def plan(self, existing: Mapping[str, Json] | None = None) -> WritePlan: ...


@dataclass
class _Naming:
    """What the run's Provenances must still name, and whether the server refused them.

    Writes of this run whose answer was lost (a plain create or a batch whose answer never
    came, an If-Match update whose retry met 412) may have been made. Where the re-plan finds
    one made (unchanged now), the run's next Provenance names it with what it writes, or on its
    own when nothing else is to be written, so no derived resource is left unnamed. A server
    that refuses the Provenance (its statement said nothing, or was wrong) is learnt from, and
    the run reports the Provenance "not written"."""

    identifiers: dict[str, Action] = field(default_factory=dict)  # outcome unknown: what it was
    targets: list[str] = field(default_factory=list)  # ``Type/id`` found made, to be named
    refused: bool = False  # the server refused a Provenance of this run
    written: list[Written] = field(default_factory=list)  # what the server confirmed
    # writes of a transaction whose answer was lost (its Provenance names them if it was made)
    unknown: dict[str, Action] = field(default_factory=dict)

    def lost(self, writes: Iterable[PlannedWrite]) -> None:
        self.identifiers.update((w.derived.identifier, w.action) for w in writes)

    def confirm(self, w: PlannedWrite, reference: str) -> None:
        """The server confirmed ``w``, stored as ``reference``."""
        d = w.derived
        self.written.append(Written(d.resource_type, d.identifier, w.action, reference))

    def and_(self, changed: Iterable[str]) -> list[str]:
        """What a Provenance names: the lost writes found made, then ``changed`` (each once)."""
        return [*self.targets, *(t for t in changed if t not in self.targets)]

    def found_in(self, plan: WritePlan) -> None:
        """The lost writes that ``plan`` finds made; the others are in it to write again."""
        for w in plan.writes:
            if w.action is Action.UNCHANGED and w.derived.identifier in self.identifiers:
                target = f"{w.derived.resource_type}/{w.existing_id}"
                if target not in self.targets:
                    self.targets.append(target)
                    lost = self.identifiers[w.derived.identifier]
                    self.confirm(PlannedWrite(w.derived, lost, w.existing_id), target)
            elif w.action is Action.UNCHANGED and w.derived.identifier in self.unknown:
                lost = self.unknown[w.derived.identifier]
                target = f"{w.derived.resource_type}/{w.existing_id}"
                self.confirm(PlannedWrite(w.derived, lost, w.existing_id), target)
        self.identifiers.clear()
        self.unknown.clear()


async def settle(
    client: FhirClient,
    patient_id: str,
    evaluated: Plannable,
    *,
    write: bool,
    requests: dict[str, int] | None = None,
) -> PatientRun:
    """Plan the derived resources against what the write server holds (``client.writer()``:
    ``write_base_url`` if set) and, with ``write``, write what changed the way the server allows
    (transaction, batch, or single requests), re-reading and re-planning on 412, an unknown
    outcome or a refusal that taught something. Types the server cannot store are not attempted
    (``not_written``). Stored output that no Provenance names (an earlier run was killed, or
    its Provenance failed, between its writes and its Provenance) is named by this run's: one
    more search, only where output is stored (see :func:`_name_unnamed`). Earlier output no
    longer derived is withdrawn (see :func:`stored_output`). The returned run has no
    ``result`` (:func:`run_patient` sets it) and lists in ``written`` what the server confirmed
    this run wrote, in every attempt."""
    naming = _Naming()
    run = await _settle(client, patient_id, evaluated, write, requests, naming)
    run.written = list(naming.written)
    return run


async def _settle(
    client: FhirClient,
    patient_id: str,
    evaluated: Plannable,
    write: bool,
    requests: dict[str, int] | None,
    naming: _Naming,
) -> PatientRun:
    """:func:`settle`, what the server confirmed recorded in ``naming``."""
    requests = {} if requests is None else requests
    writer = client.writer()
    sent_before = False  # a write was sent whose outcome we learn only by re-reading
    plan: WritePlan | None = None
    duplicates: list[str] = []  # found after search-then-create, kept (delete refused)
    for attempt in range(MAX_REPLANS + MAX_LEARN + 1):
        try:
            stored = await stored_output(
                writer, f"Patient/{patient_id}", evaluated.derived, requests
            )
            caps = await writer.capabilities()
        except FhirClientError as exc:
            return _failed(patient_id, plan, exc, requests)
        plan = with_withdrawals(evaluated.plan(stored.existing), stored.withdraw)
        naming.found_in(plan)
        shape = write_plan(caps, {d.resource_type for d in evaluated.derived})
        if write and attempt == 0 and shape.provenance:
            await _name_unnamed(writer, plan, caps, requests, naming)
        writes, not_written = _writable(plan, caps, shape)
        not_written += stored.unchecked
        if not writes and write and naming.targets and shape.provenance:
            try:
                # nothing else to write: the plan has no Provenance; the one of a plan
                # against nothing has the same sources and time
                provenance = _provenance_of(evaluated.plan(None))
                await _post_provenance(writer, provenance, [], requests, naming)
            except FhirClientError as exc:
                return _failed(patient_id, plan, exc, requests)
            sent_before = sent_before or not naming.refused
        if not writes:
            status = RunStatus.WRITTEN if sent_before else RunStatus.UNCHANGED
            return PatientRun(
                patient_id,
                status,
                None,
                plan,
                requests=requests,
                not_written=_with_refused_provenance(not_written, naming),
                duplicates=duplicates,
            )
        if not write:
            return PatientRun(
                patient_id,
                RunStatus.DRY_RUN,
                None,
                plan,
                requests=requests,
                not_written=not_written,
            )
        provenance = None
        if shape.provenance:  # a plan that only withdraws has no Bundle: one against nothing
            provenance = _provenance_of(plan) or _provenance_of(evaluated.plan(None))
        writes_before = requests.get("write", 0)
        try:
            if shape.mode == "transaction":
                await _write_transaction(writer, writes, provenance, requests, duplicates, naming)
            elif shape.mode == "batch":
                await _write_batch(writer, writes, provenance, shape, requests, duplicates, naming)
            else:
                await _write_singles(
                    writer, writes, provenance, shape, requests, duplicates, naming
                )
        except Learned as learned:
            writer.learn(learned.refused)
            sent_before = sent_before or requests.get("write", 0) > writes_before
            continue
        except (PreconditionFailed, WriteOutcomeUnknown) as exc:
            sent_before = sent_before or isinstance(exc, WriteOutcomeUnknown)
            log.info(
                "Patient/%s write attempt %d: %s; re-reading and re-planning",
                patient_id,
                attempt + 1,
                type(exc).__name__,
            )
            continue
        except FhirClientError as exc:
            run = _failed(patient_id, plan, exc, requests)
            run.not_written = _with_refused_provenance(not_written, naming)
            run.duplicates = duplicates
            return run
        log.info(
            "Patient/%s written (%s): %s",
            patient_id,
            shape.mode,
            ", ".join(f"{k}={v}" for k, v in plan.summary.items()),
        )
        return PatientRun(
            patient_id,
            RunStatus.WRITTEN,
            None,
            plan,
            requests=requests,
            not_written=_with_refused_provenance(not_written, naming),
            duplicates=duplicates,
        )
    return PatientRun(
        patient_id,
        RunStatus.FAILED,
        None,
        None,
        error=f"still conflicting after {MAX_REPLANS} re-plans",
        error_status=409,
        requests=requests,
    )


def _failed(
    patient_id: str, plan: WritePlan | None, exc: FhirClientError, requests: dict[str, int]
) -> PatientRun:
    return PatientRun(
        patient_id,
        RunStatus.FAILED,
        None,
        plan,
        error=describe(exc),
        requests=requests,
        error_status=status_for(exc),
        error_code=code_for(exc),
    )


_MAX_PROVENANCES_READ = 1000
"""Provenances :func:`_name_unnamed` reads at most for one patient (each write of a patient's
output posts one: a thousand is years of monthly runs; more means the search was not one)."""


async def _name_unnamed(
    writer: FhirClient,
    plan: WritePlan,
    caps: Capabilities,
    requests: dict[str, int],
    naming: _Naming,
) -> None:
    """Derived resources found unchanged that no Provenance names (a run killed between its
    writes and its Provenance, or one whose Provenance failed) go into this run's Provenance:
    one search ``Provenance?target=…`` per run that finds stored output. A server that cannot
    search Provenance by target, or a search that fails, leaves them as they are (said in the
    log)."""
    stored = [
        f"{w.derived.resource_type}/{w.existing_id}"
        for w in plan.writes
        if w.action is Action.UNCHANGED and w.existing_id
    ]
    if (
        not stored
        or not caps.allows("Provenance", "search-type")
        or caps.search_param("Provenance", ("target",)) is None
    ):
        return
    named: set[str] = set()
    seen = 0
    try:
        async for entry in writer.search("Provenance", {"target": ",".join(stored)}):
            seen += 1
            if seen > _MAX_PROVENANCES_READ:  # a server that ignored ``target`` lists them all
                log.info("Provenance search by target gave too many: not checked")
                return
            resource = entry.get("resource") or {}
            for target in resource.get("target") or []:
                if isinstance(target, dict) and isinstance(target.get("reference"), str):
                    named.add(_reference(target["reference"], target["reference"]))
    except FhirClientError as exc:  # best effort: the run goes on without the check
        log.info("Provenance search by target failed (%s): not checked", type(exc).__name__)
        return
    finally:
        requests["read"] = requests.get("read", 0) + 1
    for ref in stored:
        if ref not in named and ref not in naming.targets:
            naming.targets.append(ref)


def _with_refused_provenance(not_written: list[NotWritten], naming: _Naming) -> list[NotWritten]:
    """``not_written`` and, where the server refused a Provenance of this run, the Provenance."""
    if naming.refused and all(n.resource_type != "Provenance" for n in not_written):
        reason = "the server does not allow creating Provenance"
        return [*not_written, NotWritten("Provenance", "", reason)]
    return not_written


def _writable(
    plan: WritePlan, caps: Capabilities, shape: WritePlanShape
) -> tuple[list[PlannedWrite], list[NotWritten]]:
    """The changed writes the server can take, and the others with why they are not written."""
    writes: list[PlannedWrite] = []
    not_written: list[NotWritten] = []
    for w in plan.writes:
        rtype = w.derived.resource_type
        if w.action is Action.WITHDRAW:
            how = "update" if rtype in RETIRABLE else "delete"
            if not caps.allows(rtype, how):
                why = f"the server does not allow {how.removesuffix('e')}ing {rtype}"
                not_written.append(NotWritten(rtype, w.derived.identifier, why, "withdrawn"))
                continue
            writes.append(w)
            continue
        reason = shape.not_written.get(rtype)
        if reason is None and w.action is Action.UPDATE and not caps.allows(rtype, "update"):
            reason = f"the server does not allow updating {rtype}"
        if reason is not None:
            if w.action is not Action.UNCHANGED:
                not_written.append(NotWritten(rtype, w.derived.identifier, reason))
            continue
        if w.action is not Action.UNCHANGED:
            writes.append(w)
    if "Provenance" in shape.not_written and writes:
        not_written.append(NotWritten("Provenance", "", shape.not_written["Provenance"]))
    return writes, not_written


def _provenance_of(plan: WritePlan) -> Json | None:
    """The plan's Provenance (its sources and time), to be re-targeted at what is written."""
    if plan.bundle is None:
        return None
    last = (plan.bundle.get("entry") or [{}])[-1].get("resource") or {}
    return dict(last) if last.get("resourceType") == "Provenance" else None


def _entry(w: PlannedWrite, conditional: bool) -> Json:
    d = w.derived
    if w.action is Action.CREATE:
        request: Json = {"method": "POST", "url": d.resource_type}
        if conditional:
            request["ifNoneExist"] = d.if_none_exist
        return {"fullUrl": d.full_url, "resource": d.resource, "request": request}
    if _deletes(w):
        return {"request": {"method": "DELETE", "url": f"{d.resource_type}/{w.existing_id}"}}
    request = {"method": "PUT", "url": f"{d.resource_type}/{w.existing_id}"}
    if w.existing_version:
        request["ifMatch"] = f'W/"{w.existing_version}"'
    return {"resource": {**d.resource, "id": w.existing_id}, "request": request}


def _deletes(w: PlannedWrite) -> bool:
    """Whether ``w`` withdraws by deleting (a type without an ``entered-in-error`` status)."""
    return w.action is Action.WITHDRAW and w.derived.resource_type not in RETIRABLE


def _made(location: str | None, answered: object, w: PlannedWrite) -> str | None:
    """``Type/id`` of what a write made: from the answer's Location, else from the resource the
    answer holds (a server or gateway that sent no Location), else for an update or withdrawal
    :func:`_target`; for a create None (never its ``urn:uuid:``): :func:`_locate` finds it."""
    fallback = None if w.action is Action.CREATE else _target(w)
    if location:
        made = _reference(location, "")
        if made:
            return made
    if isinstance(answered, dict) and answered.get("resourceType") == w.derived.resource_type:
        made_id = answered.get("id")
        if is_id(made_id):
            return f"{w.derived.resource_type}/{made_id}"
    return fallback


async def _locate(
    writer: FhirClient,
    unlocated: Sequence[PlannedWrite],
    requests: dict[str, int],
    naming: _Naming,
    changed: list[str],
) -> dict[str, str]:
    """Creates the server answered without saying what they made (no Location, no resource):
    looked up by business identifier (one search per type, as the duplicate check does); each
    found is named (``changed``) and confirmed, the copy with the lowest id where there are
    several. One not found is neither: the run reports it not confirmed. Returns identifier →
    ``Type/id`` of those found."""
    if not unlocated:
        return {}
    try:
        found = await _find_existing(writer, [w.derived for w in unlocated], requests)
    except FhirClientError as exc:  # the writes stand; they are reported not confirmed
        log.warning("created resources could not be looked up (%s)", type(exc).__name__)
        return {}
    refs: dict[str, str] = {}
    for r in sorted(found, key=lambda r: str(r.get("id"))):
        ident = identifier_of(r)
        if ident is not None and r.get("status") != RETIRED:
            refs.setdefault(
                f"{r.get('resourceType')} {ident}", f"{r.get('resourceType')}/{r.get('id')}"
            )
    out: dict[str, str] = {}
    for w in unlocated:
        ref = refs.get(f"{w.derived.resource_type} {w.derived.identifier}")
        if ref is None:
            log.warning(
                "a created %s was not found by its identifier: not named", w.derived.resource_type
            )
            continue
        if ref not in changed:
            changed.append(ref)
        naming.confirm(w, ref)
        out[w.derived.identifier] = ref
    return out


def _target(w: PlannedWrite) -> str:
    d = w.derived
    return d.full_url if w.action is Action.CREATE else f"{d.resource_type}/{w.existing_id}"


async def _write_transaction(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    provenance: Json | None,
    requests: dict[str, int],
    duplicates: list[str],
    naming: _Naming,
) -> None:
    """One transaction of the writes and their Provenance (all or nothing: a lost answer
    leaves nothing unnamed). Its conditional creates are checked for duplicates as plain
    creates are (:func:`_check_duplicates`): a server that ignores ``ifNoneExist`` creates a
    resource another writer created meanwhile a second time."""
    entries = [_entry(w, conditional=True) for w in writes]
    if provenance is not None:
        targets = naming.and_(_target(w) for w in writes)
        prov = {**provenance, "target": [{"reference": t} for t in targets]}
        entries.append({"resource": prov, "request": {"method": "POST", "url": "Provenance"}})
    requests["write"] = requests.get("write", 0) + 1
    try:
        response = await writer.transaction(
            {"resourceType": "Bundle", "type": "transaction", "entry": entries}
        )
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome) and not isinstance(exc, NotFound):
            raise Learned(Refused("transaction")) from exc
        raise
    except WriteOutcomeUnknown:
        naming.unknown.update((w.derived.identifier, w.action) for w in writes)  # named inside
        raise
    if provenance is not None:
        naming.targets.clear()
    answers = response.get("entry")
    answers = answers if isinstance(answers, list) else []
    created: list[PlannedWrite] = []
    unlocated: list[PlannedWrite] = []
    for i, w in enumerate(writes):  # all or nothing: every write was made
        entry = answers[i] if i < len(answers) and isinstance(answers[i], dict) else {}
        if w.action is Action.CREATE and entry_status(entry) == 200:
            continue  # its ifNoneExist found it stored: another writer made it meanwhile
        if w.action is Action.CREATE:
            created.append(w)
        location = _response(entry).get("location")
        made = _made(location if isinstance(location, str) else None, entry.get("resource"), w)
        if made is None:
            unlocated.append(w)
        else:
            naming.confirm(w, made)
    # the Provenance is written (naming the creates by fullUrl, which the server resolved):
    # what these find is not named again
    await _locate(writer, unlocated, requests, naming, [])
    await _check_duplicates(writer, created, requests, duplicates, [])


def _reference(location: str | None, fallback: str) -> str:
    """``Type/id`` from a Location (``[base/]Type/id/_history/v``)."""
    if not location:
        return fallback
    parts = location.split("/_history")[0].rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) >= 2 else fallback


async def _write_batch(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    provenance: Json | None,
    shape: WritePlanShape,
    requests: dict[str, int],
    duplicates: list[str],
    naming: _Naming,
) -> None:
    """One batch of creates (conditional where the server has it) and If-Match updates, then
    one Provenance naming what the batch changed."""
    entries = [
        _entry(w, shape.conditional_create.get(w.derived.resource_type, False)) for w in writes
    ]
    requests["write"] = requests.get("write", 0) + 1
    try:
        response = await writer.batch(entries)
    except FhirServerError as exc:
        if is_refusal(exc.status, exc.operation_outcome):
            raise Learned(Refused("batch")) from exc
        raise
    except WriteOutcomeUnknown:
        naming.lost(writes)
        raise
    answers = response.get("entry") or []
    if len(answers) != len(entries):
        naming.lost(writes)
        raise WriteOutcomeUnknown(
            "the server's batch response does not answer every entry", method="POST", url="(batch)"
        )
    changed: list[str] = []
    conflict = False
    failure: Exception | None = None  # the first entry that failed, raised once all is named
    plain: list[PlannedWrite] = []
    unlocated: list[PlannedWrite] = []  # creates whose answer does not say what they made
    for w, entry in zip(writes, answers, strict=True):
        status = entry_status(entry)
        if status is not None and 200 <= status < 300:
            location = (entry.get("response") or {}).get("location")
            plain_create = w.action is Action.CREATE and not shape.conditional_create.get(
                w.derived.resource_type, False
            )
            # a conditional create answers 200 when it found the resource; a plain create made
            # it whatever its 2xx (some servers answer 200)
            if w.action is not Action.CREATE or status == 201 or plain_create:
                made = _made(location, entry.get("resource"), w)
                if made is None:
                    unlocated.append(w)
                else:
                    changed.append(made)
                    naming.confirm(w, made)
            if plain_create:
                plain.append(w)
            continue
        outcome = entry_outcome(entry)
        rtype = w.derived.resource_type
        if _deletes(w) and status in (404, 410) and not is_refusal(status, outcome):
            continue  # gone already
        if status == 412:
            conflict = True
        elif failure is not None:
            continue
        elif is_refusal(status, outcome):
            if w.action is Action.CREATE and shape.conditional_create.get(rtype, False):
                failure = Learned(Refused("conditional-create", rtype))
            else:
                action = "create" if w.action is Action.CREATE else "update"
                failure = Learned(
                    Refused("interaction", rtype, "delete" if _deletes(w) else action)
                )
        else:
            failure = FhirServerError(
                f"batch entry {rtype} failed with status {status or '?'}",
                status=status,
                url=rtype,
                operation_outcome=outcome,
            )
    # what the batch wrote is written: named by the Provenance even if other entries failed
    await _locate(writer, unlocated, requests, naming, changed)
    await _check_duplicates(writer, plain, requests, duplicates, changed)
    await _post_provenance(writer, provenance, changed, requests, naming)
    if failure is not None:
        raise failure
    if conflict:
        raise PreconditionFailed(
            "a resource changed since it was read (If-Match)", status=412, url="(batch)"
        )


async def _write_singles(
    writer: FhirClient,
    writes: Sequence[PlannedWrite],
    provenance: Json | None,
    shape: WritePlanShape,
    requests: dict[str, int],
    duplicates: list[str],
    naming: _Naming,
) -> None:
    """Single requests in a safe order: creates, then If-Match updates, then the Provenance
    (last, so it names only what was written). A conditional create answered "exists" after a
    try whose answer was lost names what that try created."""
    changed: list[str] = []
    resent: list[str] = []  # what creates sent again made (their first try may have too)
    plain: list[PlannedWrite] = []
    unlocated: list[PlannedWrite] = []  # creates whose answer does not say what they made
    unlocated_resent: set[str] = set()
    order = {Action.CREATE: 0, Action.UPDATE: 1, Action.WITHDRAW: 2}
    ordered = sorted(writes, key=lambda w: order.get(w.action, 1))
    try:
        for w in ordered:
            d = w.derived
            rtype = d.resource_type
            requests["write"] = requests.get("write", 0) + 1
            if w.action is Action.CREATE:
                conditional = shape.conditional_create.get(rtype, False)
                headers = {"If-None-Exist": d.if_none_exist} if conditional else None
                try:
                    answer = await writer.request("POST", rtype, json=d.resource, headers=headers)
                except FhirServerError as exc:
                    if is_refusal(exc.status, exc.operation_outcome):
                        kind = Refused("conditional-create", rtype) if conditional else None
                        raise Learned(kind or Refused("interaction", rtype, "create")) from exc
                    raise
                except WriteOutcomeUnknown:
                    naming.lost([w])
                    raise
                if not conditional or answer.resent:
                    # resent: a server that ignores If-None-Exist created it twice
                    plain.append(w)
                # a conditional create answers 200 when it found the resource; a plain create
                # made it whatever its 2xx (some servers answer 200)
                if answer.status == 201 or answer.resent or not conditional:
                    made = _made(answer.location, answer.body, w)
                    if made is None:
                        unlocated.append(w)
                        if answer.resent:
                            unlocated_resent.add(d.identifier)
                    else:
                        changed.append(made)
                        naming.confirm(w, made)
                        if answer.resent:
                            resent.append(made)
            elif _deletes(w):
                url = f"{rtype}/{w.existing_id}"
                try:
                    await writer.request("DELETE", url)
                except NotFound:
                    continue  # gone already
                except FhirServerError as exc:
                    if is_refusal(exc.status, exc.operation_outcome):
                        raise Learned(Refused("interaction", rtype, "delete")) from exc
                    raise
                changed.append(url)
                naming.confirm(w, url)
            else:
                headers = {"If-Match": f'W/"{w.existing_version}"'} if w.existing_version else {}
                url = f"{rtype}/{w.existing_id}"
                try:
                    answer = await writer.request(
                        "PUT", url, json={**d.resource, "id": w.existing_id}, headers=headers
                    )
                except PreconditionFailed:
                    naming.lost([w])  # a real change meanwhile, or our lost first try
                    raise
                except FhirServerError as exc:
                    if is_refusal(exc.status, exc.operation_outcome):
                        raise Learned(Refused("interaction", rtype, "update")) from exc
                    raise
                except WriteOutcomeUnknown:
                    naming.lost([w])
                    raise
                changed.append(url)
                naming.confirm(w, url)
    finally:
        # what was written is written: name it in the one Provenance even if a later write fails
        located = await _locate(writer, unlocated, requests, naming, changed)
        resent += [ref for ident, ref in located.items() if ident in unlocated_resent]
        if changed or naming.targets:
            await _check_duplicates(writer, plain, requests, duplicates, changed, resent)
            await _post_provenance(writer, provenance, changed, requests, naming)


async def _check_duplicates(
    writer: FhirClient,
    created: Sequence[PlannedWrite],
    requests: dict[str, int],
    duplicates: list[str],
    changed: list[str],
    resent: Collection[str] = (),
) -> None:
    """Search-then-create (no conditional create on the server) has a race: another writer may
    create the same resource between our search by identifier and our POST. After the creates,
    one search per type by their identifiers finds such duplicates; the one with the lowest id
    is kept (every writer picks the same) and the others are deleted where the server allows
    it, else marked ``entered-in-error`` where it allows updates, else kept; each is reported in
    ``duplicates`` (later runs update the kept one only). ``changed`` (what the Provenance will
    name) names the kept copy too where a copy it names was made by a resent create
    (``resent``): the kept one may be what the lost first try made. A kept copy that another
    writer made is that writer's to name."""
    if not created:
        return
    caps = await writer.capabilities()
    found = await _find_existing(writer, [w.derived for w in created], requests)
    wanted = {w.derived.identifier for w in created}
    by_ident: dict[str, list[Json]] = {}
    for r in found:
        ident = identifier_of(r)
        if ident in wanted and r.get("status") != RETIRED:  # a copy already retired is settled
            by_ident.setdefault(ident, []).append(r)
    for ident, copies in sorted(by_ident.items()):
        if len(copies) < 2:
            continue
        copies.sort(key=lambda r: str(r.get("id")))
        rtype = str(copies[0].get("resourceType"))
        if not caps.allows(rtype, "delete"):
            if rtype in RETIRABLE and caps.allows(rtype, "update"):
                for extra in copies[1:]:  # no delete: the extra copies are marked void
                    await _retire(writer, extra, requests)
                _name_kept(changed, copies, resent)
                log.warning("a concurrent create duplicated a %s; the extra copies retired", rtype)
                duplicates.append(
                    f"{rtype} {ident}: {len(copies)} copies (a concurrent create); the server "
                    "refuses delete, so the others were marked entered-in-error (the one with "
                    "the lowest id is kept and updated)"
                )
                continue
            log.warning(
                "%d %s resources share a derived identifier (a concurrent create); kept all",
                len(copies),
                rtype,
            )
            duplicates.append(
                f"{rtype} {ident}: {len(copies)} copies (a concurrent create); the server "
                f"refuses delete, so all were kept (the one with the lowest id is updated)"
            )
            continue
        for extra in copies[1:]:
            requests["write"] = requests.get("write", 0) + 1
            with contextlib.suppress(NotFound):
                await writer.request("DELETE", f"{rtype}/{extra.get('id')}")
        _name_kept(changed, copies, resent)
        log.warning("a concurrent create duplicated a %s; the extra copies were deleted", rtype)


def _name_kept(changed: list[str], copies: Sequence[Json], resent: Collection[str]) -> None:
    """Where ``changed`` names an extra copy of ``copies`` (the first is kept) that a resent
    create made, it names the kept one too: the create's lost first try may have made it."""
    refs = [f"{c.get('resourceType')}/{c.get('id')}" for c in copies]
    if not resent or refs[0] in changed:
        return
    if any(ref in resent and ref in changed for ref in refs[1:]):
        changed.append(refs[0])


async def _retire(writer: FhirClient, copy: Json, requests: dict[str, int]) -> None:
    """Mark a duplicate that a race created ``entered-in-error`` (where delete is refused): the
    kept copy (lowest id) stays the one every later run reads and updates."""
    rtype, rid = copy.get("resourceType"), copy.get("id")
    version = (copy.get("meta") or {}).get("versionId")
    headers = {"If-Match": f'W/"{version}"'} if version else None
    requests["write"] = requests.get("write", 0) + 1
    with contextlib.suppress(NotFound, PreconditionFailed):  # gone, or the other writer did it
        await writer.request(
            "PUT", f"{rtype}/{rid}", json={**copy, "status": RETIRED}, headers=headers
        )


async def _post_provenance(
    writer: FhirClient,
    provenance: Json | None,
    changed: Sequence[str],
    requests: dict[str, int],
    naming: _Naming,
) -> None:
    """One Provenance naming ``changed`` and the lost writes found made (then named)."""
    targets = naming.and_(changed)
    if provenance is None or not targets:
        return
    prov = {**provenance, "target": [{"reference": t} for t in targets]}
    requests["write"] = requests.get("write", 0) + 1
    try:
        await writer.request("POST", "Provenance", json=prov)
    except FhirServerError as exc:
        if not is_refusal(exc.status, exc.operation_outcome):
            raise
        # what it names is written; the server keeps no Provenance: learnt, and reported
        writer.learn(Refused("interaction", "Provenance", "create"))
        naming.refused = True
    naming.targets.clear()
