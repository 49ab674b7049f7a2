"""Draft IVIG orders (MedicationRequest) → what the CDS Hooks service checks. Pure: no network.

An order is IVIG exactly when an administration of the same medication would be (the same
codes, product names and ``Medication`` resolution as :mod:`fhirtis.fhir.extract`); its
concentration is the Medication's ``ingredient.strength`` (never assumed). Its rates are every
``dosageInstruction[].doseAndRate[].rate[x]``: ``rateQuantity``, ``rateRatio`` or the ``high``
of a ``rateRange``, in one of four kinds, converted exactly with UCUM:

========================  =============  =========================================
kind                      canonical      e.g.
========================  =============  =========================================
``volume``                mL/h           300 mL/h, 5 mL/min
``mass``                  mg/h           12 g/h
``volume-per-kg``         mL/kg/h        2 mL/kg/h
``mass-per-kg``           mg/kg/h        4 mg/kg/min (= 240 mg/kg/h)
========================  =============  =========================================
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from fhirtis.clinical.frozen import record
from fhirtis.clinical.ivig import DECIMAL_CONTEXT, is_positive_finite
from fhirtis.clinical.rates import RateKind, rate_mg_kg_min
from fhirtis.fhir.codes import UCUM
from fhirtis.fhir.extract import ExcludedError, Extractor, read_quantity
from fhirtis.fhir.extract.medications import UnresolvedMedicationError
from fhirtis.fhir.primitives import PrimitiveError, is_id, json_array, parse_date_time
from fhirtis.fhir.units import UnitError, convert

Json = dict[str, Any]

__all__ = [
    "IvigOrder",
    "OrderedRate",
    "RateKind",
    "draft_medication_requests",
    "medication_reference",
    "order_starts",
    "read_ivig_order",
    "with_rates",
]

_MIN_PER_H = Decimal(60)
_VOID = {"entered-in-error", "cancelled", "revoked"}


@record
class OrderedRate:
    """One rate of an order, in its kind's canonical unit."""

    kind: RateKind
    value: Decimal
    location: tuple[int, int]  # (dosageInstruction index, doseAndRate index)
    element: str  # "rateQuantity", "rateRatio" or "rateRange"
    text: str  # as ordered, e.g. "300 mL/h"

    @property
    def path(self) -> str:
        i, j = self.location
        return f"dosageInstruction[{i}].doseAndRate[{j}].{self.element}"

    def mg_kg_min(self, concentration: Decimal | None, kg: Decimal | None) -> Decimal | None:
        """The rate in mg/kg/min, or None when the concentration or weight it needs is unknown."""
        return rate_mg_kg_min(self.kind, self.value, concentration, kg)


@record
class IvigOrder:
    """A draft MedicationRequest of IVIG, as read."""

    ref: str  # "MedicationRequest/id" (or the entry's fullUrl when the order has no id)
    resource: Json
    product: str | None
    concentration_mg_per_ml: Decimal | None
    concentration_problem: str | None  # why the concentration is unknown, when it is
    rates: tuple[OrderedRate, ...]
    rate_problems: tuple[str, ...]  # rates that could not be read, and why
    # where an order with no coded rate gives one in words ("0.5 mL/kg/h, increase to
    # 4 mL/kg/h"): the paths of those texts, never the text (it cannot be checked)
    rate_texts: tuple[str, ...] = ()
    # when the order says its infusion starts (:func:`order_starts`): each start it gives, as
    # the instant and whether it was a date only; none when it says none
    starts: tuple[tuple[datetime, bool], ...] = ()


def draft_medication_requests(
    draft_orders: Mapping[str, Any], selections: Sequence[str] | None = None
) -> list[tuple[str, Json]]:
    """The MedicationRequests of a ``draftOrders`` Bundle as (reference, resource); with
    ``selections`` (order-select), only the selected ones. A void one, or one that prohibits
    its medication (``doNotPerform`` true), orders nothing to check; one listed again (by
    the same reference) is read once."""
    out: list[tuple[str, Json]] = []
    taken: set[str] = set()  # an order listed twice (the same copy) is one order
    entries = draft_orders.get("entry")
    for entry in entries if isinstance(entries, list) else []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "MedicationRequest":
            continue
        status = resource.get("status")
        if isinstance(status, str) and status in _VOID:  # a status that is no code: not void
            continue
        if resource.get("doNotPerform") is True:  # R4 modifier: the order prohibits it
            continue
        own = f"MedicationRequest/{resource['id']}" if is_id(resource.get("id")) else None
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        ref = own or full_url
        if ref is None or ref in taken:
            continue
        if selections is not None and not {own, full_url} & set(selections):
            continue
        taken.add(ref)
        out.append((ref, resource))
    return out


