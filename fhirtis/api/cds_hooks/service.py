"""The CDS Hooks endpoints: discovery, a service call (prefetch, fetch, evaluate, cards), and
the warm-up at start-up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhirtis.api.access import read_limited, read_not_granted
from fhirtis.api.cds_hooks.cards import (
    check_order,
    exceeded_card,
    max_rate_card,
    merged_card,
    risk_card,
    risk_labels,
    tis_card,
    unread_order_card,
)
from fhirtis.api.cds_hooks.fetch import Fetched, fetch_missing, fetch_referenced, reader
from fhirtis.api.cds_hooks.request import (
    SERVICES,
    USAGE_REQUIREMENTS,
    CdsError,
    CdsService,
    Gathered,
    HookCall,
    Template,
    bad,
    parse_call,
    parse_feedback,
    prefetch_templates,
    reports_partial,
    take_prefetch,
)
from fhirtis.api.cds_hooks.trust import CdsClientVerifier
from fhirtis.api.limits import MAX_JSON_DEPTH, nested_deeper_than
from fhirtis.api.ops import Metrics, Timer, audit
from fhirtis.clinical.ivig import DosingWeight, OrderWeight, format_decimal, order_dosing_weight
from fhirtis.clinical.patient import PatientEvaluation, evaluate_patient
from fhirtis.clinical.policy import Policy
from fhirtis.fhir.bundle import (
    PatientResources,
    alias_references,
    names_elsewhere,
    on_base,
    substance_refs_of,
)
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import PatientData, replaced_by
from fhirtis.fhir.extract.common import resolve_reference
from fhirtis.fhir.needs import CAN_GO_WITHOUT, NEEDS
from fhirtis.fhir.orders import (
    IvigOrder,
    RateKind,
    draft_medication_requests,
    medication_reference,
    read_ivig_order,
    unread_ig_orders,
)
from fhirtis.fhir.primitives import is_id
from fhirtis.fhir.units import UnitError, convert
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.off_loop import off_the_loop
from fhirtis.pipeline.offline import Answers, ask_terminology, extractor_for
from fhirtis.settings import Settings

log = logging.getLogger("fhirtis.api.cds")
Json = dict[str, Any]


@dataclass
class _CdsContext:
    """Per app: built once from its settings."""

    settings: Settings
    templates: tuple[Template, ...]
    discovery: Json


def _context(request: Request) -> _CdsContext:
    app_state = request.app.state
    ctx: _CdsContext | None = getattr(app_state, "fhirtis_cds", None)
    if ctx is None:
        settings: Settings = app_state.fhirtis.settings
        templates = prefetch_templates(extractor_for(settings).t)
        prefetch = {t.key: t.query for t in templates}
        discovery = {
            "services": [
                {
                    "hook": s.hook,
                    "id": s.id,
                    "title": s.title,
                    "description": s.description.format(
                        max=format_decimal(settings.policy.max_rate_mg_kg_min),
                        max_risk=format_decimal(settings.policy.max_rate_with_risk_mg_kg_min),
                    ),
                    "prefetch": prefetch,
                    "usageRequirements": USAGE_REQUIREMENTS,
                }
                for s in SERVICES.values()
            ]
        }
        ctx = _CdsContext(settings, templates, discovery)
        app_state.fhirtis_cds = ctx
    return ctx


# --------------------------------------------------------------------------------------------
# evaluation (the pipeline's extraction and rules, without deriving resources)


@dataclass
class _Evaluated:
    data: PatientData
    evaluation: PatientEvaluation
    order_weight: OrderWeight  # the dosing weight of the cycle an order given now belongs to
    now: datetime
    policy: Policy

    def weight_of(self, order: IvigOrder) -> OrderWeight:
        """The dosing weight of the cycle ``order``'s infusion belongs to: counted from the
        earliest start the order gives (:attr:`IvigOrder.starts`, on the records' calendar: a
        date only is the start of that day there) when that lies on a later day than now (an
        order signed ahead, for next month's cycle), else from now (clinical spec §4)."""
        if not order.starts:
            return self.order_weight
        zone = self.now.tzinfo

        def on_calendar(start: tuple[datetime, bool]) -> datetime:
            at, date_only = start
            if date_only:  # the start of that day on the records' calendar
                return datetime(at.year, at.month, at.day, tzinfo=zone)
            return at.astimezone(zone)

        # the earliest day on the records' calendar: a date and a dateTime in another offset
        # are not ordered by their UTC instants (2024-05-17 before 2024-05-16T20:00-05:00)
        at = min(on_calendar(start) for start in order.starts)
        if at.date() <= self.now.date():
            return self.order_weight
        data = self.data
        return order_dosing_weight(
            at, self.evaluation.exposure, data.weights, data.heights, data.patient, self.policy
        )

    @property
    def weight(self) -> DosingWeight:
        """The dosing weight of an order given now (:attr:`order_weight`'s)."""
        return self.order_weight.weight


def _now() -> datetime:
    return datetime.now(UTC)


def on_records_calendar(now: datetime, data: PatientData) -> datetime:
    """``now`` (the same instant) in the UTC offset of the patient's latest record: the day
    rules (a weight "on or before" now, the latest PGA, a risk factor's day) compare calendar
    dates as the records give them (clinical spec §4, §5.3), and in UTC "now" may lie on
    another date than the records' (09:00+10:00 on the 11th is 23:00Z on the 10th: a weight
    taken an hour before would be dated after it). The offset is the latest record's with a
    time of day (a date-only one gives none); unchanged without one."""
    zone = data.records_zone
    return now.astimezone(zone) if zone is not None else now


def evaluate(
    resources: PatientResources, settings: Settings, now: datetime, answers: Answers | None = None
) -> _Evaluated:
    """What :func:`fhirtis.pipeline.offline.evaluate_patient_resources` computes "as of" ``now``,
    minus the derived resources; and the dosing weight of an order given now: that of the
    cycle its infusion belongs to, the ongoing one it continues or a new one starting now, as the
    pipeline computes it once the infusion is recorded (clinical spec §4,
    :func:`~fhirtis.clinical.ivig.order_dosing_weight`). ``answers``: the terminology server's,
    for codes the shipped ValueSets leave unclassified."""
    extractor = extractor_for(settings, answers)
    data = extractor.extract(resources.patient_ref, resources.resources, resources.resolve)
    now = on_records_calendar(now, data)
    evaluation = evaluate_patient(data.facts(), settings.policy, as_of=now)
    weight = order_dosing_weight(
        now, evaluation.exposure, data.weights, data.heights, data.patient, settings.policy
    )
    return _Evaluated(data, evaluation, weight, now, settings.policy)


# --------------------------------------------------------------------------------------------
# the endpoints


def _json(body: Any, status: int = 200) -> Response:
    # a lone surrogate (JSON's "\\ud800" parses to one) is written back as that escape
    text = dumps(body, indent=None).encode("utf-8", "backslashreplace")
    return Response(text, status_code=status, media_type="application/json")


def _error(exc: CdsError) -> Response:
    return _json({"error": exc.error, "message": exc.message}, exc.status)


async def _body(request: Request) -> Any:
    """The request body's JSON, parsed off the event loop (a prefetch of thousands of
    resources takes a large part of a second)."""
    return await off_the_loop(_parsed, await request.body())


class _NotAJsonNumberError(ValueError):
    """A number JSON does not have: ``NaN``, ``Infinity``, ``-Infinity`` (RFC 8259 §6), or one
    past a double's range (``1e400``), which Python's ``json`` would read as ``nan``/``inf``."""


def _no_constant(text: str) -> Any:
    raise _NotAJsonNumberError(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotAJsonNumberError(text)
    return value


def _parsed(raw: bytes) -> Any:
    try:
        body = json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except _NotAJsonNumberError:
        raise bad(
            "the request body is not JSON: it has a number JSON does not have (NaN, Infinity) "
            "or one too large to be read"
        ) from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise bad("the request body is not JSON") from None
    if nested_deeper_than(body):
        raise bad(f"the request body nests more than {MAX_JSON_DEPTH} levels deep")
    return body


async def _answer(
    request: Request, service: CdsService, audit_to: dict[str, Any]
) -> tuple[Json, dict[str, int]]:
    ctx = _context(request)
    call = parse_call(await _body(request), service)
    audit_to["patient"] = call.patient_id
    stats = {"orders": 0, "ivig": 0, "fetched": 0}
    not_read: dict[str, str] = {}  # types the FHIR server offers no search of
    forbidden: list[str] = []  # types the evaluation can go without that the token may not read
    unprefetched: list[str] = []  # such types neither prefetched nor readable (no fhirServer)
    partly: list[str] = []  # such types prefetched in part (gathered.partial), the rest unread
    withheld_types: set[str] = set()  # the types of those two lists
    call.draft_orders = _referable(call.draft_orders)
    requests = draft_medication_requests(call.draft_orders, call.selections)
    stats["orders"] = len(requests)
    if not requests:
        return {"cards": []}, stats

    gathered = Gathered()
    missing = await off_the_loop(take_prefetch, call, ctx.templates, gathered)  # 0.2 s per 20,000
    draft_resolve = dict(gathered.resolve)
    drafts = Gathered()
    drafts.add_bundle(call.draft_orders)
    draft_resolve.update(drafts.resolve)
    # a Medication named by its absolute URL on fhirServer: "Medication/id" there
    on_server = {
        ref: local
        for _, r in requests
        if (ref := medication_reference(r)) is not None
        and (local := _on_server(ref, call.fhir_server)) is not None
    }
    alias_references(draft_resolve, on_server)
    # the Substances that the Medications known so far name as an ingredient; what stays
    # unresolved, in words, for the risk card
    unresolved_targets: set[str] = set()
    asked: set[str] = set()  # the Type/ids read by id in this call: none is asked for twice
    await _read_referenced(
        request, call, gathered, _INGREDIENTS, unresolved_targets, stats, asked, draft_resolve
    )

    extractor = extractor_for(ctx.settings)

    def ivig_orders(resolve: Mapping[str, Json]) -> list[IvigOrder]:
        found = (read_ivig_order(extractor, ref, r, resolve) for ref, r in requests)
        return [o for o in found if o is not None]

    orders = ivig_orders(draft_resolve)
    # orders naming an immune globulin whose Medication cannot be read: said, not dropped
    unread = unread_ig_orders(extractor, requests, draft_resolve)
    # an order naming a Medication that is neither contained, in draftOrders nor prefetched
    unresolved = sorted(
        {
            ref
            for _, r in requests
            if (ref := medication_reference(r)) is not None
            and ref not in draft_resolve
            and (_is_medication_ref(ref) or ref in on_server)
        }
    )
    if not orders and not unread and not unresolved:
        return {"cards": []}, stats
    merged = _merged(gathered, call.patient_id)
    if merged is not None and (orders or unread):  # whatever the missing data would hold
        stats["ivig"] = len(orders)
        return {"cards": [merged]}, stats
    if missing or unresolved:
        source = reader(request, call)
        if isinstance(source, str):
            # CDS Hooks 2.0 Prefetch Template: a client "MAY choose to honor some or all of the
            # desired prefetch templates"; 412 is for data the service cannot do without. A
            # risk-factor key left out or failed (an OperationOutcome) is withheld, as a type
            # refused 403 is, and one sent without its template's whole answer (one page of
            # several, ...) is used, said to be only part of the data
            needed = [t for t in missing if t.resource_type not in CAN_GO_WITHOUT]
            if needed and (orders or unread):
                keys = [t.key for t in needed]
                unsatisfied = {k: why for k, why in gathered.unsatisfied.items() if k in keys}
                lacks = _lacking(keys, unsatisfied)
                raise CdsError(412, "precondition-failed", f"{lacks}, and {source}")
            withheld = [t for t in missing if t not in needed]
            unused = [t for t in withheld if t.key not in gathered.partial]
            failed = {t.resource_type for t in unused if t.key in gathered.unsatisfied}
            unprefetched = sorted(
                {
                    f"{r} (its prefetch failed)" if r in failed else r
                    for r in (t.resource_type for t in unused)
                }
            )
            partly = sorted({t.resource_type for t in withheld if t.key in gathered.partial})
            withheld_types = {t.resource_type for t in withheld}
            if missing and not (orders or unread):
                return {"cards": []}, stats  # no order is known to be IVIG
            unresolved = []  # answer for the orders known; the others cannot be identified
        else:
            # a type the token's scope clearly does not grant is not asked for (CDS Hooks 2.0
            # fhirAuthorization.scope: "The scopes the access token grants the CDS Service")
            forbidden = sorted(
                {
                    t.resource_type
                    for t in missing
                    if t.resource_type in CAN_GO_WITHOUT
                    and call.scope is not None
                    and read_not_granted(call.scope, t.resource_type)
                }
            )
            page = ctx.settings.fhir.page_size if ctx.settings.fhir else 100
            to_read = [
                (t.for_patient(call.patient_id, page), t.all_pages)
                for t in missing
                if t.resource_type not in forbidden
            ]
            to_read += [(on_server.get(ref, ref), False) for ref in unresolved]
            server, token = source
            fetched = (
                await fetch_missing(request, server, token, to_read, call.patient_id)
                if to_read
                else Fetched([])
            )
            not_read = fetched.not_read
            forbidden += fetched.forbidden
            gathered.incomplete += fetched.incomplete  # searched one at a time, answered in part
            for url, resource in fetched.results:
                if resource is None:
                    continue
                if resource.get("resourceType") == "Bundle":
                    if reports_partial(resource):
                        gathered.incomplete.append(url.split("?", 1)[0])
                    gathered.add_bundle(resource)
                else:
                    gathered.add(resource)
            stats["fetched"] = len(to_read)
            resolve = {**gathered.resolve, **drafts.resolve}
            alias_references(resolve, on_server)
            await _read_referenced(
                request, call, gathered, _INGREDIENTS, unresolved_targets, stats, asked, resolve
            )
            orders = ivig_orders(resolve)
            unread = unread_ig_orders(extractor, requests, resolve)
    stats["ivig"] = len(orders)
    if not orders and not unread:
        return {"cards": []}, stats
    merged = _merged(gathered, call.patient_id)
    if merged is not None:
        return {"cards": [merged]}, stats

    # what a search's _include should have brought (the client's FHIR server ignored it, or a
    # server fhirtis read did): read by id where it can be, else said; then the Substances that
    # the Medications read name (an immune globulin named only by an unread one is not seen)
    forbidden += await _read_referenced(
        request, call, gathered, _INCLUDED, unresolved_targets, stats, asked
    )
    await _read_referenced(request, call, gathered, _INGREDIENTS, unresolved_targets, stats, asked)

    patient_ref = f"Patient/{call.patient_id}"
    listed = [
        (key, r)
        for key, r in gathered.listed.items()
        if r.get("resourceType") not in {"Bundle", "OperationOutcome"}
        and (r.get("resourceType") != "Patient" or r.get("id") == call.patient_id)
    ]
    resources = PatientResources(patient_ref, listed, gathered.resolve, [])
    _before_the_deadline(request)
    answers = await ask_terminology(resources, ctx.settings)  # None without a server
    _before_the_deadline(request)
    # off the event loop: the call's deadline answers 504 on time even while it runs (it then
    # ends in its thread, unused); the probes and other calls are served meanwhile
    result = await off_the_loop(evaluate, resources, ctx.settings, _now(), answers)
    thr = result.evaluation.thrombosis
    limit = thr.max_rate_now
    excluded = sum(1 for i in result.data.issues if i.severity in {"error", "fatal"})

    forbidden = sorted({*gathered.forbidden, *forbidden})
    if forbidden:  # for the operator: the token's scope (types only, never patient data)
        log.warning(
            "cds %s: answered without %s: not allowed to read", service.id, ", ".join(forbidden)
        )
    if unprefetched:  # for the operator: the client's prefetch configuration (types only)
        log.warning(
            "cds %s: answered without %s: not prefetched, no fhirServer",
            service.id,
            ", ".join(unprefetched),
        )
    if partly:  # for the operator: the client's prefetch (types only)
        log.warning(
            "cds %s: answered with part of %s: prefetched in part, no fhirServer",
            service.id,
            ", ".join(partly),
        )
    # types the token's scope grants only through granular scopes (SMART 2.x: a search of
    # them may answer 200 without the rest): what was read or prefetched is part of the type
    limited = {
        rtype: scopes
        for rtype in sorted({t.resource_type for t in ctx.templates} | _INCLUDED)
        if call.scope is not None
        and rtype not in {*forbidden, *not_read, *(withheld_types - set(partly))}  # unread
        and (scopes := read_limited(call.scope, rtype))
    }
    if limited:  # for the operator: the token's scope (types only)
        log.warning(
            "cds %s: answered with part of %s: the token's scope grants only part of them",
            service.id,
            ", ".join(limited),
        )
    cards = [
        risk_card(
            thr.current,
            excluded,
            sorted(not_read),
            sorted(set(gathered.incomplete)),
            forbidden,
            unprefetched,
            partly,
            sorted(unresolved_targets),
            limited,
        )
    ]
    for order in orders:
        ordered = result.weight_of(order)
        check = check_order(order, limit, ordered.weight)
        cards.append(max_rate_card(check, limit, ordered, result.now, excluded))
        exceeded = exceeded_card(check, limit)
        if exceeded is not None:
            cards.append(exceeded)
    cards += [unread_order_card(u, limit) for u in unread]
    tis = tis_card(
        result.evaluation, "Condition" in {*not_read, *forbidden, *withheld_types, *limited}
    )
    if tis is not None:
        cards.append(tis)
    return {"cards": cards}, stats


#: The resource types whose search includes what they reference (a medication's Medication, a
#: DeviceUseStatement's Device): (the element holding the reference, the type it names).
_INCLUDING: dict[str, tuple[str, str]] = {
    n.resource_type: (element, target)
    for n in NEEDS
    if (element := n.reference_element) is not None and (target := n.included_type) is not None
}


#: What :func:`_read_referenced` reads: the types the searches include, and the Substances that
#: Medications name as an ingredient (R4 ``Medication.ingredient.itemReference``,
#: Reference(Substance): :func:`~fhirtis.fhir.bundle.substance_refs_of`).
_INCLUDED = frozenset(target for _, target in _INCLUDING.values())
_INGREDIENTS = frozenset({"Substance"})


def _unresolved_targets(
    gathered: Gathered, resolve: Mapping[str, Json], server: str | None, types: Collection[str]
) -> dict[tuple[str, str], tuple[str | None, set[str]]]:
    """The references to ``types`` that resolve to nothing in ``resolve``: those of the
    patient's resources to what their search includes (``_include``), and those of the
    Medications in ``resolve`` to their ingredients' Substances. Each as (written, the type it
    should name) → (the ``Type/id`` it names on ``server``, None where it names nothing
    readable there: another server, a ``urn:uuid:``; the types of the resources naming it). A
    contained ``#id`` is the resource's own."""
    out: dict[tuple[str, str], tuple[str | None, set[str]]] = {}
    for r in gathered.listed.values():
        rtype = r.get("resourceType")
        found = _INCLUDING.get(rtype) if isinstance(rtype, str) else None
        if found is None or not isinstance(rtype, str) or found[1] not in types:
            continue
        element, target_type = found
        ref = r.get(element)
        written = ref.get("reference") if isinstance(ref, dict) else None
        if (
            not isinstance(written, str)
            or written.startswith("#")
            or resolve_reference(resolve, written) is not None
        ):
            continue
        local = (on_base(written, server) or written).partition("/_history/")[0]
        kind, _, rid = local.partition("/")
        readable = local if kind == target_type and is_id(rid) else None
        out.setdefault((written, target_type), (readable, set()))[1].add(rtype)
    if "Substance" in types:
        for med in list(resolve.values()):
            for written, key in substance_refs_of(med):
                if resolve_reference(resolve, written) is None:
                    readable = None if names_elsewhere(written, server) else key
                    out.setdefault((written, "Substance"), (readable, set()))[1].add("Medication")
    return out


async def _read_referenced(
    request: Request,
    call: HookCall,
    gathered: Gathered,
    types: Collection[str],
    unresolved: set[str],
    stats: dict[str, int],
    asked: set[str],
    resolve: dict[str, Json] | None = None,
) -> list[str]:
    """Read from ``fhirServer`` what the patient's resources, or the Medications in
    ``resolve`` (``gathered.resolve`` unless given), name of ``types`` but that resolves to
    nothing there (:func:`_unresolved_targets`): the Medications and Devices neither prefetched
    nor read (CDS Hooks 2.0 "Prefetch Template": the service checks the prefetched data
    "against its template" and retrieves "any additional necessary data"; a FHIR server that
    does not support ``_include`` ignores it, R4 search.html), and the Substances named as an
    ingredient, as ``fhirtis run`` reads them (an immune globulin named only by its
    ingredient's Substance, ATC J06BA02, is recognised). Each read goes into ``gathered`` and
    ``resolve``, by the reference as written too. What stays unresolved goes into
    ``unresolved`` in words (``Medication of MedicationStatement``) for the risk card: an
    estrogen or a catheter recorded there is not seen, and the card must not say "no risk
    factor found" as if it were. What ``asked`` holds (``Type/id``) was read by id earlier in
    the call and is not asked for again (a resource the server had not got is still missing);
    what is read now is added to it. Returns the types refused 403."""
    resolve = gathered.resolve if resolve is None else resolve
    targets = _unresolved_targets(gathered, resolve, call.fhir_server, types)
    if not targets:
        return []
    source = reader(request, call)
    wanted = sorted({local for local, _ in targets.values() if local is not None} - asked)
    refused: list[str] = []
    if wanted and not isinstance(source, str):
        server, token = source
        asked.update(wanted)
        found, refused = await fetch_referenced(request, server, token, wanted)
        stats["fetched"] += len(wanted)
        for resource in found:
            gathered.add(resource)
            resolve.setdefault(f"{resource.get('resourceType')}/{resource.get('id')}", resource)
    for (written, target_type), (local, _) in targets.items():
        # a Substance is found by its Type/id whether read or not (a draft's, a prefetched
        # one); a Medication or Device once read (now or earlier in the call)
        if (
            local is not None
            and local in resolve
            and (local in asked or target_type == "Substance")
        ):
            target = resolve[local]
            resolve.setdefault(written, target)
            if resolve is not gathered.resolve:  # the evaluation reads gathered.resolve
                gathered.resolve.setdefault(written, target)
    missing = {
        f"{target_type} of {user}"
        for (written, target_type), (_, users) in targets.items()
        if resolve_reference(resolve, written) is None
        for user in users
    }
    if missing:  # for the operator: types only, never ids
        why = "not included, not read" if types == _INCLUDED else "not read"
        log.warning("cds: answered without %s: %s", ", ".join(sorted(missing)), why)
    unresolved.update(missing)
    return refused


def _merged(gathered: Gathered, patient_id: str) -> Json | None:
    """The card for a merged record (:func:`~fhirtis.fhir.extract.replaced_by`), as ``fhirtis
    run`` fails it: never cards computed from the retired record's data."""
    successor = replaced_by(gathered.listed.get(f"Patient/{patient_id}"))
    return None if successor is None else merged_card(f"Patient/{patient_id}", successor)


def _referable(draft: Json) -> Json:
    """``draftOrders`` with a ``fullUrl`` (``urn:uuid:``) on each MedicationRequest entry that has
    neither an id nor a fullUrl (an unsaved order: FHIR needs no id in a collection Bundle), so
    that it is checked like any other order rather than passed over."""
    entries = draft.get("entry")
    if not isinstance(entries, list):
        return draft
    out = []
    for entry in entries:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if (
            isinstance(resource, dict)
            and resource.get("resourceType") == "MedicationRequest"
            and not is_id(resource.get("id"))
            and not isinstance(entry.get("fullUrl"), str)
        ):
            out.append({**entry, "fullUrl": f"urn:uuid:{uuid.uuid4()}"})
        else:
            out.append(entry)
    return {**draft, "entry": out}


def _lacking(missing: list[str], unsatisfied: Mapping[str, str]) -> str:
    """What prefetch lacks, in words: the keys not given, and those given without their
    template's whole answer (one page of a paged search, fewer matches than its total, ...)."""
    parts = []
    absent = [key for key in missing if key not in unsatisfied]
    if absent:
        parts.append(f"prefetch lacks {', '.join(absent)}")
    parts += [f"prefetch {key} {why}" for key, why in unsatisfied.items()]
    return "; ".join(parts)


def _is_medication_ref(ref: str) -> bool:
    kind, _, rid = ref.partition("/")
    return kind == "Medication" and is_id(rid)


def _on_server(ref: str, server: str | None) -> str | None:
    """``Medication/id`` for a reference ``[fhirServer]/Medication/id``
    (:func:`~fhirtis.fhir.bundle.on_base`), else None."""
    local = on_base(ref, server)
    return local if local is not None and _is_medication_ref(local) else None


def _past_the_deadline(request: Request, budget: float) -> CdsError:
    """The answer to a call that met its deadline (``cds.deadline_seconds``): 504, as a FHIR
    request that passed its own bound is answered (CDS Hooks 2.0 "HTTP Status Codes": a service
    "MAY return other HTTP statuses, specifically 4xx and 5xx"); no card from part of the data."""
    if getattr(request.state, "cds_waiting_on_fhir", False):
        return CdsError(
            504,
            "fhir-server-timeout",
            f"the FHIR server did not answer within the call's deadline ({budget:g} s, "
            "cds.deadline_seconds); stopped",
        )
    return CdsError(
        504, "timeout", f"the answer took longer than {budget:g} s (cds.deadline_seconds); stopped"
    )


def _before_the_deadline(request: Request) -> None:
    """TimeoutError where the call's deadline has passed: the evaluation is not started after
    it (the deadline's own cancellation reaches only a call that waits: it stops waiting for an
    evaluation that has started, which ends in its thread unused)."""
    deadline = getattr(request.state, "cds_deadline", None)
    if deadline is not None and asyncio.get_running_loop().time() >= deadline:
        raise TimeoutError


def ctx_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.fhirtis.settings
    return settings


def client_verifier(state: Any) -> CdsClientVerifier | None:
    """The check of CDS clients' JWTs: always in ``validate`` mode (no trusted client: every
    call is refused), in ``pass-through`` mode when trusted clients are configured."""
    settings: Settings = state.settings
    clients = settings.cds.trusted_clients
    if settings.service.auth_mode != "validate" and not clients:
        return None
    return CdsClientVerifier(clients, state.http)


def _called_url(request: Request) -> str:
    """The URL the caller called, as a CDS client's JWT names it in ``aud``: under
    ``service.public_base_url`` when set (the address behind a reverse proxy; the ``Host`` the
    request carries is the caller's to choose), else the URL the request arrived at."""
    public = ctx_settings(request).service.public_base_url
    if public is None:
        return str(request.url.replace(query=None, fragment=None))
    return public + request.url.path.removeprefix(request.scope.get("root_path", ""))


def warn_host_audience(settings: Settings) -> None:
    """At start-up, where CDS clients' JWTs are checked against trusted clients and
    ``service.public_base_url`` is unset: a warning for the operator that the JWT ``aud`` is
    compared with a URL built from the request's ``Host`` header, which the caller chooses (no
    patient data; the setting's name only)."""
    if settings.cds.trusted_clients and settings.service.public_base_url is None:
        log.warning(
            "cds: service.public_base_url is not set: a CDS client's JWT aud is compared with "
            "the URL built from each request's Host header, which the caller chooses; set "
            "FHIRTIS_SERVICE__PUBLIC_BASE_URL to the address CDS clients call (e.g. "
            "https://cds.example.org/fhirtis)"
        )


def install(app: FastAPI) -> None:
    """Add the CDS Hooks discovery and service endpoints to ``app``."""

    @app.get("/cds-services", tags=["CDS Hooks"], summary="CDS Hooks discovery")
    async def discovery(request: Request) -> Response:
        return _json(_context(request).discovery)

    @app.post("/cds-services/{service_id}", tags=["CDS Hooks"], summary="Call a CDS service")
    async def call_service(request: Request, service_id: str) -> Response:
        service = SERVICES.get(service_id)
        if service is None:
            return _error(CdsError(404, "unknown-service", "no CDS service has that id"))
        audit_to: dict[str, Any] = {"who": {"verified": False}, "patient": None}
        metrics: Metrics = request.app.state.fhirtis_metrics
        with Timer(metrics, "cds"):
            response = await _call(request, service, audit_to)
        audit("cds", audit_to["patient"], audit_to["who"], response.status_code, service=service.id)
        return response

    @app.post(
        "/cds-services/{service_id}/feedback",
        tags=["CDS Hooks"],
        summary="Feedback on a CDS service's cards",
    )
    async def feedback(request: Request, service_id: str) -> Response:
        """CDS Hooks 2.0 "Feedback": what the user did with the cards, counted in the log (never
        the cards' ids, the override comments or anything else the client sent); 200 ``{}``."""
        service = SERVICES.get(service_id)
        if service is None:
            return _error(CdsError(404, "unknown-service", "no CDS service has that id"))
        who: dict[str, Any] = {"verified": False}
        try:
            verifier: CdsClientVerifier | None = request.app.state.fhirtis_cds_verifier
            if verifier is not None:
                here = _called_url(request)
                audiences = (here, here.rstrip("/").removesuffix("/feedback"))
                caller = await verifier.verify(request.headers.get("authorization"), audiences)
                who = {"verified": True, "iss": caller.iss, "sub": caller.sub}
            outcomes = parse_feedback(await _body(request))
        except StarletteHTTPException as http_exc:  # 413 from the body limit
            response = _error(
                CdsError(http_exc.status_code, "request-refused", str(http_exc.detail))
            )
        except CdsError as exc:
            response = _error(exc)
        else:
            log.info(
                "cds %s feedback: %d accepted, %d overridden",
                service.id,
                outcomes.count("accepted"),
                outcomes.count("overridden"),
            )
            response = _json({})
        audit("cds-feedback", None, who, response.status_code, service=service.id)
        return response

    async def _call(request: Request, service: CdsService, audit_to: dict[str, Any]) -> Response:
        started = time.perf_counter()
        # one deadline for the whole call, from its arrival: every read of the FHIR server (the
        # searches, then the Medications, Devices and Substances read by id), the terminology
        # server and the evaluation (in a thread: the deadline answers while it runs); the reads
        # in flight at the deadline are cancelled
        budget = ctx_settings(request).cds.deadline_seconds
        deadline = asyncio.get_running_loop().time() + budget
        request.state.cds_deadline = deadline
        try:
            verifier: CdsClientVerifier | None = request.app.state.fhirtis_cds_verifier
            if verifier is not None:  # bounded on its own (JWKS_FETCH_SECONDS), shared by calls
                audience = _called_url(request)
                caller = await verifier.verify(request.headers.get("authorization"), audience)
                audit_to["who"] = {"verified": True, "iss": caller.iss, "sub": caller.sub}
            async with asyncio.timeout_at(deadline):
                answer, stats = await _answer(request, service, audit_to)
        except TimeoutError:
            exc = _past_the_deadline(request, budget)
            log.info("cds %s: %d %s", service.id, exc.status, exc.error)
            return _error(exc)
        except StarletteHTTPException as http_exc:  # 413 from the body limit
            exc = CdsError(http_exc.status_code, "request-refused", str(http_exc.detail))
            log.info("cds %s: %d %s", service.id, exc.status, exc.error)
            return _error(exc)
        except CdsError as exc:
            log.info("cds %s: %d %s", service.id, exc.status, exc.error)
            return _error(exc)
        except Exception as exc:
            log.error("cds %s: unexpected error: %s", service.id, type(exc).__name__)
            return _error(CdsError(500, "internal-error", "internal error"))
        log.info(
            "cds %s: %d order(s), %d IVIG, %d read(s), %d card(s) in %.0f ms",
            service.id,
            stats["orders"],
            stats["ivig"],
            stats["fetched"],
            len(answer["cards"]),
            (time.perf_counter() - started) * 1000,
        )
        return _json(answer)

    # Load the code tables and the UCUM registry (about 3 s) while the app starts, so that the
    # first hook call is as fast as the others.
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with inner(app_) as state:
            app_.state.fhirtis_cds_verifier = client_verifier(app_.state.fhirtis)
            warn_host_audience(app_.state.fhirtis.settings)
            await asyncio.to_thread(warm_up)
            yield state

    app.router.lifespan_context = lifespan


_WARM_UNITS = ("mL/h", "mL/min", "g/h", "mg/h", "mg/min", "mg/kg/min", "mg/kg/h", "mL/kg/h")


def warm_up() -> None:
    """Load what the first call would otherwise load: profiles/ and the UCUM conversions of the
    usual infusion rate units."""
    try:
        terminology()
        risk_labels()
        for unit in _WARM_UNITS:
            for kind in RateKind:
                with contextlib.suppress(UnitError):
                    convert(Decimal(1), unit, kind.canonical)
    except Exception as exc:  # the same failure shows, properly, on the first call
        log.warning("cds warm-up failed: %s", type(exc).__name__)
