"""An IVIG admixture whose immunoglobulin ingredient carries no strength (R4
``Medication.ingredient.strength`` is 0..1) beside a diluent that has one, modelled as the HL7 R4
example medicationexample0317 models an admixture ("KCl in 0.9% NaCl",
http://hl7.org/fhir/R4/medicationexample0317.json.html, stored in
tests/data/published/r4/medicationexample0317.json): the sodium chloride ingredient, RxNorm
313002, with its strength 0.9 g / 100 mL.

Clinical spec §4: the concentration is the strength of the immunoglobulin ingredient, identified
by its code or name, never another ingredient's; an unknown concentration leaves the grams of a
dose in mL (and the mg/kg/min of a rate in mL/h) unknown, "a concentration is never assumed".
Before, the saline's 9 mg/mL was taken as the immunoglobulin's: 700 mL read as 6.3 g (not
unknown), and 300 mL/h at 68 kg as 0.66 mg/kg/min, far under the 4 mg/kg/min maximum, so a rate
that may be above it was never reported as unknown."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fhir.builders import LOINC, administration, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
WEIGHT = obs("w1", "29463-7", 68, "kg", "2025-03-01", system=LOINC)
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
# the diluent ingredient exactly as medicationexample0317 writes it
SALINE: Json = {
    "itemCodeableConcept": {
        "coding": [
            {
                "system": RXNORM,
                "code": "313002",
                "display": "Sodium Chloride 0.9% injectable solution",
            }
        ]
    },
    "strength": {
        "numerator": {"value": 0.9, "system": "http://unitsofmeasure.org", "code": "g"},
        "denominator": {"value": 100, "system": "http://unitsofmeasure.org", "code": "mL"},
    },
}


def _medication(ig: Json) -> Json:
    return {
        "resourceType": "Medication",
        "id": "m1",
        "code": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
            "text": "immune globulin intravenous in sodium chloride 0.9%",
        },
        "ingredient": [ig, SALINE],
    }


def _ma() -> Json:
    return administration(
        "a1",
        "2025-03-02T09:00:00Z",
        "2025-03-02T11:20:00Z",
        dose=qty(700, "mL"),
        rate=qty(300, "mL/h"),
        med="Medication/m1",
    )


def test_an_immunoglobulin_without_strength_never_takes_the_diluents() -> None:
    """The immunoglobulin is identified (by name) but has no strength: unknown, not 9 mg/mL."""
    ig = {"itemCodeableConcept": {"text": "immune globulin (human)"}}
    (a,) = extract(patient(), WEIGHT, _medication(ig), _ma()).administrations
    assert a.concentration_mg_per_ml is None
    assert a.dose_ml == Decimal(700)
    assert a.rate_ml_per_h == Decimal(300)


def test_an_immunoglobulin_coded_without_strength_never_takes_the_diluents() -> None:
    """Identified by its ATC code on the ingredient (spec §4: a code on Medication.ingredient)."""
    ig = {
        "itemCodeableConcept": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
        },
        "isActive": True,
    }
    (a,) = extract(patient(), WEIGHT, _medication(ig), _ma()).administrations
    assert a.concentration_mg_per_ml is None


def test_the_immunoglobulins_strength_is_still_read_beside_the_diluent() -> None:
    """Control: with its own strength (10 g / 100 mL) the immunoglobulin gives 100 mg/mL."""
    ig = {
        "itemCodeableConcept": {"text": "immune globulin (human)"},
        "strength": {"numerator": qty(10, "g"), "denominator": qty(100, "mL")},
    }
    (a,) = extract(patient(), WEIGHT, _medication(ig), _ma()).administrations
    assert a.concentration_mg_per_ml == Decimal(100)


def test_a_single_unnamed_active_ingredient_still_gives_the_strength() -> None:
    """Control (the rule kept): no ingredient identified as an immune globulin, one active
    ingredient with a strength: its strength is taken."""
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {
            "coding": [{"system": "http://www.whocc.no/atc", "code": "J06BA02"}],
            "text": "Octagam 10%",
        },
        "ingredient": [
            {
                "itemCodeableConcept": {"text": "active substance"},
                "strength": {"numerator": qty(10, "g"), "denominator": qty(100, "mL")},
            }
        ],
    }
    (a,) = extract(patient(), WEIGHT, med, _ma()).administrations
    assert a.concentration_mg_per_ml == Decimal(100)


def _ratio_ma(num: Json, den: Json) -> Json:
    ma = administration("a1", "2025-03-02T09:00:00Z", dose=qty(70, "g"), med="Medication/m1")
    ma["dosage"]["rateRatio"] = {"numerator": num, "denominator": den}
    return ma


def test_a_rate_ratio_per_minute_is_converted_exactly() -> None:
    """``rateRatio`` 5 mL / 1 min (R4 dosage.rate[x] Ratio; the HL7 R4 example
    medicationadministration0302 writes a rateRatio) is 300 mL/h exactly, as ``rateQuantity``
    5 mL/min is (spec §6: conversions are exact). Before: 299.9999999999999999999999999, the
    hour divided by a rounded 1/60."""
    ig = {
        "itemCodeableConcept": {"text": "immune globulin (human)"},
        "strength": {"numerator": qty(10, "g"), "denominator": qty(100, "mL")},
    }
    med = _medication(ig)
    (a,) = extract(patient(), WEIGHT, med, _ratio_ma(qty(5, "mL"), qty(1, "min"))).administrations
    assert a.rate_ml_per_h == Decimal(300)
    (b,) = extract(patient(), WEIGHT, med, _ratio_ma(qty(1, "g"), qty(3, "min"))).administrations
    assert b.rate_mg_per_h == Decimal(20000)
    (c,) = extract(patient(), WEIGHT, med, _ratio_ma(qty(70, "mL"), qty(35, "min"))).administrations
    assert c.rate_ml_per_h == Decimal(120)
