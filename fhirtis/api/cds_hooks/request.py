"""A CDS Hooks call: the services, their prefetch templates, the checked request, and the
prefetched data gathered by reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fhirtis.api.access import is_b64token
from fhirtis.clinical.facts import FhirTime
from fhirtis.fhir.codes import Terminology
from fhirtis.fhir.extract.common import ExcludedError, first_fhir_time
from fhirtis.fhir.extract.observations import OBSERVATION_TIME
from fhirtis.fhir.needs import CAN_GO_WITHOUT, export_types, prefetch_queries
from fhirtis.fhir.primitives import is_id
from fhirtis.fhir.resource_types import KNOWN_RESOURCE_TYPES
from fhirtis.io import link_of, next_link
from fhirtis.pipeline.pull import partial_results

Json = dict[str, Any]

PATIENT_TOKEN = "{{context.patientId}}"


@dataclass(frozen=True)
class CdsService:
    id: str
    hook: str
    title: str
    description: str


_DESCRIPTION = (
    "the patient's thromboembolism risk factors, the maximum infusion rate that applies ({max} "
    "mg/kg/min, or {max_risk} with any risk factor) in mg/kg/min and mL/h, a suggestion to "
    "lower a faster ordered rate, and the latest myositis Total Improvement Score."
)
SERVICES: Mapping[str, CdsService] = {
    s.id: s
    for s in (
        CdsService(
            "fhirtis-ivig-order-sign",
            "order-sign",
            "IVIG infusion rate and thromboembolism risk (order-sign)",
            "For each draft IVIG order being signed: " + _DESCRIPTION,
        ),
        CdsService(
            "fhirtis-ivig-order-select",
            "order-select",
            "IVIG infusion rate and thromboembolism risk (order-select)",
            "For each selected draft IVIG order: " + _DESCRIPTION,
        ),
    )
}

_NEEDED = [t for t in export_types() if t not in CAN_GO_WITHOUT]
USAGE_REQUIREMENTS = (
    "Provide every prefetch key (null where there are no data), or fhirServer with "
    "fhirAuthorization for a FHIR server on this service's allow-list so that the service can "
    "read what is missing; otherwise the service answers 412 for a missing Patient, "
    "Observation or MedicationAdministration key, and the risk card names any other type "
    "left unread. The access token (and the "
    f"prefetch) must be allowed to read and search {', '.join(_NEEDED[:-1])} and "
    f"{_NEEDED[-1]} (without them the answer is 412), and should be allowed "
    f"{', '.join(sorted(CAN_GO_WITHOUT))} (the risk card names any it may not read: a risk "
    "factor recorded there is missed). Draft IVIG orders should name a Medication with "
    "ingredient.strength so that rates can be given in mL/h."
)


# --------------------------------------------------------------------------------------------
# prefetch templates


@dataclass(frozen=True)
class Template:
    key: str
    query: str  # with the {{context.patientId}} token
    all_pages: bool  # False: a "latest n" query, its first page is all that is wanted

    def for_patient(self, patient_id: str, page_size: int) -> str:
        url = self.query.replace(PATIENT_TOKEN, patient_id)
        if self.all_pages and "?" in url:
            url += f"&_count={page_size}"
        return url

    @property
    def resource_type(self) -> str:
        return self.query.split("?")[0].split("/")[0]


def _token(system: str, code: str) -> str:
    return quote(f"{system}|{code}", safe="|:/")


def prefetch_templates(terms: Terminology) -> tuple[Template, ...]:
    """Everything the risk factors, the dosing weight now and the TIS course need (from
    :mod:`fhirtis.fhir.needs`, the single list of a patient's reads)."""
    return tuple(Template(*q) for q in prefetch_queries(terms, PATIENT_TOKEN))


# --------------------------------------------------------------------------------------------
# the request


class CdsError(Exception):
    """A CDS Hooks error: a plain HTTP status with a short JSON body."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def bad(message: str) -> CdsError:
    return CdsError(400, "invalid-request", message)


@dataclass
class HookCall:
    hook: str
    patient_id: str
    draft_orders: Json
    selections: list[str] | None
    fhir_server: str | None
    access_token: str | None
    prefetch: dict[str, Any]
    # fhirAuthorization.scope: "The scopes the access token grants the CDS Service" (SMART)
    scope: str | None = None


def parse_call(body: Any, service: CdsService) -> HookCall:
    """The hook call, checked; raises a 400 :class:`CdsError` naming what is wrong."""
    if not isinstance(body, dict):
        raise bad("the request body must be a JSON object")
    hook = body.get("hook")
    if not isinstance(hook, str) or not hook:
        raise bad("hook is required")
    if hook != service.hook:
        raise bad(f"service {service.id} answers the {service.hook} hook, not {hook}")
    instance = body.get("hookInstance")
    if not isinstance(instance, str) or not instance:
        raise bad("hookInstance is required")
    context = body.get("context")
    if not isinstance(context, dict):
        raise bad("context is required and must be an object")
    patient_id = context.get("patientId")
    if not is_id(patient_id):
        raise bad("context.patientId is required and must be a FHIR id")
    assert isinstance(patient_id, str)
    draft = context.get("draftOrders")
    if not isinstance(draft, dict) or draft.get("resourceType") != "Bundle":
        raise bad("context.draftOrders is required and must be a Bundle")
    if not isinstance(draft.get("entry", []), list):
        raise bad("context.draftOrders.entry must be an array")
    _check_draft_orders(draft.get("entry", []))
    selections: list[str] | None = None
    if hook == "order-select":  # CDS Hooks order-select: selections is required
        raw = context.get("selections")
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise bad("context.selections is required and must be an array of references")
        selections = list(raw)
        unknown = [s for s in selections if s not in _draft_references(draft)]
        if unknown:  # read as "nothing selected", a selected IVIG order would get no card
            raise bad(
                f"context.selections names {len(unknown)} order(s) not in context.draftOrders "
                "(a selection is a reference such as MedicationRequest/123)"
            )
    server = body.get("fhirServer")
    if server is not None and (not isinstance(server, str) or not server):
        raise bad("fhirServer must be a URL")
    auth = body.get("fhirAuthorization")
    token: str | None = None
    scope: str | None = None
    if auth is not None:
        if not isinstance(auth, dict):
            raise bad("fhirAuthorization must be an object")
        if server is None:
            raise bad("fhirAuthorization needs fhirServer")
        token = auth.get("access_token")
        if not isinstance(token, str) or not token:
            raise bad("fhirAuthorization.access_token is required")
        if not is_b64token(token):
            raise bad("fhirAuthorization.access_token is not a valid bearer token")
        token_type = auth.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise bad("fhirAuthorization.token_type must be Bearer")
        # a token restricted to another patient could read that patient's record, or nothing
        if auth.get("patient") is not None and auth.get("patient") != patient_id:
            raise bad("fhirAuthorization.patient is another patient than context.patientId")
        granted = auth.get("scope")
        scope = granted if isinstance(granted, str) else None
    prefetch = body.get("prefetch", {})
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        raise bad("prefetch must be an object")
    return HookCall(hook, patient_id, draft, selections, server, token, prefetch, scope)


def _draft_references(draft: Mapping[str, Any]) -> set[str]:
    """How a selection may name a draft order: ``Type/id``, or the entry's ``fullUrl``."""
    refs: set[str] = set()
    for entry in draft.get("entry", []):
        if not isinstance(entry, dict):
            continue
        resource, full_url = entry.get("resource"), entry.get("fullUrl")
        if isinstance(full_url, str):
            refs.add(full_url)
        if isinstance(resource, dict) and is_id(resource.get("id")):
            refs.add(f"{resource.get('resourceType')}/{resource['id']}")
    return refs


FEEDBACK_OUTCOMES = ("accepted", "overridden")


def parse_feedback(body: Any) -> list[str]:
    """The outcomes of a feedback call (CDS Hooks 2.0 "Feedback": ``{"feedback": [{card,
    outcome, acceptedSuggestions, overrideReason, outcomeTimestamp}]}``), checked; raises a
    400 :class:`CdsError` naming what is wrong."""
    items = body.get("feedback") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise bad("the request body must be an object with a feedback array")
    outcomes: list[str] = []
    for i, item in enumerate(items):
        where = f"feedback[{i}]"
        if not isinstance(item, dict):
            raise bad(f"{where} must be an object")
        for name in ("card", "outcomeTimestamp"):
            if not isinstance(item.get(name), str) or not item[name]:
                raise bad(f"{where}.{name} is required")
        outcome = item.get("outcome")
        if outcome not in FEEDBACK_OUTCOMES:
            raise bad(f"{where}.outcome must be accepted or overridden")
        accepted = item.get("acceptedSuggestions", [])
        if not isinstance(accepted, list) or not all(
            isinstance(a, dict) and isinstance(a.get("id"), str) for a in accepted
        ):
            raise bad(f"{where}.acceptedSuggestions must be an array of objects with an id")
        if not isinstance(item.get("overrideReason", {}), dict):
            raise bad(f"{where}.overrideReason must be an object")
        outcomes.append(outcome)
    return outcomes


@dataclass
class Gathered:
    """The patient's resources so far, and every resource by reference."""

    listed: dict[str, Json] = field(default_factory=dict)  # "Type/id" (or a fullUrl) → resource
    resolve: dict[str, Json] = field(default_factory=dict)
    # prefetch keys whose value does not hold its template's whole answer, and why (one page of
    # several, fewer matches than its total, a batch-response): read as if not given
    unsatisfied: dict[str, str] = field(default_factory=dict)
    # those of them that are Bundles (not a failed prefetch): what they hold is taken (a page
    # of the search, or none of it), the rest read where it can be
    partial: list[str] = field(default_factory=list)
    # prefetch keys (or types read) whose search said it returned only part of the matches
    incomplete: list[str] = field(default_factory=list)
    # types the evaluation can go without whose prefetch the client was refused (not read)
    forbidden: list[str] = field(default_factory=list)

    def add(self, resource: Json, full_url: str | None = None) -> None:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        key = f"{rtype}/{rid}" if isinstance(rid, str) else full_url or f"#{id(resource)}"
        self.listed.setdefault(key, resource)
        self.resolve.setdefault(key, resource)
        if full_url:
            self.resolve.setdefault(full_url, resource)

    def merge(self, other: Gathered) -> None:
        for key, resource in other.listed.items():
            self.listed.setdefault(key, resource)
        for key, resource in other.resolve.items():
            self.resolve.setdefault(key, resource)

    def add_bundle(self, bundle: Mapping[str, Any]) -> None:
        entries = bundle.get("entry")
        for entry in entries if isinstance(entries, list) else []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                full_url = entry.get("fullUrl")
                self.add(resource, full_url if isinstance(full_url, str) else None)


def take_prefetch(call: HookCall, templates: Sequence[Template], into: Gathered) -> list[Template]:
    """Put the prefetched data into ``into``; return the templates prefetch did not satisfy."""
    missing: list[Template] = []
    for t in templates:
        if t.key not in call.prefetch:
            missing.append(t)
            continue
        value = call.prefetch[t.key]
        if value is None:
            continue  # the client has no data for this template
        if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
            raise bad(f"prefetch.{t.key} must be a FHIR resource, a Bundle or null")
        kind = value["resourceType"]
        if kind == "OperationOutcome":
            if t.resource_type in CAN_GO_WITHOUT and _access_refused(value):
                # CDS Hooks 2.0: the outcome is sent "to prevent the CDS Service from incurring
                # an unneeded follow-up query"; the evaluation goes on without the type
                into.forbidden.append(t.resource_type)
                continue
            missing.append(t)  # the client failed to prefetch; read it if possible
            into.unsatisfied[t.key] = "is an OperationOutcome (the CDS client's prefetch failed)"
            continue
        if kind not in {"Bundle", t.resource_type}:
            raise bad(f"prefetch.{t.key} is a {kind}, not what its template asks for")
        if kind == "Bundle":
            _check_bundle(value, f"prefetch.{t.key}")
            why = _not_the_answer(value, t)
            if why is not None:
                # the rest may hold a risk factor: read as for a key not prefetched
                missing.append(t)
                into.unsatisfied[t.key] = why
                into.partial.append(t.key)
                if _not_an_answer(value) is not None:
                    continue  # its resources are not the search's matches
                # one page, or fewer matches than its total: real data, taken with the rest
            elif reports_partial(value):
                into.incomplete.append(t.key)
        found = Gathered()
        if kind == "Bundle":
            found.add_bundle(value)
        else:
            found.add(value)
        if any(
            r.get("resourceType") == "Patient" and r.get("id") != call.patient_id
            for r in found.listed.values()
        ):
            raise bad(f"prefetch.{t.key} holds another patient than context.patientId")
        into.merge(found)
    return missing


#: R4 IssueType codes of a refused access (the ``security`` family, less those of a failed
#: login or an expired session, which another token may not meet): "forbidden" (Oracle
#: Health's 403 to a missing scope), "security", "suppressed" (withheld by access rules).
_REFUSED_ACCESS = frozenset({"forbidden", "security", "suppressed"})


def _access_refused(outcome: Mapping[str, Any]) -> bool:
    """Whether a prefetched OperationOutcome says the client was not allowed the search."""
    issues = outcome.get("issue")
    return isinstance(issues, list) and any(
        isinstance(i, dict) and i.get("code") in _REFUSED_ACCESS for i in issues
    )


_ANSWERS = frozenset({"searchset", "collection"})  # the Bundles a template may be answered with


def _not_the_answer(bundle: Mapping[str, Any], t: Template) -> str | None:
    """Why a prefetched Bundle does not hold its template's whole answer (CDS Hooks 2.0
    "Prefetch Template": the data "MUST be equivalent to the data the CDS Service would receive"
    from the template's request; the service checks it against its template and reads what is
    not satisfied), or None:

    - a Bundle of another type (a ``batch-response`` of the client's own batch) or holding a
      Bundle: its resources are not the search's matches, and would be read as none;
    - one page of a paged search (a ``next`` link), where every page is wanted (a "latest n"
      template wants its first page only, if it is the latest: :func:`not_the_latest`);
    - fewer matches than its ``total`` says (R4 bundle.html: "the total number of entries of
      type 'match' across all pages"), up to the template's ``_count``."""
    why = _not_an_answer(bundle)
    if why is not None:
        return why
    kind = bundle.get("type")
    entries = _entries(bundle)
    if t.all_pages and next_link(dict(bundle)) is not None:
        return "is one page of a paged search (it has a next link); the other pages are needed"
    latest = None if t.all_pages else not_the_latest(bundle)
    if latest is not None:
        return latest
    total = bundle.get("total")
    if kind != "searchset" or not isinstance(total, int) or isinstance(total, bool):
        return None
    matches = sum(
        1
        for e in entries
        if e["resource"].get("resourceType") != "OperationOutcome" and _mode(e) == "match"
    )
    wanted = total if t.all_pages else min(total, _count(t.query))
    if matches < wanted:
        return f"holds {matches} of the {total} matches its total says; the others are needed"
    return None


def not_the_latest(bundle: Mapping[str, Any]) -> str | None:
    """Why the first page of a "latest n" search (``_sort=-date&_count=n``) may not hold the
    latest matches, or None. Only where the search has more matches than the page (a ``next``
    link, or a ``total`` above its matches): a server that does not support ``_sort`` ignores it
    (R4 search.html, "Handling Errors": unknown or unsupported parameters are ignored unless the
    client asks for strict handling), and its first page is then the oldest (or any) n: the
    dosing weight would be an older one. Matches that are not newest first say so; where the
    page has too few dated matches to show its order, a ``self`` link (which holds the
    parameters actually used) without ``_sort`` does. A page newest first is taken whatever
    its ``self`` link says (Oracle Health returns Observations newest first without ``_sort``)."""
    matches = [
        e["resource"]
        for e in _entries(bundle)
        if e["resource"].get("resourceType") != "OperationOutcome" and _mode(e) == "match"
    ]
    total = bundle.get("total")
    more = isinstance(total, int) and not isinstance(total, bool) and total > len(matches)
    if not more and next_link(dict(bundle)) is None:
        return None  # every match is here: the evaluation takes the latest of them
    spans = [when.span(None) for when in map(_effective, matches) if when is not None]
    if any(later[0] > earlier[1] for earlier, later in pairwise(spans)):
        return "is the first page of several, not newest first: the latest may be on another page"
    if len(spans) >= 2:
        return None  # newest first, as sorted (or as Oracle Health's default order, unsorted)
    # too few dates to show the order: the parameters used (its self link) say it
    used = link_of(dict(bundle), "self")
    if used is not None and "_sort" not in parse_qs(urlsplit(used).query):
        return (
            "is the first page of several and its self link has no _sort (the server did not "
            "sort it newest first): the latest may be on another page"
        )
    return None


def _effective(resource: Json) -> FhirTime | None:
    """An Observation's ``effective[x]`` (what its ``date`` search parameter, and so
    ``_sort=date``, orders by), the start of a Period; None where absent or unreadable."""
    try:
        return first_fhir_time(resource, OBSERVATION_TIME, "Observation")
    except ExcludedError:
        return None


def _entries(bundle: Mapping[str, Any]) -> list[Json]:
    return [e for e in bundle.get("entry") or [] if isinstance(e.get("resource"), dict)]


def _not_an_answer(bundle: Mapping[str, Any]) -> str | None:
    """Why a prefetched Bundle is not a search's answer at all (its resources are not the
    search's matches), or None."""
    kind = bundle.get("type")
    if kind is not None and (not isinstance(kind, str) or kind not in _ANSWERS):
        return f"is a {kind} Bundle, not the answer of its request (a searchset or the resource)"
    if any(e["resource"].get("resourceType") == "Bundle" for e in _entries(bundle)):
        return "holds Bundles, not the answer of its request (a searchset or the resource)"
    return None


def _mode(entry: Mapping[str, Any]) -> Any:
    search = entry.get("search")
    return search.get("mode", "match") if isinstance(search, dict) else "match"


def _count(query: str) -> int:
    """A "latest n" template's ``_count`` (its first page is all that is wanted)."""
    values = parse_qs(query.partition("?")[2]).get("_count", [])
    return int(values[0]) if values and values[0].isdigit() else 0


def reports_partial(bundle: Mapping[str, Any]) -> bool:
    """Whether a searchset's own OperationOutcome (``search.mode = outcome``) says that only
    part of the matches were returned (an error or fatal issue, or a code such as
    ``too-costly``: :func:`partial_results`, as ``fhirtis run`` reads it). Such a search read
    as complete would hide a risk factor behind "none found". So does a match whose
    ``resourceType`` is no FHIR resource type (``CONDITION``): what it holds is not read."""
    entries = bundle.get("entry")
    if any(
        isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") not in KNOWN_RESOURCE_TYPES
        for e in (entries if isinstance(entries, list) else [])
    ):
        return True
    outcomes = [
        e["resource"]
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict)
        and isinstance(e.get("resource"), dict)
        and e["resource"].get("resourceType") == "OperationOutcome"
    ]
    return bool(partial_results(outcomes))