def medication_reference(request: Mapping[str, Any]) -> str | None:
    """The ``medicationReference.reference`` of an order, unless it is a contained one."""
    ref = request.get("medicationReference")
    target = ref.get("reference") if isinstance(ref, dict) else None
    if isinstance(target, str) and not target.startswith("#"):
        return target
    return None


def read_ivig_order(
    extractor: Extractor, ref: str, request: Json, resolve: Mapping[str, Json]
) -> IvigOrder | None:
    """The order as an :class:`IvigOrder`, or None when it is not an order of IVIG (or its
    medication cannot be identified: an unresolved ``medicationReference``)."""
    # The extractor's own reading of medication[x] and its IVIG rule: an order is IVIG exactly
    # when an administration of it would be.
    try:
        medication = extractor._read_medication(request, "MedicationRequest", resolve)
    except ExcludedError:
        return None
    med, codings, text = medication.med, medication.codings, medication.text
    try:
        ivig = extractor.is_ivig_product(med, codings, text, resolve)
    except ExcludedError:  # an ingredient that cannot be read: the Medication's own code decides
        ivig = extractor.is_ivig_product(None, codings, text)
    if not ivig or not _intravenous(extractor, request):
        return None
    concentration: Decimal | None = None
    problem: str | None = None
    if med is None:
        problem = "the order names no Medication with an ingredient strength"
    else:
        try:
            concentration = extractor._concentration(medication, resolve)
        except ExcludedError as exc:
            problem = f"the Medication's strength cannot be read ({exc.message})"
        else:
            if concentration is None:
                problem = "the Medication has no ingredient strength"
            elif not is_positive_finite(concentration):
                concentration, problem = None, "the Medication's strength is not positive"
    rates, rate_problems = _rates(request)
    return IvigOrder(
        ref=ref,
        resource=request,
        product=text or None,
        concentration_mg_per_ml=concentration,
        concentration_problem=problem,
        rates=tuple(rates),
        rate_problems=tuple(rate_problems),
        rate_texts=() if rates or rate_problems else _rate_texts(request),
        starts=order_starts(request),
    )


def order_starts(request: Mapping[str, Any]) -> tuple[tuple[datetime, bool], ...]:
    """When the order's infusion is to start: each of its dosage instructions'
    ``timing.event`` and ``timing.repeat.boundsPeriod.start`` (R4 Timing), as an instant and
    whether it was a date only (the start of that day, UTC); none when it gives none that can be
    read (an unreadable one is passed over: the order is then checked as given now). Which is
    the earliest is a matter of the records' calendar (a date and a dateTime in another offset
    are ordered by their day on it), so all are kept."""
    starts: list[tuple[datetime, bool]] = []
    for dosage in json_array(request.get("dosageInstruction")):
        timing = dosage.get("timing") if isinstance(dosage, dict) else None
        if not isinstance(timing, dict):
            continue
        values = list(json_array(timing.get("event")))
        repeat = timing.get("repeat")
        bounds = repeat.get("boundsPeriod") if isinstance(repeat, dict) else None
        if isinstance(bounds, dict):
            values.append(bounds.get("start"))
        for value in values:
            try:
                parsed = parse_date_time(value)
            except PrimitiveError:
                continue
            if parsed[0].tzinfo is not None:
                starts.append(parsed)
    return tuple(starts)


# A rate in words as IVIG orders write them: a number, then a volume or mass (per kg or lb),
# per hour or minute: "100 mL/h", "0.5 mL/kg/hr", "4 mg/kg/min", "1 ml per kg per hour"
_RATE_IN_WORDS = re.compile(
    r"\d\s*(?:ml|cc|mg|g)\s*(?:(?:/|per)\s*(?:kg|lbs?)\s*)?(?:/|per)\s*"
    r"(?:h|hr|hrs|hour|min|minute)\b",
    re.IGNORECASE,
)


