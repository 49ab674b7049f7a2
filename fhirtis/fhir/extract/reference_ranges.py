"""Which of an Observation's reference ranges applies to the patient (pure: no I/O).

R4 Observation.referenceRange: several ranges are an "OR", each for the population its
``appliesTo``, ``age`` and ``type`` say. These functions tell whether a range is a normal range
and whether it applies to a patient of a known sex and birth date on a day: True, False, or None
(cannot be told), so that the reader never guesses between ranges.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from fhirtis.clinical.facts import PatientFacts, Sex
from fhirtis.clinical.population import age_in_years
from fhirtis.fhir.codes import SNOMED
from fhirtis.fhir.extract.common import ExcludedError, Json, concept_codings, read_quantity

_MEANING = "http://terminology.hl7.org/CodeSystem/referencerange-meaning"
_NORMAL: tuple[str | None, str | None] = (_MEANING, "normal")
# appliesTo codes that name one sex: SNOMED CT 248153007 Male, 248152002 Female (R4
# valueset-referencerange-appliesto), referencerange-meaning male / female, and
# administrative-gender male / female (as some laboratories send them)
_RANGE_SEX: Mapping[tuple[str | None, str | None], Sex] = {
    (SNOMED, "248153007"): Sex.MALE,
    (SNOMED, "248152002"): Sex.FEMALE,
    (_MEANING, "male"): Sex.MALE,
    (_MEANING, "female"): Sex.FEMALE,
    ("http://hl7.org/fhir/administrative-gender", "male"): Sex.MALE,
    ("http://hl7.org/fhir/administrative-gender", "female"): Sex.FEMALE,
}
# the UCUM units of age a range's age is read in, as completed units (years, months, weeks, days)
_AGE_UNITS = frozenset({"a", "mo", "wk", "d"})


def is_normal(kind: object) -> bool:
    """A range's ``type`` says a normal range (referencerange-meaning ``normal``), or is absent."""
    if kind is None:
        return True
    try:
        return _NORMAL in concept_codings(kind, "type")
    except ExcludedError:
        return False


def range_fits(rr: Json, facts: PatientFacts, day: date) -> bool | None:
    """Whether a range applies to the patient: True, False, or None (cannot be told)."""
    verdicts = (
        _population_fits(rr.get("appliesTo"), facts.sex) if "appliesTo" in rr else True,
        _age_fits(rr.get("age"), facts, day) if "age" in rr else True,
    )
    if False in verdicts:
        return False
    return None if None in verdicts else True


def _population_fits(applies_to: object, sex: Sex) -> bool | None:
    """``appliesTo`` (every concept must hold, R4: an "AND"): False when one names only the
    other sex; None when one is a population fhirtis does not read or the sex is unknown."""
    if applies_to is None:
        return True
    if not isinstance(applies_to, list):
        return None
    verdict: bool | None = True
    for concept in applies_to:
        try:
            codings = concept_codings(concept, "appliesTo")
        except ExcludedError:
            verdict = None
            continue
        named = {_RANGE_SEX[c] for c in codings if c in _RANGE_SEX}
        if len(named) == 1:
            if sex in (Sex.MALE, Sex.FEMALE):
                if sex not in named:
                    return False
                continue
            verdict = None
        elif named or _NORMAL not in codings:  # both sexes, or a population not read
            verdict = None
    return verdict


def _age_fits(age: object, facts: PatientFacts, day: date) -> bool | None:
    """``age`` (a Range of completed years, months, weeks or days, both ends included) on
    ``day``, from the birth date (or its bounds, when recorded to the year or month only)."""
    if not isinstance(age, dict) or facts.birth_date is None:
        return None
    first = facts.birth_date  # the oldest the patient may be
    last = facts.birth_date_latest or first  # the youngest
    verdict: bool | None = True
    for side in ("low", "high"):
        if age.get(side) is None:
            continue
        try:
            value, unit = read_quantity(age[side], f"age.{side}")
        except ExcludedError:
            return None
        if unit is None or unit not in _AGE_UNITS or value != value.to_integral_value():
            return None
        limit = int(value)
        youngest, oldest = _completed(last, day, unit), _completed(first, day, unit)
        if side == "low":
            fails, holds = oldest < limit, youngest >= limit
        else:
            fails, holds = youngest > limit, oldest <= limit
        if fails:  # whatever the day of birth
            return False
        if not holds:  # depends on a day of birth not recorded
            verdict = None
    return verdict


def _completed(birth: date, day: date, unit: str) -> int:
    """Completed years (``a``), months (``mo``), weeks (``wk``) or days (``d``) of age."""
    if unit == "a":
        return age_in_years(birth, day)
    if unit == "mo":
        return (day.year - birth.year) * 12 + day.month - birth.month - (day.day < birth.day)
    days = (day - birth).days
    return days // 7 if unit == "wk" else days
