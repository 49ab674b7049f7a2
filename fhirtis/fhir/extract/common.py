"""Shared pieces of the FHIR → facts mapping: the result type, the exclusion error, element
readers and the state every resource-family reader uses. Pure: no network."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import date, datetime, tzinfo
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from fhirtis.clinical.facts import (
    BodyHeight,
    BodyMassIndex,
    BodyWeight,
    FhirTime,
    Instrument,
    IvigAdministration,
    Measure,
    MeasureValue,
    PatientFacts,
    RiskEvidence,
    RiskFactorKind,
    TeeEvent,
    TeeKind,
)
from fhirtis.clinical.patient import PatientFactsBundle
from fhirtis.clinical.population import MyositisDiagnosis
from fhirtis.clinical.thrombosis import UnassessedRiskFactor
from fhirtis.fhir.codes import (
    UCUM,
    Terminology,
)
from fhirtis.fhir.outcome import Issue
from fhirtis.fhir.primitives import (
    FLOAT_DECIMALS,
    MAGNITUDE_LIMIT,
    PrimitiveError,
    is_id,
    json_array,
    parse_date_bounds,
    parse_date_time,
    parse_decimal,
)
from fhirtis.fhir.security import Label, labels_of
from fhirtis.fhir.units import UnitError, case_refusal, convert, is_ucum, unit_from_text

Json = dict[str, Any]

MEMO_LIMIT = 50_000
"""Entries a terminology memo keeps before it starts afresh (distinct codings met)."""

# core set code → (measure, instrument, canonical unit)
CORE_SET_CODES: Mapping[str, tuple[Measure, Instrument, str]] = {
    "pga": (Measure.PGA, Instrument.VAS, "cm"),
    "ptga": (Measure.PTGA, Instrument.VAS, "cm"),
    "extramuscular": (Measure.EXTRAMUSCULAR, Instrument.VAS, "cm"),
    "pga-likert": (Measure.PGA, Instrument.LIKERT, "1"),
    "ptga-likert": (Measure.PTGA, Instrument.LIKERT, "1"),
    "mmt8-80": (Measure.MMT8, Instrument.MMT8_80, "1"),
    "mmt8-150": (Measure.MMT8, Instrument.MMT8_150, "1"),
    "cmas": (Measure.MMT8, Instrument.CMAS, "1"),
    "haq-di": (Measure.HAQ, Instrument.HAQ_DI, "1"),
    "chaq": (Measure.HAQ, Instrument.CHAQ, "1"),
    "das": (Measure.EXTRAMUSCULAR, Instrument.DAS, "1"),
    "chq-phs": (Measure.ENZYME, Instrument.CHQ_PHS, "1"),
}
ENZYME_VALUE_SETS: Mapping[str, Instrument] = {
    "enzyme-ck": Instrument.CK,
    "enzyme-aldolase": Instrument.ALDOLASE,
    "enzyme-ldh": Instrument.LDH,
    "enzyme-ast": Instrument.AST,
    "enzyme-alt": Instrument.ALT,
}


@dataclass
class PatientData:
    """Everything of one patient that the clinical core needs, as facts, with the issues met."""

    patient_ref: str
    patient_source: str
    patient: PatientFacts = field(default_factory=PatientFacts)
    measures: list[MeasureValue] = field(default_factory=list)
    administrations: list[IvigAdministration] = field(default_factory=list)
    weights: list[BodyWeight] = field(default_factory=list)
    heights: list[BodyHeight] = field(default_factory=list)
    bmis: list[BodyMassIndex] = field(default_factory=list)
    evidence: list[RiskEvidence] = field(default_factory=list)
    events: list[TeeEvent] = field(default_factory=list)
    jdm_coded: bool = False
    pm_coded: bool = False  # a polymyositis diagnosis (ValueSet polymyositis)
    dm_onset: date | None = None
    dm_onset_age: int | None = None  # completed years, of an onset recorded as an age
    # an onset recorded to the year or month only: the first and the last day it may be (the
    # earliest of such onsets: the lowest first day, the lowest last day)
    dm_onset_partial: tuple[date, date] | None = None
    # the earliest recordedDate (its last possible day) of a dermatomyositis diagnosis recorded
    # with no onset: its onset was on or before it (EventReader._dm_recorded)
    dm_recorded_by: date | None = None
    # the myositis diagnoses read, each with the verification status it was recorded with
    diagnoses: list[MyositisDiagnosis] = field(default_factory=list)
    # risk factors whose records the server returned only in part, with why (set by the caller
    # from its read: :func:`fhirtis.fhir.needs.unread_risks`)
    unread_risks: list[UnassessedRiskFactor] = field(default_factory=list)
    deceased: bool = False  # Patient.deceased[x] says the patient has died
    deceased_on: FhirTime | None = None  # Patient.deceasedDateTime
    issues: list[Issue] = field(default_factory=list)
    used: dict[str, str] = field(default_factory=dict)  # ref → versioned ref, every source used
    # versioned ref → the security labels it carries forward (fhirtis.fhir.security), of the
    # sources used that have any
    labels: dict[str, frozenset[Label]] = field(default_factory=dict)
    existing_derived: list[Json] = field(default_factory=list)  # fhirtis's own earlier output
    # the latest time recorded with a time of day (its offset: the records' calendar), and the
    # latest day of a time recorded as a date only (:func:`~fhirtis.pipeline.offline.as_of_for`)
    latest_instant: datetime | None = None
    latest_day: date | None = None

    @property
    def records_zone(self) -> tzinfo | None:
        """The records' calendar: the UTC offset of the latest time recorded with a time of day;
        None without one (a date-only record gives no offset). Day rules compare calendar dates
        as the records give them (clinical spec §4, §5.3)."""
        instant = self.latest_instant
        return instant.tzinfo if instant is not None else None

    @property
    def latest(self) -> datetime | None:
        """The latest clinical time seen: the latest time recorded with a time of day, or the
        end of the latest day recorded as a date only, on the records' calendar
        (:attr:`records_zone`, UTC without one), where that is later. So no record dated on a
        later day comes before it: a PGA at 08:00+10:00 on the 12th is later than a weight of
        the 11th, date only (whose end in UTC, 09:59+10:00 on the 12th, is not)."""
        day, instant = self.latest_day, self.latest_instant
        if day is None:
            return instant
        end = FhirTime(day).span(self.records_zone)[1]
        return end if instant is None or end > instant else instant

    def facts(self) -> PatientFactsBundle:
        """What the clinical core reads of this patient."""
        return PatientFactsBundle(**{name: getattr(self, name) for name in _FACT_NAMES})


_FACT_NAMES = tuple(f.name for f in fields(PatientFactsBundle))
"""The fields of :class:`PatientFactsBundle`, read once (``fields`` builds them per call)."""


@dataclass(frozen=True)
class ExtractSettings:
    """Site settings the mapping needs."""

    default_uln_u_per_l: Mapping[Instrument, Decimal] = field(default_factory=dict)


def _article(resource_type: object) -> str:
    """ "an Observation", "a MedicationAdministration": a resource type with its article."""
    name = resource_type if isinstance(resource_type, str) else "resource"
    return f"{'an' if name[:1] in set('AEIOU') else 'a'} {name}"


class ExcludedError(Exception):
    """A resource (or the element at ``path``) cannot be used; becomes an :class:`Issue`."""

    def __init__(self, code: str, message: str, path: str) -> None:
        self.issue_code, self.message, self.path = code, message, path
        super().__init__(message)

    def as_issue(self, resource: Json, part: str = "") -> Issue:
        """This exclusion as an error about ``resource`` (``part``: what of it is excluded,
        e.g. "component 2"; the whole resource when empty)."""
        ref: str | None = ref_of(resource)
        named = ref
        if not isinstance(resource.get("id"), str):  # not "Observation/None": the path says which
            ref, named = None, f"{_article(resource.get('resourceType'))} without an id"
        what = f"{named} {part}" if part else named
        return Issue("error", self.issue_code, f"{what} excluded: {self.message}", self.path, ref)

    def as_warning(self, resource: Json, said: str) -> Issue:
        """This refusal as a warning about ``resource`` that stays in use without the element:
        ``said`` tells what follows (it names :attr:`message` as it needs)."""
        ref = ref_of(resource)
        return Issue("warning", self.issue_code, f"{ref}: {said}", self.path, ref)


def ref_of(resource: Json) -> str:
    return f"{resource.get('resourceType')}/{resource.get('id')}"


def unversioned(reference: str) -> str:
    """A literal reference without its version: ``Patient/1/_history/2`` (absolute or not) →
    ``Patient/1``. R4 references may be version specific; the resource is the same one."""
    head, sep, _ = reference.partition("/_history/")
    return head if sep else reference


def versioned(resource: Json) -> str:
    meta = resource.get("meta")
    version = meta.get("versionId") if isinstance(meta, dict) else None
    base = ref_of(resource)
    return f"{base}/_history/{version}" if isinstance(version, str) and version else base


def concept_codings(concept: object, path: str) -> list[tuple[str | None, str | None]]:
    if concept is None:
        return []
    if not isinstance(concept, dict):
        raise ExcludedError("structure", "CodeableConcept must be an object", path)
    codings = concept.get("coding", [])
    if not isinstance(codings, list):
        raise ExcludedError("structure", "coding must be an array", f"{path}.coding")
    out: list[tuple[str | None, str | None]] = []
    for i, c in enumerate(codings):
        if not isinstance(c, dict):
            raise ExcludedError("structure", "Coding must be an object", f"{path}.coding[{i}]")
        system, code = c.get("system"), c.get("code")
        if (system is not None and not isinstance(system, str)) or (
            code is not None and not isinstance(code, str)
        ):
            raise ExcludedError(
                "value", "Coding system and code must be strings", f"{path}.coding[{i}]"
            )
        out.append((system, code))
    return out


def concept_text(concept: object) -> str:
    if isinstance(concept, dict):
        text = concept.get("text")
        if isinstance(text, str):
            return text
        for c in json_array(concept.get("coding")):
            if isinstance(c, dict) and isinstance(c.get("display"), str):
                return str(c["display"])
    return ""


def concept_names(concept: object) -> list[str]:
    """Every name a CodeableConcept gives: its text and its codings' displays."""
    if not isinstance(concept, dict):
        return []
    out = [concept["text"]] if isinstance(concept.get("text"), str) else []
    for c in json_array(concept.get("coding")):
        if isinstance(c, dict) and isinstance(c.get("display"), str):
            out.append(c["display"])
    return out