def _rate_texts(request: Mapping[str, Any]) -> tuple[str, ...]:
    """The paths of the order's dosage texts that give an infusion rate in words (its
    ``dosageInstruction[].text``, ``patientInstruction``, ``additionalInstruction[].text``):
    a rate so written is not coded, so it cannot be checked, and is said (clinical spec §4:
    reported, never ignored silently)."""
    found: list[str] = []
    for i, dosage in enumerate(json_array(request.get("dosageInstruction"))):
        if not isinstance(dosage, dict):
            continue
        texts = [
            ("text", dosage.get("text")),
            ("patientInstruction", dosage.get("patientInstruction")),
        ]
        for k, extra in enumerate(json_array(dosage.get("additionalInstruction"))):
            if isinstance(extra, dict):
                texts.append((f"additionalInstruction[{k}].text", extra.get("text")))
        for where, text in texts:
            if isinstance(text, str) and _RATE_IN_WORDS.search(text):
                found.append(f"dosageInstruction[{i}].{where}")
    return tuple(found)


@dataclass(frozen=True)
class UnreadOrder:
    """A draft order whose Medication cannot be resolved but whose reference's ``display``
    names an immune globulin: it may be IVIG, and its rate cannot be checked."""

    ref: str  # the order: "MedicationRequest/id" or its fullUrl
    medication: str  # the medicationReference.reference that resolves to nothing
    shown: str  # the display that names an immune globulin


def unread_ig_orders(
    extractor: Extractor, requests: Iterable[tuple[str, Json]], resolve: Mapping[str, Json]
) -> list[UnreadOrder]:
    """The orders among ``requests`` whose ``medicationReference`` resolves to nothing in
    ``resolve`` and whose display names an immune globulin (route intravenous or none): as
    ``fhirtis run`` flags such an administration, they are said, never passed over."""
    out: list[UnreadOrder] = []
    for ref, request in requests:
        try:
            extractor._read_medication(request, "MedicationRequest", resolve)
        except UnresolvedMedicationError:
            shown = extractor._looks_like_immune_globulin(request)
            if shown is not None and _intravenous(extractor, request):
                target = request["medicationReference"]["reference"]
                out.append(UnreadOrder(ref, str(target), shown))
        except ExcludedError:
            continue
    return out


def _intravenous(extractor: Extractor, request: Json) -> bool:
    """Whether no dosage instruction gives a route other than intravenous (spec §4: a
    subcutaneous or intramuscular route is not IVIG, whatever the product; no route: the
    product decides)."""
    for i, dosage in enumerate(json_array(request.get("dosageInstruction"))):
        if not isinstance(dosage, dict):
            continue
        try:
            route = extractor._route(dosage, f"MedicationRequest.dosageInstruction[{i}]")
        except ExcludedError:
            continue  # a malformed route is no route
        if route is not None and route != "iv":
            return False
    return True


def _classify(value: Decimal, unit: str | None) -> tuple[RateKind, Decimal] | None:
    if unit is None:
        return None
    per_kg = "kg" in unit or "[lb" in unit
    for kind in RateKind:
        if (kind in {RateKind.VOLUME_PER_KG, RateKind.MASS_PER_KG}) != per_kg:
            continue
        try:
            return kind, convert(value, unit, kind.canonical)
        except UnitError:
            continue
    return None


def _shown(value: Decimal, unit: str | None) -> str:
    return f"{value.normalize():f} {unit or '(no unit)'}"


