"""The cards: TEE risk factors, the maximum rate (and a lower-rate suggestion), the latest TIS."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from fhirtis.clinical.decimals import format_beside
from fhirtis.clinical.ivig import DosingWeight, OrderWeight
from fhirtis.clinical.patient import PatientEvaluation
from fhirtis.clinical.policy import DosingWeightBasis, Population
from fhirtis.clinical.rates import (
    DISPLAY,
    format_decimal,
    max_rate_in,
    max_rate_text,
    plain,
    round_down,
)
from fhirtis.clinical.thrombosis import RateLimit, RiskProfile
from fhirtis.fhir.codes import profiles_dir
from fhirtis.fhir.orders import (
    IvigOrder,
    OrderedRate,
    RateKind,
    UnreadOrder,
    with_rates,
)
from fhirtis.fhir.primitives import is_id

Json = dict[str, Any]

SOURCE = {"label": "fhirtis: IVIG infusion safety in myositis"}
_SUMMARY_MAX = 139  # CDS Hooks: "<140-character summary"

# --------------------------------------------------------------------------------------------
# cards


@cache
def risk_labels() -> dict[str, str]:
    path = profiles_dir() / "CodeSystem-tee-risk-factor.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {c["code"]: c.get("display", c["code"]) for c in doc.get("concept", [])}


def _label(kind: str) -> str:
    return risk_labels().get(kind, kind)


# Text from the patient's record (a Condition's or a Medication's name, a unit as ordered, a
# reference) goes into a card's ``detail``, which CDS Hooks 2.0 makes GitHub Flavored Markdown,
# raw HTML included: unescaped, ``![](https://…)`` would make the EHR fetch another site while
# the clinician reads the card, ``[…](…)`` or a bare ``https://…`` would be a link fhirtis never
# wrote, ``<img onerror=…>`` is HTML, and a line break would start a line of its own. So it is
# shown as literal text: the characters that start Markdown or HTML backslash-escaped
# (CommonMark 0.30 §2.4, any ASCII punctuation may be), GFM's autolinks broken up (``www\.``,
# ``\://``, ``\@``), and line breaks made spaces; in a code span, backticks become quotes.
_MD_SPECIAL = re.compile(r"[\\`*_~\[\]<>&|!]")
_MD_AUTOLINK = re.compile(r"(?i)(?<=www)\.|:(?=//)|@")
_LINE_BREAKS = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")


def md_text(text: str) -> str:
    """``text`` as literal text inside a card's Markdown ``detail``: no markup of its own."""
    text = _LINE_BREAKS.sub(" ", text)
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), text)
    return _MD_AUTOLINK.sub(lambda m: "\\" + m.group(0), text)


def md_code(text: str) -> str:
    """``text`` as a code span of a card's Markdown ``detail`` (a reference, a path)."""
    return "`" + _LINE_BREAKS.sub(" ", text).replace("`", "'") + "`"


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