def resolve_reference(resolve: Mapping[str, Json], reference: str) -> Json | None:
    """The resource ``reference`` names in ``resolve``, as given or without its version (a
    Bundle lists ``Medication/1``; a reference may say ``Medication/1/_history/2``)."""
    return resolve.get(reference) or resolve.get(unversioned(reference))


def referenced(resource: Json, target: str, resolve: Mapping[str, Json]) -> Json | None:
    """The resource that ``target``, a reference text of ``resource``, names: a contained
    resource of ``resource`` for ``#id`` (the last of that id), else as
    :func:`resolve_reference` finds it."""
    if not target.startswith("#"):
        return resolve_reference(resolve, target)
    found: Json | None = None
    for c in json_array(resource.get("contained")):
        if isinstance(c, dict) and c.get("id") == target[1:]:
            found = c
    return found


_COMPARATORS = frozenset({"<", "<=", ">=", ">"})  # R4 quantity-comparator


def conditional_patient_problem(reference: str, patient: Json | None) -> str | None:
    """Why a conditional reference (``Patient?identifier=system|value``, R4 http.html
    "Conditional References", as a transaction may carry) does not name ``patient``, or None
    when it does. Only ``identifier`` criteria are read (each must match one of the Patient's
    identifiers; a value without ``system|`` matches any system); the reason never repeats the
    criteria (they identify the patient)."""
    criteria = parse_qsl(reference.partition("?")[2], keep_blank_values=True)
    if not criteria or any(name != "identifier" for name, _ in criteria):
        return "is a conditional reference that cannot be resolved (only identifier is read)"
    identifiers = (
        [i for i in json_array(patient.get("identifier")) if isinstance(i, dict)]
        if patient is not None
        else []
    )
    for _, token in criteria:
        system, bar, value = token.rpartition("|")
        if not any(
            i.get("value") == value and (not bar or i.get("system") == (system or None))
            for i in identifiers
        ):
            return "is a conditional reference that matches no Patient of the Bundle"
    return None


