"""CDS Hooks 2.0 for IVIG orders: ``order-sign`` and ``order-select``.

``GET /cds-services`` lists two services (one per hook) with their prefetch templates;
``POST /cds-services/{id}`` answers a hook call with cards for every draft MedicationRequest of
IVIG in ``context.draftOrders`` (for ``order-select``: the selected ones):

1. the patient's thromboembolism (TEE) risk factors now, each with its evidence (DOMAIN.md §5.1);
2. the maximum infusion rate that applies (§5.2), in mg/kg/min and — for this patient's dosing
   weight now (§4) and the ordered product's concentration — in mL/h, rounded *down*; what is
   unknown (weight, concentration) is said, never guessed;
3. when an ordered rate is above that maximum: a warning with a suggestion (an ``update``
   action) setting the draft order's rate to the maximum;
4. the latest Total Improvement Score and response category, when a baseline exists.

Data come from ``prefetch`` when given (a resource, a searchset Bundle, or null for "none");
what is missing is read from ``fhirServer`` with ``fhirAuthorization.access_token`` — only if
that server is on the service's allow-list, and the token goes to that server only. When data
are missing and cannot be read, the answer is 412 (CDS Hooks' "Precondition Failed"). A call
whose orders hold no IVIG is answered ``{"cards": []}`` without reading anything.

Errors are plain HTTP statuses with a small JSON body ``{"error", "message"}`` (CDS Hooks does
not use OperationOutcome): 400 malformed request, 404 unknown service, 412 data missing and not
obtainable, 502/504 the FHIR server failed. Logs never hold patient data or tokens.

Nothing is written and no FHIR resource is derived: the evaluation runs the pipeline's
extraction and clinical rules only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal, localcontext
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from fhirtis.api.errors import ApiError
from fhirtis.clinical.ivig import DECIMAL_CONTEXT, DosingWeight, dosing_weight, format_decimal
from fhirtis.clinical.patient import PatientEvaluation, evaluate_patient
from fhirtis.clinical.thrombosis import RateLimit, RiskProfile
from fhirtis.fhir.bundle import PatientResources
from fhirtis.fhir.codes import Terminology, profiles_dir, terminology
from fhirtis.fhir.extract import PatientData
from fhirtis.fhir.needs import prefetch_queries
from fhirtis.fhir.orders import (
    IvigOrder,
    OrderedRate,
    RateKind,
    draft_medication_requests,
    medication_reference,
    read_ivig_order,
    with_rates,
)
from fhirtis.fhir.primitives import is_id
from fhirtis.fhir.units import UnitError, convert
from fhirtis.io import BearerTokenAuth, FhirClient, FhirClientError
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import extractor_for
from fhirtis.pipeline.server import status_for
from fhirtis.settings import Settings

__all__ = ["SERVICES", "CdsService", "install", "prefetch_templates"]

log = logging.getLogger("fhirtis.api.cds")
Json = dict[str, Any]

PATIENT_TOKEN = "{{context.patientId}}"
FETCH_BUDGET_SECONDS = 10.0  # reading what prefetch lacked; a CDS client will not wait longer
SOURCE = {"label": "fhirtis: IVIG infusion safety in myositis"}
_SUMMARY_MAX = 139  # CDS Hooks: "<140-character summary"
_MIN_PER_H = Decimal(60)
_MG_PER_G = Decimal(1000)


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

USAGE_REQUIREMENTS = (
    "Provide every prefetch key (null where there are no data), or fhirServer with "
    "fhirAuthorization for a FHIR server on this service's allow-list so that the service can "
    "read what is missing; otherwise the service answers 412. Draft IVIG orders should name "
    "a Medication with ingredient.strength so that rates can be given in mL/h."
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


def prefetch_templates(terms: Terminology) -> tuple[Template, ...]:
    """Everything the risk factors, the dosing weight now and the TIS course need (from
    :mod:`fhirtis.fhir.needs`, the single list of a patient's reads)."""
    return tuple(Template(*q) for q in prefetch_queries(terms, PATIENT_TOKEN))


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
# the request


class CdsError(Exception):
    """A CDS Hooks error: a plain HTTP status with a short JSON body."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _bad(message: str) -> CdsError:
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


def parse_call(body: Any, service: CdsService) -> HookCall:
    """The hook call, checked; raises a 400 :class:`CdsError` naming what is wrong."""
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    hook = body.get("hook")
    if not isinstance(hook, str) or not hook:
        raise _bad("hook is required")
    if hook != service.hook:
        raise _bad(f"service {service.id} answers the {service.hook} hook, not {hook}")
    instance = body.get("hookInstance")
    if not isinstance(instance, str) or not instance:
        raise _bad("hookInstance is required")
    context = body.get("context")
    if not isinstance(context, dict):
        raise _bad("context is required and must be an object")
    patient_id = context.get("patientId")
    if not is_id(patient_id):
        raise _bad("context.patientId is required and must be a FHIR id")
    assert isinstance(patient_id, str)
    draft = context.get("draftOrders")
    if not isinstance(draft, dict) or draft.get("resourceType") != "Bundle":
        raise _bad("context.draftOrders is required and must be a Bundle")
    if not isinstance(draft.get("entry", []), list):
        raise _bad("context.draftOrders.entry must be an array")
    selections: list[str] | None = None
    if hook == "order-select" and "selections" in context:
        raw = context["selections"]
        if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
            raise _bad("context.selections must be an array of references")
        selections = list(raw)
    server = body.get("fhirServer")
    if server is not None and (not isinstance(server, str) or not server):
        raise _bad("fhirServer must be a URL")
    auth = body.get("fhirAuthorization")
    token: str | None = None
    if auth is not None:
        if not isinstance(auth, dict):
            raise _bad("fhirAuthorization must be an object")
        if server is None:
            raise _bad("fhirAuthorization needs fhirServer")
        token = auth.get("access_token")
        if not isinstance(token, str) or not token:
            raise _bad("fhirAuthorization.access_token is required")
        token_type = auth.get("token_type")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise _bad("fhirAuthorization.token_type must be Bearer")
    prefetch = body.get("prefetch", {})
    if prefetch is None:
        prefetch = {}
    if not isinstance(prefetch, dict):
        raise _bad("prefetch must be an object")
    return HookCall(hook, patient_id, draft, selections, server, token, prefetch)


@dataclass
class _Gathered:
    """The patient's resources so far, and every resource by reference."""

    listed: dict[str, Json] = field(default_factory=dict)  # "Type/id" (or a fullUrl) → resource
    resolve: dict[str, Json] = field(default_factory=dict)

    def add(self, resource: Json, full_url: str | None = None) -> None:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        key = f"{rtype}/{rid}" if isinstance(rid, str) else full_url or f"#{id(resource)}"
        self.listed.setdefault(key, resource)
        self.resolve.setdefault(key, resource)
        if full_url:
            self.resolve.setdefault(full_url, resource)

    def merge(self, other: _Gathered) -> None:
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


def _take_prefetch(
    call: HookCall, templates: Sequence[Template], into: _Gathered
) -> list[Template]:
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
            raise _bad(f"prefetch.{t.key} must be a FHIR resource, a Bundle or null")
        kind = value["resourceType"]
        if kind == "OperationOutcome":
            missing.append(t)  # the client failed to prefetch; read it if possible
            continue
        if kind not in {"Bundle", t.resource_type}:
            raise _bad(f"prefetch.{t.key} is a {kind}, not what its template asks for")
        found = _Gathered()
        if kind == "Bundle":
            found.add_bundle(value)
        else:
            found.add(value)
        if any(
            r.get("resourceType") == "Patient" and r.get("id") != call.patient_id
            for r in found.listed.values()
        ):
            raise _bad(f"prefetch.{t.key} holds another patient than context.patientId")
        into.merge(found)
    return missing


# --------------------------------------------------------------------------------------------
# reading what prefetch lacked


def _reader(request: Request, call: HookCall) -> tuple[str, str] | str:
    """(allowed FHIR base, access token) to read with, or why the service cannot read."""
    if call.fhir_server is None or call.access_token is None:
        return "the request has no fhirServer with fhirAuthorization to read them"
    try:
        server: str = request.app.state.fhirtis.server_for(call.fhir_server)
    except ApiError:
        return "fhirServer is not a FHIR server this service may read (not on its allow-list)"
    return server, call.access_token


async def _fetch(
    request: Request, server: str, token: str, urls: Sequence[tuple[str, bool]]
) -> list[tuple[str, Json | None]]:
    """GET each URL (one batch) with the caller's token; per URL its result (a resource, a
    searchset with every wanted page merged into ``entry``, or None for a 404 read)."""
    state = request.app.state.fhirtis
    client = FhirClient(
        state.config_for(server), http=state.http, auth=BearerTokenAuth(token, base_url=server)
    )
    out: list[tuple[str, Json | None]] = []
    try:
        async with asyncio.timeout(FETCH_BUDGET_SECONDS):
            entries = [{"request": {"method": "GET", "url": url}} for url, _ in urls]
            batch = await client.batch(entries)
            responses = batch.get("entry") or []
            if batch.get("resourceType") != "Bundle" or len(responses) != len(entries):
                raise CdsError(502, "fhir-server-failed", "the FHIR server's batch is incomplete")
            for (url, all_pages), entry in zip(urls, responses, strict=True):
                status = str((entry.get("response") or {}).get("status", ""))
                resource = entry.get("resource")
                if status.startswith("404") and url.startswith("Medication/"):
                    out.append((url, None))  # the order's medication stays unidentified
                    continue
                if not status.startswith("2") or not isinstance(resource, dict):
                    code = int(status[:3]) if status[:3].isdigit() else 502
                    raise CdsError(
                        502 if code >= 500 else 412,
                        "fhir-server-failed" if code >= 500 else "precondition-failed",
                        f"the FHIR server answered {status or 'nothing'} to a read the service "
                        "needs",
                    )
                if all_pages and resource.get("resourceType") == "Bundle":
                    merged = list(resource.get("entry") or [])
                    async for page in client.following_pages(resource):
                        merged.extend(page.get("entry") or [])
                    resource = {**resource, "entry": merged}
                out.append((url, resource))
    except TimeoutError:
        raise CdsError(
            504, "fhir-server-timeout", "the FHIR server did not answer in time"
        ) from None
    except FhirClientError as exc:
        log.warning("cds: reading from the FHIR server failed: %s", type(exc).__name__)
        code = status_for(exc)
        if code < 500:  # 401, 403, 404: the data cannot be obtained
            raise CdsError(
                412, "precondition-failed", "the FHIR server refused the reads the service needs"
            ) from None
        raise CdsError(code, "fhir-server-failed", "the FHIR server failed") from None
    finally:
        await client.aclose()
    return out


# --------------------------------------------------------------------------------------------
# evaluation (the pipeline's extraction and rules, without deriving resources)


@dataclass
class _Evaluated:
    data: PatientData
    evaluation: PatientEvaluation
    weight: DosingWeight
    now: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def evaluate(resources: PatientResources, settings: Settings, now: datetime) -> _Evaluated:
    """What :func:`fhirtis.pipeline.offline.evaluate_patient_resources` computes "as of" ``now``,
    minus the derived resources; and the dosing weight now (DOMAIN.md §4)."""
    extractor = extractor_for(settings)
    data = extractor.extract(resources.patient_ref, resources.resources, resources.resolve)
    evaluation = evaluate_patient(data.facts(), settings.policy, as_of=now)
    weight = dosing_weight(now, data.weights, data.heights, data.patient, settings.policy)
    return _Evaluated(data, evaluation, weight, now)


# --------------------------------------------------------------------------------------------
# cards


@cache
def _risk_labels() -> dict[str, str]:
    path = profiles_dir() / "CodeSystem-tee-risk-factor.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {c["code"]: c.get("display", c["code"]) for c in doc.get("concept", [])}


def _label(kind: str) -> str:
    return _risk_labels().get(kind, kind)


def _summary(text: str) -> str:
    return text if len(text) <= _SUMMARY_MAX else text[: _SUMMARY_MAX - 1].rstrip() + "…"


def _card(summary: str, indicator: str, detail: str, **extra: Any) -> Json:
    card: Json = {
        "uuid": str(uuid.uuid4()),
        "summary": _summary(summary),
        "indicator": indicator,
        "detail": detail,
        "source": dict(SOURCE),
    }
    card.update(extra)
    return card


def _down(value: Decimal, places: int) -> Decimal:
    with localcontext(DECIMAL_CONTEXT):
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)