def risk_card(
    profile: RiskProfile,
    excluded: int,
    not_read: Sequence[str] = (),
    incomplete: Sequence[str] = (),
    forbidden: Sequence[str] = (),
    unprefetched: Sequence[str] = (),
    partly_prefetched: Sequence[str] = (),
    unresolved: Sequence[str] = (),
    scope_limited: Mapping[str, Sequence[str]] | None = None,
) -> Json:
    """The thrombosis risk factors; ``excluded``: resources that could not be read,
    ``not_read``: resource types the FHIR server offers no search of (not read at all),
    ``incomplete``: searches (prefetch keys or types) answered only in part, ``forbidden``:
    resource types the access token may not read (not read at all: the patient's data there
    were withheld, as a search answered in part withholds them), ``unprefetched``: resource
    types the CDS client did not prefetch and gave no FHIR server to read (withheld as
    ``forbidden`` ones are: CDS Hooks 2.0 lets a client honour only some prefetch templates),
    ``partly_prefetched``: resource types whose prefetch did not hold its whole search (one
    page of several, ...) and no FHIR server to read the rest (what it held is used);
    ``unresolved``: what the patient's resources name that their search should have included
    but that could not be read (``Medication of MedicationStatement``: an estrogen so recorded
    is not seen); ``scope_limited``: resource types that ``fhirAuthorization.scope`` grants only
    through SMART v2 granular scopes (``patient/Condition.rs?category=…``), each with those
    scopes: what was read of them (or prefetched, which CDS Hooks 2.0 makes equivalent) may
    leave out the rest of the type. A resource that could not be read withholds its data as
    these do: "no risk factor found" then says the data may be incomplete, and the card is a
    warning."""
    scope_limited = scope_limited or {}
    withheld = bool(
        excluded
        or incomplete
        or forbidden
        or unprefetched
        or partly_prefetched
        or unresolved
        or scope_limited
    )
    factors = profile.factors
    if factors:
        names = ", ".join(_label(f.kind.value) for f in factors)
        summary = f"TEE risk with IVIG: {len(factors)} risk factor(s): {names}"
    else:
        summary = "TEE risk with IVIG: no thrombosis risk factor found"
        if withheld:
            summary += " (data may be incomplete)"
        elif profile.unassessed:
            summary += " (some could not be assessed)"
    lines = [f"Thrombosis risk factors for IVIG as of {profile.at.day.isoformat()}:", ""]
    for f in factors:
        evidence = ", ".join(md_code(e) for e in f.evidence)
        lines.append(f"- **{_label(f.kind.value)}**: {md_text(f.detail)} (evidence: {evidence})")
    if not factors:
        lines.append("- none found in the data available")
    if profile.unassessed:
        lines += ["", "Not assessable:"]
        lines += [f"- {_label(u.kind.value)}: {md_text(u.reason)}" for u in profile.unassessed]
    if excluded:
        lines += [
            "",
            f"{excluded} resource(s) could not be read and were not used; a risk factor they "
            "record would be missed.",
        ]
    if not_read:
        lines += _not_read(f"the FHIR server offers no search of {', '.join(not_read)}")
    if forbidden:
        lines += _not_read(
            f"fhirtis is not allowed to read {', '.join(forbidden)} (the FHIR server "
            "refused it, to the CDS client's prefetch or to fhirtis, or the access token's scope "
            "does not grant it)"
        )
    if unprefetched:
        lines += _not_read(
            f"the CDS client sent no usable prefetch of {', '.join(unprefetched)} and no FHIR "
            "server to read it from"
        )
    if partly_prefetched:
        lines += _incomplete(
            f"the CDS client's prefetch of {', '.join(partly_prefetched)} was only part of the "
            "data (one page of several, fewer matches than its total, or not the search's "
            "answer) and there is no FHIR server to read the rest"
        )
    if unresolved:
        lines += _not_read(
            f"the {', '.join(unresolved)} (named by the patient's records, not included with "
            "them and not readable from a FHIR server)"
        )
    if scope_limited:
        granted = "; ".join(
            f"only part of {rtype} ({', '.join(md_code(_plain_scope(s)) for s in scopes)})"
            for rtype, scopes in scope_limited.items()
        )
        lines += _incomplete(
            f"the access token's scope grants fhirtis {granted}: SMART scopes restricted by "
            "search parameters, so the FHIR server may leave the rest out of what was read"
        )
    if incomplete:
        lines += _incomplete(
            f"the search for {', '.join(incomplete)} reported that only part of the "
            "patient's data was returned"
        )
    warn = factors or withheld
    return _card(summary, "warning" if warn else "info", "\n".join(lines))


def _plain_scope(scope: str) -> str:
    """A scope as the card's Markdown shows it in code: no backtick, at most 200 characters."""
    text = scope.replace("`", "'")
    return text if len(text) <= 200 else text[:199] + "…"


def _not_read(why: str) -> list[str]:
    """The risk card's lines for resource types not read at all, ``why`` saying which."""
    return ["", f"Not read: {why}; a risk factor recorded only there would be missed."]