def read_quantity(q: object, path: str) -> tuple[Decimal, str | None]:
    """(value, UCUM unit or None). The UCUM ``code`` is preferred; a bare ``unit`` text is used
    only when no system is given or the system is UCUM, read through the unit alias table. A
    value with a ``comparator`` (``>1200``) is censored, not exact: refused. A ``unit`` text
    and ``code`` that disagree (:func:`_unit_conflict`: "70 kg" coded ``[lb_av]``, "4 mL/kg/h"
    coded ``mL/h``) are refused too: the code alone would misread the value, and which of the
    two is right cannot be told (clinical spec §4: reported, never misread)."""
    if not isinstance(q, dict):
        raise ExcludedError("structure", "Quantity must be an object", path)
    if "value" not in q:
        raise ExcludedError("required", "Quantity has no value", f"{path}.value")
    try:
        value = parse_decimal(q["value"])
    except PrimitiveError as exc:
        raise ExcludedError("value", f"Quantity.value: {exc}", f"{path}.value") from None
    comparator = q.get("comparator")
    if comparator is not None:  # "<", "<=", ">=", ">": a censored value ("above 1200")
        ok = isinstance(comparator, str) and comparator in _COMPARATORS
        shown = repr(comparator) if ok else "(not an R4 comparator)"
        raise ExcludedError(
            "value", f"value with comparator {shown} is not an exact value", f"{path}.comparator"
        )
    system, code, unit = q.get("system"), q.get("code"), q.get("unit")
    if system is not None and system != UCUM:
        raise ExcludedError("code-invalid", "Quantity unit is not a UCUM unit", f"{path}.system")
    if isinstance(code, str) and code:
        if isinstance(unit, str) and unit != code and _unit_conflict(unit.strip(), code):
            raise ExcludedError(
                "value",
                f"its unit {unit.strip()!r} and UCUM code {code!r} disagree; not read "
                "(the unit must be corrected)",
                path,
            )
        return value, code
    # unit text only: the documented alias table (mL/hr, lbs, Units/L …), else the text as UCUM
    return value, unit_from_text(unit) if isinstance(unit, str) and unit.strip() else None