def _num(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _rate_text(value: Decimal, limit: Decimal) -> str:
    """An ordered rate in mg/kg/min to 2 places, or to 4 (rounded away from the limit) where 2
    would show a rate above the limit as equal to it."""
    shown = format_decimal(value)
    if value > limit and shown == format_decimal(limit):
        with localcontext(DECIMAL_CONTEXT):
            return _num(value.quantize(Decimal("0.0001"), rounding=ROUND_UP))
    return shown


def risk_card(profile: RiskProfile, excluded: int) -> Json:
    factors = profile.factors
    if factors:
        names = ", ".join(_label(f.kind.value) for f in factors)
        summary = f"TEE risk with IVIG: {len(factors)} risk factor(s): {names}"
    else:
        summary = "TEE risk with IVIG: no thrombosis risk factor found"
        if profile.unassessed:
            summary += " (some could not be assessed)"
    lines = [f"Thrombosis risk factors for IVIG as of {profile.at.day.isoformat()}:", ""]
    for f in factors:
        evidence = ", ".join(f"`{e}`" for e in f.evidence)
        lines.append(f"- **{_label(f.kind.value)}**: {f.detail} (evidence: {evidence})")
    if not factors:
        lines.append("- none found in the data available")
    if profile.unassessed:
        lines += ["", "Not assessable:"]
        lines += [f"- {_label(u.kind.value)}: {u.reason}" for u in profile.unassessed]
    if excluded:
        lines += [
            "",
            f"{excluded} resource(s) could not be read and were not used; a risk factor they "
            "record would be missed.",
        ]
    return _card(summary, "warning" if factors else "info", "\n".join(lines))


@dataclass(frozen=True)
class _Limits:
    """The applicable maximum for one order, in every unit that can be computed."""

    mg_kg_min: Decimal
    kg: Decimal | None
    concentration: Decimal | None

    def in_kind(self, kind: RateKind) -> Decimal | None:
        """The maximum in the kind's display unit (mL/h, g/h, mL/kg/h, mg/kg/min), exact."""
        with localcontext(DECIMAL_CONTEXT):
            if kind is RateKind.MASS_PER_KG:
                return self.mg_kg_min
            if kind is RateKind.VOLUME_PER_KG:
                if self.concentration is None:
                    return None
                return self.mg_kg_min * _MIN_PER_H / self.concentration
            if self.kg is None:
                return None
            if kind is RateKind.MASS:
                return self.mg_kg_min * self.kg * _MIN_PER_H / _MG_PER_G
            if self.concentration is None:
                return None
            return self.mg_kg_min * self.kg * _MIN_PER_H / self.concentration


# display unit and decimals (rounded down) of a suggested or shown maximum, per kind
_DISPLAY = {
    RateKind.VOLUME: ("mL/h", 0),
    RateKind.MASS: ("g/h", 2),
    RateKind.VOLUME_PER_KG: ("mL/kg/h", 2),
    RateKind.MASS_PER_KG: ("mg/kg/min", 2),
}


def _max_text(limits: _Limits, kind: RateKind) -> str | None:
    value = limits.in_kind(kind)
    if value is None:
        return None
    unit, places = _DISPLAY[kind]
    return f"{_num(_down(value, places))} {unit}"


def _weight_text(weight: DosingWeight, now: datetime) -> str:
    if weight.kg is None:
        reasons = "; ".join(n.message for n in weight.notes) or "no body weight"
        return f"unknown ({reasons})"
    text = f"{format_decimal(weight.kg)} kg ({weight.basis.value} body weight"
    if weight.weight_when is not None:
        text += f", weighed {weight.weight_when.date().isoformat()}"
    if weight.weight_source is not None:
        text += f", `{weight.weight_source}`"
    text += ")"
    if weight.stale:
        text += (
            f" **stale**: {weight.weight_age_days} days before {now.date().isoformat()}; "
            "weigh the patient before the infusion"
        )
    return text


def _weight_unknown_reason(weight: DosingWeight) -> str:
    for n in weight.notes:
        if n.code in {"weight-missing", "dosing-weight-basis-unavailable"}:
            return "no body weight" if n.code == "weight-missing" else n.message
    return "the dosing weight is unknown"


@dataclass
class _OrderCheck:
    order: IvigOrder
    limits: _Limits
    checked: list[tuple[OrderedRate, Decimal]]  # rates in mg/kg/min
    unchecked: list[tuple[OrderedRate, str]]  # rates that need what is unknown, and what

    @property
    def exceeding(self) -> list[tuple[OrderedRate, Decimal]]:
        return [(r, v) for r, v in self.checked if v > self.limits.mg_kg_min]


def check_order(order: IvigOrder, limit: RateLimit, weight: DosingWeight) -> _OrderCheck:
    limits = _Limits(limit.limit_mg_kg_min, weight.kg, order.concentration_mg_per_ml)
    checked: list[tuple[OrderedRate, Decimal]] = []
    unchecked: list[tuple[OrderedRate, str]] = []
    for rate in order.rates:
        value = rate.mg_kg_min(limits.concentration, limits.kg)
        if value is not None:
            checked.append((rate, value))
            continue
        needs = []
        if rate.kind in {RateKind.VOLUME, RateKind.VOLUME_PER_KG} and limits.concentration is None:
            needs.append("the product concentration")
        if rate.kind in {RateKind.VOLUME, RateKind.MASS} and limits.kg is None:
            needs.append("the dosing weight")
        unchecked.append((rate, " and ".join(needs) or "unknown"))
    return _OrderCheck(order, limits, checked, unchecked)


def max_rate_card(
    check: _OrderCheck, limit: RateLimit, weight: DosingWeight, now: datetime
) -> Json:
    order, limits = check.order, check.limits
    product = order.product or "IVIG"
    conc = limits.concentration
    mg = _num(limits.mg_kg_min)
    ml_h = _max_text(limits, RateKind.VOLUME)
    if ml_h is not None:
        assert limits.kg is not None and conc is not None
        summary = (
            f"Max IVIG rate {mg} mg/kg/min = {ml_h} for {format_decimal(limits.kg)} kg of "
            f"{format_decimal(conc)} mg/mL"
        )
    else:
        why = []
        if limits.kg is None:
            why.append(_weight_unknown_reason(weight))
        if conc is None:
            why.append("product concentration unknown")
        summary = f"Max IVIG rate {mg} mg/kg/min; mL/h cannot be computed: {', '.join(why)}"
    lines = [
        f"**Maximum infusion rate: {mg} mg/kg/min**: {limit.reason}.",
        "",
        f"- Order: `{order.ref}`, {product}",
        f"- Dosing weight now: {_weight_text(weight, now)}",
        "- Concentration: "
        + (
            f"{format_decimal(conc)} mg/mL (Medication ingredient strength)"
            if conc is not None
            else f"unknown: {order.concentration_problem}; never assumed"
        ),
    ]
    for kind in RateKind:
        text = _max_text(limits, kind)
        if text is not None and kind is not RateKind.MASS_PER_KG:
            lines.append(f"- Maximum as {_DISPLAY[kind][0]}: {text} (rounded down)")
    if ml_h is None:
        lines.append("- Maximum as mL/h: **cannot be computed** without the missing value above")
    lines.append("")
    if not order.rates and not order.rate_problems:
        lines.append("The order gives no infusion rate; the maximum applies when it is set.")
    for rate, value in check.checked:
        verdict = "above the maximum" if value > limits.mg_kg_min else "within the maximum"
        lines.append(
            f"- Ordered {rate.text} = {_rate_text(value, limits.mg_kg_min)} mg/kg/min: {verdict} "
            f"(`{rate.path}`)"
        )
    for rate, needs in check.unchecked:
        lines.append(
            f"- Ordered {rate.text}: **cannot be checked** — {needs} unknown (`{rate.path}`)"
        )
    for problem in order.rate_problems:
        lines.append(f"- A rate could not be read: {problem}")
    lines += [
        "",
        "mL/h = mg/kg/min × kg × 60 / (mg/mL); the maximum is rounded down so that it is never "
        "exceeded.",
    ]
    cannot_check = bool(check.unchecked or order.rate_problems)
    return _card(summary, "warning" if cannot_check else "info", "\n".join(lines))


def exceeded_card(check: _OrderCheck, limit: RateLimit) -> Json | None:
    exceeding = check.exceeding
    if not exceeding:
        return None
    order, limits = check.order, check.limits
    fastest_rate, fastest = max(exceeding, key=lambda rv: rv[1])
    max_here = _max_text(limits, fastest_rate.kind)
    summary = (
        f"Ordered IVIG rate {fastest_rate.text} ({_rate_text(fastest, limits.mg_kg_min)} "
        "mg/kg/min) exceeds "
        f"the max {_num(limits.mg_kg_min)} mg/kg/min" + (f" ({max_here})" if max_here else "")
    )
    lines = [
        f"The ordered rate is above the maximum infusion rate: {limit.reason}.",
        "",
    ]
    lines += [
        f"- {rate.text} = {_rate_text(v, limits.mg_kg_min)} mg/kg/min (`{rate.path}`)"
        for rate, v in exceeding
    ]
    lines += [
        "",
        "Thromboembolic events with IVIG are related to the infusion rate; ProDERM lowered its "
        "maximum rate after such events.",
    ]
    changes: dict[RateKind, list[tuple[int, int]]] = {}
    for rate, _ in exceeding:
        changes.setdefault(rate.kind, []).append(rate.location)
    updated = order.resource
    parts = []
    for kind, locations in changes.items():
        exact = limits.in_kind(kind)
        assert exact is not None  # the rate was checked, so what it needed is known
        unit, places = _DISPLAY[kind]
        value = _down(exact, places)
        if value <= 0:
            return _card(summary, "warning", "\n".join(lines))
        updated = with_rates(updated, locations, value, unit)
        parts.append(f"{_num(value)} {unit}")
    new_rate = " / ".join(parts)
    suggestion = {
        "label": f"Lower the infusion rate to {new_rate}",
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": [
            {
                "type": "update",
                "description": f"Set the infusion rate of {order.ref} to {new_rate} "
                f"(at most {_num(limits.mg_kg_min)} mg/kg/min)",
                "resource": updated,
            }
        ],
    }
    return _card(
        summary,
        "warning",
        "\n".join(lines),
        suggestions=[suggestion],
        selectionBehavior="at-most-one",
    )