def _incomplete(why: str) -> list[str]:
    """The risk card's lines for searches read only in part, ``why`` saying which."""
    return ["", f"Incomplete: {why}; a risk factor recorded there may be missed."]


@dataclass(frozen=True)
class _Limits:
    """The applicable maximum for one order, in every unit that can be computed."""

    mg_kg_min: Decimal
    kg: Decimal | None
    concentration: Decimal | None

    def in_kind(self, kind: RateKind) -> Decimal | None:
        """The maximum in the kind's display unit (mL/h, g/h, mL/kg/h, mg/kg/min), exact."""
        return max_rate_in(kind, self.mg_kg_min, self.kg, self.concentration)


def _max_text(limits: _Limits, kind: RateKind) -> str | None:
    return max_rate_text(kind, limits.mg_kg_min, limits.kg, limits.concentration)


def _weight_text(weight: DosingWeight, start: date) -> str:
    """The dosing weight of a cycle starting on ``start`` (its age is counted to that day)."""
    if weight.kg is None:
        reasons = "; ".join(md_text(n.message) for n in weight.notes) or "no body weight"
        return f"unknown ({reasons})"
    text = f"{format_decimal(weight.kg)} kg ({weight.basis.value} body weight"
    # what it is computed from on its basis (spec §4): the weight (actual, adjusted), the
    # height (ideal, adjusted); never a measurement that plays no part in it
    if weight.basis is not DosingWeightBasis.IDEAL and weight.weight_source is not None:
        if weight.weight_when is not None:
            text += f", weighed {weight.weight_when.date().isoformat()}"
        text += f", {md_code(weight.weight_source)}"
    if weight.basis is not DosingWeightBasis.ACTUAL and weight.height_source is not None:
        if weight.height_when is not None:
            text += f", height measured {weight.height_when.date().isoformat()}"
        text += f", {md_code(weight.height_source)}"
    text += ")"
    if weight.stale:
        text += (
            f" **stale**: {weight.weight_age_days} days before {start.isoformat()}; "
            "weigh the patient before the infusion"
        )
    # a weight excluded as implausible (spec §1) is said, not silently passed over; a growing
    # child's height measured long before the weight beside it is said, as used
    for n in weight.notes:
        if n.code == _WEIGHT_IMPLAUSIBLE:
            where = f" ({md_code(n.source)})" if n.source else ""
            text += f"; not used: {md_text(n.message.removesuffix('; not used'))}{where}"
        elif n.code == _HEIGHT_OLD_JUVENILE:
            text += f"; **{md_text(n.message)}**"
    return text


_WEIGHT_IMPLAUSIBLE = "weight-implausible"
_HEIGHT_OLD_JUVENILE = "stale-height-juvenile"


def _weight_unknown_reason(ordered: OrderWeight) -> str:
    """Why the order's dosing weight is unknown. The cycle an order continues weighs on the
    weights before it began: one recorded since is not "no body weight"."""
    weight = ordered.weight
    implausible = any(n.code == _WEIGHT_IMPLAUSIBLE for n in weight.notes)
    for n in weight.notes:
        if n.code in {"weight-missing", "dosing-weight-basis-unavailable"}:
            if n.code == "weight-missing":
                if implausible:
                    return "every body weight recorded is implausible"
                if ordered.cycle is not None:
                    return f"no body weight before cycle {ordered.cycle.index} started"
                return "no body weight"
            return n.message
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


def _order_weight_line(ordered: OrderWeight, now: datetime) -> str:
    """The card's dosing weight: the one of the cycle the order's infusion belongs to (clinical
    spec §4), saying which cycle: the ongoing one the order continues, or a new one."""
    cycle = ordered.cycle
    if cycle is None:
        start = ordered.at.date()
        which = (
            f"a new cycle starting {start.isoformat()} (the order's start)"
            if start > now.date()
            else f"a new cycle starting now ({start.isoformat()})"
        )
    else:
        start = cycle.start.day
        which = f"cycle {cycle.index} (started {start.isoformat()}), which this order continues"
    return f"- Dosing weight of {which}: {_weight_text(ordered.weight, start)}"