def _per_weight(unit: str) -> bool:
    """Whether a unit (a UCUM code, or a display text in lower case: "mL/kg/hr", "milliliter
    per kilogram per hour", "mL/lb/h") is per body weight."""
    return any(w in unit for w in _PER_WEIGHT)


_PER_WEIGHT = ("kg", "lb", "kilo", "pound")


@lru_cache(maxsize=256)
def _disagree(text: str, code: str) -> bool:
    """Whether a Quantity's ``unit`` text and its UCUM ``code`` say different things: one per
    body weight and the other not ("mL/kg/h" shown, "mL/h" coded), or a text UCUM reads that
    converts to the code by another factor or not at all ("mL/min" shown, "mL/h" coded). A text
    that is no UCUM unit (after the alias table: "milliliters per hour") leaves the code."""
    shown = unit_from_text(text)
    if _per_weight(shown.lower()) != _per_weight(code):
        return True
    if not is_ucum(shown):
        return False
    try:
        return convert(Decimal(1), shown, code) != 1
    except UnitError:
        return True


def _unit_conflict(shown: str, code: str) -> bool:
    """Whether a Quantity's ``unit`` text ``shown`` (trimmed) says another thing than its UCUM
    ``code`` (:func:`_disagree`). A code in capitals ("ML", "ML/H": the case-sensitive reading
    decides, :func:`~fhirtis.fhir.units.case_refusal`) and a dimensionless code (``{score}``,
    ``1``: a score's scale written as its unit, "/150"; the instrument comes from the
    Observation's code, clinical spec §6) are left to the code."""
    if not shown or shown == code or code.startswith("{") or code == "1":
        return False
    return not code.strip().isupper() and _disagree(shown, code)


def coded_quantity(q: object) -> tuple[Decimal, str] | None:
    """:func:`read_quantity` of the usual Quantity (a JSON number, UCUM or no system, a UCUM
    ``code``, no ``unit`` text or the code itself) without the checks' function calls; None for
    anything else, which :func:`read_quantity` then reads (and refuses, saying where). Where
    this gives a result, read_quantity gives the same: every check it makes passes for such a
    Quantity."""
    if type(q) is not dict:
        return None
    code = q.get("code")
    if type(code) is not str or not code or "comparator" in q:
        return None
    unit = q.get("unit")
    if unit is not None and unit != code:  # a unit text of its own: read_quantity compares
        return None
    system = q.get("system")
    if system is not None and system != UCUM:
        return None
    value = q.get("value")
    if type(value) is float:
        known = FLOAT_DECIMALS.get(value)  # parse_decimal of a float met before
        if known is not None:
            return known, code
        try:
            return parse_decimal(value), code
        except PrimitiveError:  # not finite: read_quantity says so
            return None
    if type(value) is int:  # parse_decimal of a JSON integer (a boolean's type is bool)
        if -MAGNITUDE_LIMIT < value < MAGNITUDE_LIMIT:
            return Decimal(value), code
        return None  # beyond the magnitude of any value read: read_quantity says so
    return None


def to_unit(value: Decimal, unit: str | None, target: str, path: str) -> Decimal:
    if unit is None:
        if target == "1":
            return value
        raise ExcludedError("required", f"Quantity has no unit (expected {target})", path)
    try:
        return convert(value, unit, target)
    except UnitError:
        why = case_refusal(unit, target)
        if why is None:
            why = f"unit {unit!r} is unknown or cannot convert to {target!r}"
        raise ExcludedError("value", why, path) from None