def tis_card(evaluation: PatientEvaluation) -> Json | None:
    course = evaluation.course
    if course.baseline is None or not course.followups:
        return None
    last = course.followups[-1]
    t = last.tis
    day = last.assessment.day.isoformat()
    population = t.population.value
    if t.tis is not None:
        category = t.category.value if t.category else "unknown"
        summary = f"Latest TIS {format_decimal(t.tis)} on {day}: {category} improvement"
        score = f"{format_decimal(t.tis)}"
    else:
        cats = [c.value for c in t.possible_categories]
        span = cats[0] if len(cats) == 1 else f"{cats[0]} to {cats[-1]}"
        score = f"{format_decimal(t.lower)}–{format_decimal(t.upper)} (partial)"
        summary = f"Latest TIS {score} on {day}: {span} improvement"
    lines = [
        f"Total Improvement Score ({population} criteria) on {day}, against the baseline of "
        f"{course.baseline.day.isoformat()}: **{score}**.",
    ]
    if t.partial:
        missing = ", ".join(m.value for m in t.missing_measures)
        lines.append(
            f"Missing: {missing}; each counts 0 in the lower and its maximum in the upper bound."
        )
    confirmed = course.confirmed_deterioration_on
    if confirmed is not None:
        lines.append(f"Confirmed deterioration on {confirmed.isoformat()}.")
    lines.append(f"{len(course.followups)} follow-up assessment(s) since baseline.")
    return _card(summary, "info", "\n".join(lines))