def max_rate_card(
    check: _OrderCheck, limit: RateLimit, ordered: OrderWeight, now: datetime, excluded: int = 0
) -> Json:
    """The maximum rate of one order, on the dosing weight of the cycle it belongs to
    (``ordered``); ``excluded``: the patient's resources that could not be read
    (:func:`risk_card`'s), which the maximum and the dosing weight cannot have used."""
    order, limits = check.order, check.limits
    product = order.product or "IVIG"
    conc = limits.concentration
    mg = plain(limits.mg_kg_min)
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
            why.append(_weight_unknown_reason(ordered))
        if conc is None:
            why.append("product concentration unknown")
        summary = f"Max IVIG rate {mg} mg/kg/min; mL/h cannot be computed: {', '.join(why)}"
    lines = [
        f"**Maximum infusion rate: {mg} mg/kg/min**: {md_text(limit.reason)}.",
        "",
        f"- Order: {md_code(order.ref)}, {md_text(product)}",
        _order_weight_line(ordered, now),
        "- Concentration: "
        + (
            f"{format_decimal(conc)} mg/mL (Medication ingredient strength)"
            if conc is not None
            else f"unknown: {md_text(order.concentration_problem or '')}; never assumed"
        ),
    ]
    for kind in RateKind:
        text = _max_text(limits, kind)
        if text is not None and kind is not RateKind.MASS_PER_KG:
            lines.append(f"- Maximum as {DISPLAY[kind][0]}: {text} (rounded down)")
    if ml_h is None:
        lines.append("- Maximum as mL/h: **cannot be computed** without the missing value above")
    lines.append("")
    if order.rate_texts:
        where = ", ".join(md_code(t) for t in order.rate_texts)
        lines.append(
            f"The order gives its infusion rate only in words ({where}): it is not coded, so it "
            "**cannot be checked**; compare it with the maximum above."
        )
    elif not order.rates and not order.rate_problems:
        lines.append("The order gives no infusion rate; the maximum applies when it is set.")
    for rate, value in check.checked:
        verdict = "above the maximum" if value > limits.mg_kg_min else "within the maximum"
        lines.append(
            f"- Ordered {md_text(rate.text)} = {format_beside(value, limits.mg_kg_min)} "
            f"mg/kg/min: {verdict} ({md_code(rate.path)})"
        )
    for rate, needs in check.unchecked:
        lines.append(
            f"- Ordered {md_text(rate.text)}: **cannot be checked** — {needs} unknown "
            f"({md_code(rate.path)})"
        )
    for problem in order.rate_problems:
        lines.append(f"- A rate could not be read: {md_text(problem)}")
    if excluded:  # a DVT or the latest weight among them would change the numbers above
        lines += [
            "",
            f"**Data not read**: {excluded} of the patient's resource(s) could not be read and "
            "were not used: a thrombosis risk factor or a newer body weight they record is not "
            "part of this maximum.",
        ]
    lines += [
        "",
        "mL/h = mg/kg/min × kg × 60 / (mg/mL); the maximum is rounded down so that it is never "
        "exceeded.",
    ]
    cannot_check = bool(check.unchecked or order.rate_problems or order.rate_texts or excluded)
    return _card(summary, "warning" if cannot_check else "info", "\n".join(lines))