@dataclass(frozen=True)
class TimeElements:
    """Time elements tried in turn ("effectiveDateTime", "effectivePeriod.start" …), each split
    once into its element and its part (a module constant per use, not split per resource)."""

    keys: tuple[str, ...]
    parts: tuple[tuple[str, str, str], ...]  # (key, element, part or "")
    missing: str  # the message when none is present
    # the end of a use or a condition: the "no end" placeholder (:func:`is_open_end`) is no end
    open_end: bool = False

    @classmethod
    def of(cls, *keys: str, open_end: bool = False) -> TimeElements:
        parts = tuple((key, *key.split(".", 1)) if "." in key else (key, key, "") for key in keys)
        return cls(keys, parts, f"no {' or '.join(keys)}", open_end)  # type: ignore[arg-type]


def is_open_end(value: object) -> bool:
    """Whether ``value`` is the "no end" placeholder some converters and EHR exports write as
    a Period's end (``9999-12-31``, at any precision or zone): a date in the calendar's last
    year, which no clinical record has (:data:`~fhirtis.fhir.primitives.LAST_YEAR`). On the end
    of a use or a condition it means what an absent end means: not ended."""
    return isinstance(value, str) and value.startswith("9999")


def _first_present(resource: Json, elements: TimeElements, path: str) -> tuple[object, str] | None:
    """The first present of ``elements`` and its key. A Period (``effectivePeriod.start``'s
    ``effectivePeriod``) that is not an object is malformed: refused, naming it, never read as
    if its text were the start or the end."""
    for key, head, tail in elements.parts:
        value = resource.get(head)
        if tail and value is not None:
            if not isinstance(value, dict):
                raise ExcludedError("structure", f"{head} is not an object", f"{path}.{head}")
            value = value.get(tail)
        if value is not None and not (elements.open_end and is_open_end(value)):
            return value, key
    return None


def first_time(resource: Json, elements: TimeElements, path: str) -> tuple[datetime, bool, str]:
    """The first present of the time ``elements`` as (aware datetime, date-only?, element
    path)."""
    found = _first_present(resource, elements, path)
    if found is None:
        raise ExcludedError("required", elements.missing, path)
    value, key = found
    try:
        when, date_only = parse_date_time(value)
    except PrimitiveError as exc:
        raise ExcludedError("value", f"{key}: {exc}", f"{path}.{key}") from None
    return when, date_only, key


def optional_date(resource: Json, elements: TimeElements, path: str) -> date | None:
    """The date of the first present of ``elements``; None when none is present (a malformed
    one is refused, naming it)."""
    try:
        return first_time(resource, elements, path)[0].date()
    except ExcludedError as exc:
        if exc.issue_code != "required":
            raise
        return None


def partial_days(
    resource: Json, elements: TimeElements, path: str
) -> tuple[object, date, date] | None:
    """The first present of ``elements`` when it is recorded only to the year or month (a valid
    R4 dateTime, "2016-01"): the value as recorded, its first and its last day. None when none
    is present, or it is a day, or no date at all (its refusal stands)."""
    try:
        found = _first_present(resource, elements, path)
    except ExcludedError:
        return None
    if found is None:
        return None
    try:
        first, last = parse_date_bounds(found[0])
    except PrimitiveError:
        return None
    return None if last is None else (found[0], first, last)


def use_days(
    data: PatientData,
    resource: Json,
    elements: TimeElements,
    path: str,
    kind: RiskFactorKind,
    *,
    latest: bool,
) -> tuple[date | None, date | None]:
    """The first and last day the first present of ``elements`` names, for a use that shows
    the risk factor ``kind`` (an estrogen, a catheter in place): a day twice; a year or month
    only (IPS: ``effectivePeriod.start`` "2016-01", a valid R4 dateTime) as its first and last
    day, with a warning saying which one the use is counted from (a start, ``latest`` False:
    the first) or until (an end: the last), the safe side for the maximum rate. (None, None)
    when none is present; anything else is refused, naming it."""
    try:
        day = optional_date(resource, elements, path)
        return day, day
    except ExcludedError as exc:
        partial = partial_days(resource, elements, path)
        if exc.issue_code != "value" or partial is None:  # a malformed Period, say: refused
            raise
        value, first, last = partial
        said = (
            f"counted until {last}, the last day it may have lasted"
            if latest
            else f"counted from {first}, the first day it may have begun"
        )
        data.issues.append(
            exc.as_warning(
                resource,
                f"recorded only to the year or month ({value}): the "
                f"{kind.value} risk factor is {said}",
            )
        )
        return first, last


def use_began(
    resource: Json, elements: TimeElements, path: str, days: tuple[date | None, date | None]
) -> FhirTime | None:
    """When a use began, at the precision recorded, as a time of the record (the latest record
    is the evaluation's own time): ``days`` are its first and last day (:func:`use_days`); a
    start recorded only to a year or month (two days) or absent is no time of the record."""
    first, last = days
    if first is None or first != last:
        return None
    try:
        return first_fhir_time(resource, elements, path)
    except ExcludedError:
        return None