# --------------------------------------------------------------------------------------------
# the endpoints


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body, indent=None), status_code=status, media_type="application/json")


def _error(exc: CdsError) -> Response:
    return _json({"error": exc.error, "message": exc.message}, exc.status)


async def _answer(request: Request, service: CdsService) -> tuple[Json, dict[str, int]]:
    ctx = _context(request)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise _bad("the request body is not JSON") from None
    call = parse_call(body, service)
    stats = {"orders": 0, "ivig": 0, "fetched": 0}
    requests = draft_medication_requests(call.draft_orders, call.selections)
    stats["orders"] = len(requests)
    if not requests:
        return {"cards": []}, stats

    gathered = _Gathered()
    missing = _take_prefetch(call, ctx.templates, gathered)
    draft_resolve = dict(gathered.resolve)
    drafts = _Gathered()
    drafts.add_bundle(call.draft_orders)
    draft_resolve.update(drafts.resolve)

    extractor = extractor_for(ctx.settings)

    def ivig_orders(resolve: Mapping[str, Json]) -> list[IvigOrder]:
        found = (read_ivig_order(extractor, ref, r, resolve) for ref, r in requests)
        return [o for o in found if o is not None]

    orders = ivig_orders(draft_resolve)
    # an order naming a Medication that is neither contained, in draftOrders nor prefetched
    unresolved = sorted(
        {
            ref
            for _, r in requests
            if (ref := medication_reference(r)) is not None
            and ref not in draft_resolve
            and _is_medication_ref(ref)
        }
    )
    if not orders and not unresolved:
        return {"cards": []}, stats
    if missing or unresolved:
        reader = _reader(request, call)
        if isinstance(reader, str):
            if missing and orders:
                keys = ", ".join(t.key for t in missing)
                raise CdsError(412, "precondition-failed", f"prefetch lacks {keys}, and {reader}")
            if missing:
                return {"cards": []}, stats  # no order is known to be IVIG
            unresolved = []  # answer for the orders known; the others cannot be identified
        else:
            page = ctx.settings.fhir.page_size if ctx.settings.fhir else 100
            to_read = [(t.for_patient(call.patient_id, page), t.all_pages) for t in missing]
            to_read += [(ref, False) for ref in unresolved]
            server, token = reader
            for _, resource in await _fetch(request, server, token, to_read):
                if resource is None:
                    continue
                if resource.get("resourceType") == "Bundle":
                    gathered.add_bundle(resource)
                else:
                    gathered.add(resource)
            stats["fetched"] = len(to_read)
            orders = ivig_orders({**gathered.resolve, **drafts.resolve})
    stats["ivig"] = len(orders)
    if not orders:
        return {"cards": []}, stats

    patient_ref = f"Patient/{call.patient_id}"
    listed = [
        (key, r)
        for key, r in gathered.listed.items()
        if r.get("resourceType") not in {"Bundle", "OperationOutcome"}
        and (r.get("resourceType") != "Patient" or r.get("id") == call.patient_id)
    ]
    resources = PatientResources(patient_ref, listed, gathered.resolve, [])
    result = evaluate(resources, ctx.settings, _now())
    thr = result.evaluation.thrombosis
    limit = thr.max_rate_now
    excluded = sum(1 for i in result.data.issues if i.severity in {"error", "fatal"})

    cards = [risk_card(thr.current, excluded)]
    for order in orders:
        check = check_order(order, limit, result.weight)
        cards.append(max_rate_card(check, limit, result.weight, result.now))
        exceeded = exceeded_card(check, limit)
        if exceeded is not None:
            cards.append(exceeded)
    tis = tis_card(result.evaluation)
    if tis is not None:
        cards.append(tis)
    return {"cards": cards}, stats