def _rates(request: Mapping[str, Any]) -> tuple[list[OrderedRate], list[str]]:
    rates: list[OrderedRate] = []
    problems: list[str] = []
    instructions = request.get("dosageInstruction")
    for i, dosage in enumerate(instructions if isinstance(instructions, list) else []):
        dose_and_rate = dosage.get("doseAndRate") if isinstance(dosage, dict) else None
        for j, dr in enumerate(dose_and_rate if isinstance(dose_and_rate, list) else []):
            if not isinstance(dr, dict):
                continue
            where = f"dosageInstruction[{i}].doseAndRate[{j}]"
            try:
                found = _rate_of(dr, where)
            except ExcludedError as exc:
                problems.append(f"{exc.path}: {exc.message}")
                continue
            if found is None:
                continue
            element, value, unit = found
            classified = _classify(value, unit)
            if classified is None:
                problems.append(
                    f"{where}.{element}: {_shown(value, unit)} is not an infusion rate "
                    "(volume or mass per time, optionally per kg)"
                )
                continue
            kind, canonical = classified
            if not is_positive_finite(canonical):
                problems.append(f"{where}.{element}: the rate is not positive")
                continue
            rates.append(OrderedRate(kind, canonical, (i, j), element, _shown(value, unit)))
    return rates, problems


def _rate_of(dr: Mapping[str, Any], where: str) -> tuple[str, Decimal, str | None] | None:
    """(element, value, UCUM unit) of one doseAndRate's rate[x], or None when it has none."""
    if "rateQuantity" in dr:
        value, unit = read_quantity(dr["rateQuantity"], f"{where}.rateQuantity")
        return "rateQuantity", value, unit
    if "rateRange" in dr:
        rng = dr["rateRange"]
        if not isinstance(rng, dict) or "high" not in rng:
            raise ExcludedError("required", "rateRange has no high", f"{where}.rateRange")
        value, unit = read_quantity(rng["high"], f"{where}.rateRange.high")
        return "rateRange", value, unit
    if "rateRatio" in dr:
        ratio = dr["rateRatio"]
        path = f"{where}.rateRatio"
        if not isinstance(ratio, dict) or "numerator" not in ratio or "denominator" not in ratio:
            raise ExcludedError("structure", "rateRatio needs numerator and denominator", path)
        num, num_unit = read_quantity(ratio["numerator"], f"{path}.numerator")
        den, den_unit = read_quantity(ratio["denominator"], f"{path}.denominator")
        if not is_positive_finite(den):
            raise ExcludedError("value", "rateRatio denominator must be positive", path)
        if num_unit is None or den_unit is None:
            raise ExcludedError("required", "rateRatio needs units", path)
        with localcontext(DECIMAL_CONTEXT):
            return "rateRatio", num / den, f"({num_unit})/({den_unit})"
    return None


def with_rates(
    request: Json, locations: Iterable[tuple[int, int]], value: Decimal, unit: str
) -> Json:
    """A copy of the order whose rate at each of ``locations`` is ``value`` ``unit``; nothing
    else changes. A ``rateQuantity`` or ``rateRatio`` becomes that ``rateQuantity``. A
    ``rateRange`` (an infusion titrated up) stays a range: its ``high`` becomes ``value``, and
    its ``low`` stays where it is at most that, else is left out (never a fixed rate at the
    maximum, which would start the infusion there)."""
    updated = copy.deepcopy(request)
    quantity = {"value": value, "unit": unit, "system": UCUM, "code": unit}
    for i, j in locations:
        dr = updated["dosageInstruction"][i]["doseAndRate"][j]
        rate_range = dr.get("rateRange")
        for key in ("rateQuantity", "rateRatio", "rateRange"):
            dr.pop(key, None)
        if isinstance(rate_range, dict):
            dr["rateRange"] = _lowered_range(rate_range, value, unit, dict(quantity))
        else:
            dr["rateQuantity"] = dict(quantity)
    return updated


def _lowered_range(rate_range: Json, value: Decimal, unit: str, high: Json) -> Json:
    """``rate_range`` with ``high`` as its end, and its ``low`` kept only if it is at most
    ``value`` ``unit`` (compared exactly with UCUM; a low that cannot be compared is left out)."""
    out = {k: v for k, v in rate_range.items() if k not in ("low", "high")}
    low = rate_range.get("low")
    if low is not None:
        try:
            low_value, low_unit = read_quantity(low, "rateRange.low")
            if low_unit is not None and convert(low_value, low_unit, unit) <= value:
                out["low"] = low
        except (ExcludedError, UnitError):
            pass
    out["high"] = high
    return out