def first_fhir_time(resource: Json, elements: TimeElements, path: str) -> FhirTime:
    """Like :func:`first_time`, at the precision recorded: a date-only value stays a date."""
    found = _first_present(resource, elements, path)
    if found is None:
        raise ExcludedError("required", elements.missing, path)
    value, key = found
    try:
        if isinstance(value, str):
            return fhir_time_of(value)
        parse_date_time(value)  # not a string: raises, saying so
    except PrimitiveError as exc:
        raise ExcludedError("value", f"{key}: {exc}", f"{path}.{key}") from None
    raise AssertionError("unreachable: parse_date_time refuses what is not a string")


@lru_cache(maxsize=16384)
def fhir_time_of(value: str) -> FhirTime:
    """A dateTime text as a FhirTime, once per distinct text (a FhirTime is immutable; errors
    are raised again, not kept)."""
    when, date_only = parse_date_time(value)
    return FhirTime(when.date()) if date_only else FhirTime.of(when)


#: The "not done" flags of earlier FHIR releases, modifier elements there, that R4 says with a
#: status instead (``not-done``, ``not-taken``), by resource type: each with the values that
#: say "done". STU3 MedicationAdministration ``notGiven``, DSTU2 ``wasNotGiven``; STU3
#: MedicationStatement ``taken`` (y | n | unk | na), DSTU2 ``wasNotTaken``; STU3 Procedure
#: ``notDone``, DSTU2 ``notPerformed``. Data converted from those releases (a Bundle or NDJSON
#: says no version) may keep them: read as R4 they were unknown and ignored, and a 35 g infusion
#: "NOT administered" counted as given.
EARLIER_RELEASE_NEGATIONS: dict[str, tuple[tuple[str, tuple[object, ...]], ...]] = {
    "MedicationAdministration": (("notGiven", (False,)), ("wasNotGiven", (False,))),
    "MedicationStatement": (("taken", ("y",)), ("wasNotTaken", (False,))),
    "Procedure": (("notDone", (False,)), ("notPerformed", (False,))),
}


def earlier_release_negation(resource: Json, path: str) -> ExcludedError | None:
    """The exclusion of a resource that carries an earlier release's "not done" flag
    (:data:`EARLIER_RELEASE_NEGATIONS`) with a value other than "done": a modifier element
    there, which R4 (extensibility.html#modifierExtension) forbids processing as if absent."""
    flags = EARLIER_RELEASE_NEGATIONS.get(resource.get("resourceType"))  # type: ignore[arg-type]
    if flags is None:
        return None
    for name, done in flags:
        if name in resource and resource[name] not in done:
            return ExcludedError(
                "not-supported",
                f"{name} is an element of an earlier FHIR release (STU3/DSTU2) saying it was "
                f"not done or not known to be done; fhirtis reads FHIR R4, where the status "
                "says it: not used",
                f"{path}.{name}",
            )
    return None


def modifier_extension_error(where: str, holder: str = "") -> ExcludedError:
    """The exclusion of a resource with a modifier extension at ``where`` (on the resource, or
    on a backbone element fhirtis reads: a dosage, a reference range). R4
    (extensibility.html#modifierExtension): an application that does not know a modifier
    extension SHALL NOT process the element that holds it as if it were absent; fhirtis knows
    none, so such a resource is not used. ``holder``: what has it when not the resource
    itself ("its Medication ")."""
    return ExcludedError(
        "not-supported",
        f"{holder}has a modifierExtension, which may change its meaning and fhirtis does not "
        "know; not used",
        where,
    )