def _check_bundle(bundle: Mapping[str, Any], where: str) -> None:
    """A prefetched Bundle whose entries cannot be read is refused (400): read as "no data",
    it would hide the patient's risk factors."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise bad(f"{where}.entry must be an array")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise bad(f"{where}.entry[{i}] must be an object")
        resource = entry.get("resource")
        if resource is not None and not (
            isinstance(resource, dict) and isinstance(resource.get("resourceType"), str)
        ):
            raise bad(f"{where}.entry[{i}].resource must be a FHIR resource")
        if resource is not None and resource["resourceType"] not in KNOWN_RESOURCE_TYPES:
            raise bad(f"{where}.entry[{i}].resource.resourceType is no FHIR R4 resource type")


def _check_draft_orders(entries: list[Any]) -> None:
    """Draft orders that cannot be read as given are refused (400): one whose
    ``resourceType`` is no FHIR resource type (``MEDICATIONREQUEST``: an IVIG order passed over
    would get no card), and two differing copies of one ``Type/id`` (which of them is signed
    is not known). The same copy twice is one order (``draft_medication_requests`` of
    :mod:`fhirtis.fhir.orders` reads it once)."""
    seen: dict[str, Any] = {}
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            continue  # no resource: nothing ordered (draft_medication_requests)
        rtype = resource["resourceType"]
        if rtype not in KNOWN_RESOURCE_TYPES:
            raise bad(
                f"context.draftOrders.entry[{i}].resource.resourceType is no FHIR R4 resource type"
            )
        if not is_id(resource.get("id")):
            continue
        key = f"{rtype}/{resource['id']}"
        first = seen.setdefault(key, resource)
        if first is not resource and first != resource:
            raise bad(
                f"context.draftOrders.entry[{i}] lists {key} again with other content: which "
                "of the two orders is meant is not known"
            )