def exceeded_card(check: _OrderCheck, limit: RateLimit) -> Json | None:
    exceeding = check.exceeding
    if not exceeding:
        return None
    order, limits = check.order, check.limits
    fastest_rate, fastest = max(exceeding, key=lambda rv: rv[1])
    max_here = _max_text(limits, fastest_rate.kind)
    summary = (
        f"Ordered IVIG rate {fastest_rate.text} ({format_beside(fastest, limits.mg_kg_min)} "
        "mg/kg/min) exceeds "
        f"the max {plain(limits.mg_kg_min)} mg/kg/min" + (f" ({max_here})" if max_here else "")
    )
    lines = [
        f"The ordered rate is above the maximum infusion rate: {md_text(limit.reason)}.",
        "",
    ]
    lines += [
        f"- {md_text(rate.text)} = {format_beside(v, limits.mg_kg_min)} mg/kg/min "
        f"({md_code(rate.path)})"
        for rate, v in exceeding
    ]
    lines += [
        "",
        "Thromboembolic events with IVIG are related to the infusion rate; ProDERM lowered its "
        "maximum rate after such events.",
    ]
    if not is_id(order.resource.get("id")):
        lines += [
            "",
            "This order has no id yet, so no change of its rate can be suggested; "
            "set the rate by hand.",
        ]
        return _card(summary, "warning", "\n".join(lines))
    changes: dict[RateKind, list[tuple[int, int]]] = {}
    for rate, _ in exceeding:
        changes.setdefault(rate.kind, []).append(rate.location)
    updated = order.resource
    parts = []
    for kind, locations in changes.items():
        exact = limits.in_kind(kind)
        assert exact is not None  # the rate was checked, so what it needed is known
        unit, places = DISPLAY[kind]
        value = round_down(exact, places)
        if value <= 0:
            return _card(summary, "warning", "\n".join(lines))
        updated = with_rates(updated, locations, value, unit)
        parts.append(f"{plain(value)} {unit}")
    new_rate = " / ".join(parts)
    suggestion = {
        "label": f"Lower the infusion rate to {new_rate}",
        "uuid": str(uuid.uuid4()),
        "isRecommended": True,
        "actions": [
            {
                "type": "update",
                "description": f"Set the infusion rate of {order.ref} to {new_rate} "
                f"(at most {plain(limits.mg_kg_min)} mg/kg/min)",
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


def unread_order_card(unread: UnreadOrder, limit: RateLimit) -> Json:
    """An order that names an immune globulin whose Medication cannot be read: its product
    and concentration are unknown, so its rate is not checked; said, with the maximum."""
    mg = plain(limit.limit_mg_kg_min)
    lines = [
        f"The order {md_code(unread.ref)} names {md_code(unread.medication)} "
        f"({md_text(unread.shown)}), which could not be read (not in draftOrders or prefetch, "
        "and not readable from the FHIR server).",
        "",
        "Whether it is IVIG, and its concentration, are unknown: **its infusion rate was not "
        f"checked**. If it is IVIG, the maximum infusion rate is {mg} mg/kg/min: "
        f"{md_text(limit.reason)}.",
    ]
    return _card(
        f"IVIG rate not checked: the order's Medication could not be read ({unread.shown})",
        "warning",
        "\n".join(lines),
    )


def merged_card(patient_ref: str, successor: str) -> Json:
    """The record of the call is a merged one (Patient.link ``replaced-by``, R4 patient.html:
    "must no longer be used"): its data may have moved to ``successor``, so no rate is advised
    from what is left here."""
    lines = [
        f"This patient record ({md_code(patient_ref)}) says it was replaced by "
        f"{md_code(successor)} "
        "(Patient.link `replaced-by`: a merged or combined record, which must no longer be "
        "used). Its clinical data may have moved to that record.",
        "",
        "The thrombosis risk factors and the maximum IVIG infusion rate were **not evaluated**: "
        "what is left on this record would understate them. Order on the current record.",
    ]
    return _card(
        f"Record merged into {successor}: no IVIG rate advice for this record",
        "warning",
        "\n".join(lines),
    )


def tis_card(evaluation: PatientEvaluation, conditions_not_read: bool = False) -> Json | None:
    """The latest TIS; ``conditions_not_read``: the patient's Conditions, which say whether the
    juvenile criteria apply (clinical spec §2.3), could not be read."""
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
    if t.population is Population.JUVENILE:  # its thresholds are not the adult ones (§2.4)
        summary += " (juvenile criteria)"
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
    if conditions_not_read:
        lines.append(
            "The patient's Conditions could not all be read: a juvenile dermatomyositis recorded "
            "there, which calls for the juvenile criteria, would be missed."
        )
    return _card(summary, "info", "\n".join(lines))