class ExtractorBase:
    """State and helpers shared by the resource-family readers."""

    def __init__(
        self,
        terminology: Terminology,
        settings: ExtractSettings | None = None,
    ) -> None:
        self.t = terminology
        self.settings = settings or ExtractSettings()
        self._enzymes = {vs: terminology.value_set(vs) for vs in ENZYME_VALUE_SETS}
        self._weight = terminology.value_set("body-weight")
        self._height = terminology.value_set("body-height")
        self._bmi = terminology.value_set("body-mass-index")
        self._smoking_status = terminology.value_set("smoking-status-observation")
        # per patient: (date, source if a current smoker else None) of smoking status
        # Observations, made evidence once all are read (ObservationReader._finish_smoking)
        self._smoking_statuses: list[tuple[date, str | None]] = []
        # per patient: dermatomyositis onsets recorded as an age range (R4 onsetRange), as
        # (resource, path, low, high) in completed years, placed once the birth date is read
        # (EventReader._finish_dm_onset_ranges)
        self._dm_onset_ranges: list[tuple[Json, str, int, int]] = []
        # per patient: thromboembolic Conditions whose onset is an age (R4 onsetAge, or an
        # onsetRange's high), as (resource, path of the age, completed years, recordedDate), made
        # history evidence once the birth date is read (EventReader._finish_tee_onset_ages)
        self._tee_onset_ages: list[tuple[Json, str, int, date | None]] = []
        # per patient: (source, path) of each MedicationRequest of an immune globulin, said
        # when no administration was read (EventReader._finish_ivig_orders)
        self._ivig_orders: list[tuple[str, str]] = []
        # per patient: the IVIG administrations counted, by business identifier (system, value)
        # and start: the copy counted, what it recorded, its meta.lastUpdated and its index in
        # data.administrations (a second resource with the same key is the same administration
        # sent again: counted once, clinical spec §4; MedicationReader._sent_again)
        self._ivig_identified: dict[
            tuple[str, str, FhirTime], tuple[str, tuple[object, ...], datetime | None, int]
        ] = {}
        self._tee = {TeeKind(k): v for k, v in terminology.with_value_sets("tee-").items()}
        self._risk = {RiskFactorKind(k): v for k, v in terminology.with_value_sets("risk-").items()}
        self._ivig = terminology.value_set("ivig-products")
        self._scig = terminology.value_sets.get("scig-products")
        self._ig_names = terminology.value_sets.get("immune-globulin-names")
        self._dual = terminology.value_sets.get("ivig-dual-route-products")
        self._routes = {
            kind: terminology.value_sets[vs]
            for kind, vs in (
                ("iv", "route-intravenous"),
                ("sc", "route-subcutaneous"),
                ("im", "route-intramuscular"),
            )
            if vs in terminology.value_sets
        }
        self._dm = [
            terminology.value_sets[v]
            for v in ("dermatomyositis", "juvenile-dermatomyositis")
            if v in terminology.value_sets
        ]
        self._jdm = terminology.value_sets.get("juvenile-dermatomyositis")
        self._pm = terminology.value_sets.get("polymyositis")
        # the myositis diagnoses fhirtis knows (dermatomyositis, polymyositis): a code of theirs
        # is known, never reported as one that could not be classified as a TEE or risk factor
        self._myositis = [
            *self._dm,
            *(terminology.value_sets[v] for v in ("polymyositis",) if v in terminology.value_sets),
        ]

        # answers that depend on the terminology only, shared by every extractor using it
        self._kinds: dict[Any, Any] = terminology.memo_for("extract.observation-kind")
        # the same answers for a concept of one coding, by the coding's (system, code)
        self._coding_kinds: dict[Any, Any] = terminology.memo_for("extract.coding-kind")
        self._ig_kinds: dict[Any, Any] = terminology.memo_for("extract.immune-globulin")
        self._members_memo: dict[Any, Any] = terminology.memo_for("extract.value-set-members")

        self._listed: Sequence[tuple[str, Json]] = ()  # the patient's resources
        self._conditions: set[str] | None = None  # see _condition_refs
        self._device_uses: set[int] | None = None  # see EventReader._used_devices
        # (system, code) not classifiable → (ValueSet families, first resource, path)
        self._unclassified: dict[tuple[str, str], tuple[set[str], str, str]] = {}
        self._recognised: set[tuple[str, str]] = set()  # codes of recognised concepts
        # per patient: what each Medication resource read is (medications._MedicationRead), by
        # the resource read (the administrations of one product share it)
        self._medications: dict[int, Any] = {}
        # per patient: the resource a contained Medication was read from (its container), by
        # the Medication read: the Medication's own ``#id`` references name its siblings there
        self._med_containers: dict[int, Json] = {}
        # per patient: what a medicationReference's text names (medications._MedicationRead)
        self._med_refs: dict[str, Any] = {}
        # what the Medications of one content are (medications._MedicationRead), by content
        self._med_contents: dict[Any, Any] = terminology.memo_for("extract.medication-content")
        self._resolve: Mapping[str, Json] = {}
        self._path = "Bundle"  # where the resource being read is (set per resource)

    # -- helpers -----------------------------------------------------------------------------

    def _use(
        self, data: PatientData, resource: Json, when: datetime | FhirTime | None = None
    ) -> str:
        """Record ``resource`` as a source of the computation (``data.used``, ``data.latest_*``)
        and return its versioned reference. A resource that carries a modifier extension is
        refused here, where it would be used (see :func:`modifier_extension_error`)."""
        if resource.get("modifierExtension"):
            raise modifier_extension_error(f"{self._path}.modifierExtension")
        rtype = resource.get("resourceType")
        if rtype in EARLIER_RELEASE_NEGATIONS:
            refused = earlier_release_negation(resource, self._path)
            if refused is not None:
                raise refused
        ref = f"{rtype}/{resource.get('id')}"  # ref_of(resource)
        meta = resource.get("meta")
        version = meta.get("versionId") if type(meta) is dict else None
        used = f"{ref}/_history/{version}" if isinstance(version, str) and version else ref
        data.used[ref] = used
        if type(meta) is dict and "security" in meta:
            self._add_labels(data, used, labels_of(meta))
        if when is not None:
            if isinstance(when, FhirTime):
                instant = when.instant
                if instant is None:  # a date only: its day (it counts up to the day's end)
                    day = data.latest_day
                    if day is None or when.day > day:
                        data.latest_day = when.day
                    return used
                when = instant
            timed = data.latest_instant
            # ``is``: the resources of one visit share one parsed time (parse_date_time_text)
            if timed is None or (when is not timed and when > timed):
                data.latest_instant = when
        return used

    @staticmethod
    def _add_labels(data: PatientData, used: str, labels: frozenset[Label]) -> None:
        """Add ``labels`` to those the source ``used`` (a versioned reference) carries forward:
        its own and those of the resources it contains that were read (a report's results)."""
        if labels:
            known = data.labels.get(used)
            data.labels[used] = labels if known is None else known | labels

    @classmethod
    def _name_read(cls, data: PatientData, resource: Json, source: str) -> None:
        """A resource read by id through the source ``source`` (a versioned reference: a
        Medication through an administration or statement, a catheter Device through its use
        statement): the Provenance names it (versioned) among the sources, with its security
        labels; and what is derived from ``source`` is derived from it too (the product, its
        concentration, the estrogen or the catheter it records), so its labels are also
        ``source``'s, as a contained one's are. Not a contained one (part of its container, the
        source) nor one without an id."""
        if not isinstance(resource.get("id"), str):
            return
        used = versioned(resource)
        data.used.setdefault(ref_of(resource), used)
        labels = labels_of(resource.get("meta"))
        if labels:
            data.labels.setdefault(used, labels)
            cls._add_labels(data, source, labels)

    def _contained_labels(
        self, data: PatientData, used: str, container: Json, part: object
    ) -> None:
        """The security labels of ``part``, read with ``container`` (the source ``used``), added
        to the container's when ``part`` is one of its contained resources: a contained resource
        is part of its container (R4 references.html), which is what is cited and named."""
        if type(part) is not dict or part is container:
            return
        meta = part.get("meta")
        if type(meta) is not dict or "security" not in meta:
            return
        if any(c is part for c in json_array(container.get("contained"))):
            self._add_labels(data, used, labels_of(meta))

    def _check_subject(self, data: PatientData, resource: Json, key: str, path: str) -> None:
        subject = resource.get(key)
        ref = subject.get("reference") if isinstance(subject, dict) else None
        if ref == data.patient_ref:  # the usual case, first
            return
        if not isinstance(ref, str):
            raise ExcludedError("required", f"no {key}.reference", f"{path}.{key}")
        if ref.startswith("Patient?"):  # a transaction's conditional reference (R4 http.html)
            problem = conditional_patient_problem(ref, self._patient_resource(data))
            if problem is not None:
                raise ExcludedError("invalid", f"{key} {problem}", f"{path}.{key}")
            return
        ref = unversioned(ref)  # Patient/1/_history/2 is Patient/1
        if ref != data.patient_ref and not ref.endswith("/" + data.patient_ref):
            # a Bundle's entries may reference each other by fullUrl (urn:uuid:…, absolute URLs)
            target = self._resolve.get(ref)
            if target is None or ref_of(target) != data.patient_ref:
                raise ExcludedError("invalid", f"{key} is another patient", f"{path}.{key}")

    def _patient_resource(self, data: PatientData) -> Json | None:
        """The patient's Patient resource among the listed ones, or None."""
        for _, resource in self._listed:
            if resource.get("resourceType") == "Patient" and ref_of(resource) == data.patient_ref:
                return resource
        return None

    def _condition_refs(self) -> set[str]:
        """The patient's Conditions ("Type/id"), found once per patient when first asked: a
        Condition an AdverseEvent cites as its resultingCondition may be the same event, carried
        by the Condition (``EventReader._carries_event``), and the AdverseEvent is then not
        counted a second time."""
        if self._conditions is None:
            self._conditions = {
                ref_of(r) for _, r in self._listed if r.get("resourceType") == "Condition"
            }
        return self._conditions

    def _require_id(self, resource: Json, path: str) -> None:
        if not is_id(resource.get("id")):
            raise ExcludedError("required", "resource has no valid id", f"{path}.id")