def _is_medication_ref(ref: str) -> bool:
    kind, _, rid = ref.partition("/")
    return kind == "Medication" and is_id(rid)


def install(app: FastAPI) -> None:
    """Add the CDS Hooks discovery and service endpoints to ``app``."""

    @app.get("/cds-services", tags=["CDS Hooks"], summary="CDS Hooks discovery")
    async def discovery(request: Request) -> Response:
        return _json(_context(request).discovery)

    @app.post("/cds-services/{service_id}", tags=["CDS Hooks"], summary="Call a CDS service")
    async def call_service(request: Request, service_id: str) -> Response:
        started = time.perf_counter()
        service = SERVICES.get(service_id)
        if service is None:
            return _error(CdsError(404, "unknown-service", "no CDS service has that id"))
        try:
            answer, stats = await _answer(request, service)
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
            await asyncio.to_thread(warm_up)
            yield state

    app.router.lifespan_context = lifespan


_WARM_UNITS = ("mL/h", "mL/min", "g/h", "mg/h", "mg/min", "mg/kg/min", "mg/kg/h", "mL/kg/h")


def warm_up() -> None:
    """Load what the first call would otherwise load: profiles/ and the UCUM conversions of the
    usual infusion rate units."""
    try:
        terminology()
        _risk_labels()
        for unit in _WARM_UNITS:
            for kind in RateKind:
                with contextlib.suppress(UnitError):
                    convert(Decimal(1), unit, kind.canonical)
    except Exception as exc:  # the same failure shows, properly, on the first call
        log.warning("cds warm-up failed: %s", type(exc).__name__)
