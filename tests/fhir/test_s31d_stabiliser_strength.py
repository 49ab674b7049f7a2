"""An IVIG Medication whose only ingredient with a strength is its stabiliser.

IVIG labels list their stabilisers and excipients with amounts: glycine (Gamunex-C, Gammagard
Liquid: "0.25 M glycine"), L-proline (Privigen: "approximately 250 mmol/L L-proline"), maltose
(Octagam 10 %: "90 mg/mL maltose"), D-sorbitol (Flebogamma DIF: "5 % D-sorbitol"), polysorbate
80 (Gammaplex, Panzyga), sucrose, glucose, albumin and sodium chloride (US prescribing
information, "Description"). An EHR's Medication built from such a label can carry that
ingredient, with its strength, and no immunoglobulin ingredient, `isActive` not given.

Clinical spec §4: "the concentration is the strength of the immunoglobulin ingredient, identified
by its code or name; never simply the first ingredient listed" — a stabiliser such as glycine
is named there as what is never taken. Before, the single ingredient with a strength was taken
whatever it named: Privigen with "glycine 2.25 g/100 mL" read 1400 mL as 31.5 g and 300 mL/h at
70 kg as 1.61 mg/kg/min, where a 10 % product is 7.14 mg/kg/min, above the 4 mg/kg/min maximum:
the wrong concentration hid a rate finding. Now the concentration is unknown, with the reason,
and so are the grams and the rate (never assumed). The rule for an ingredient that names nothing
else (tests/fhir/test_s27i_diluent_strength.py, "active substance") is kept."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fhir.builders import LOINC, administration, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
WEIGHT = obs("w1", "29463-7", 70, "kg", "2025-03-01", system=LOINC)


def _medication(ingredient: str, amount: float, unit: str, *, active: bool | None) -> Json:
    ing: Json = {
        "itemCodeableConcept": {"text": ingredient},
        "strength": {"numerator": qty(amount, unit), "denominator": qty(100, "mL")},
    }
    if active is not None:
        ing["isActive"] = active
    return {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"text": "Privigen 10% liquid"},
        "ingredient": [ing],
    }


def _ma() -> Json:
    ma = administration(
        "a1",
        "2025-03-02T09:00:00Z",
        "2025-03-02T13:40:00Z",
        dose=qty(1400, "mL"),
        med="Medication/m1",
    )
    ma["dosage"]["rateQuantity"] = qty(300, "mL/h")
    return ma


@pytest.mark.parametrize(
    ("ingredient", "amount", "unit"),
    [
        ("glycine", 2.25, "g"),
        ("Glycine", 1.9, "g"),
        ("L-proline", 2.9, "g"),
        ("maltose", 9, "g"),
        ("D-sorbitol", 5, "g"),
        ("Polysorbate 80", 10, "mg"),
        ("sucrose", 5, "g"),
        ("Albumin (Human)", 0.3, "g"),
        ("Sodium chloride", 0.9, "g"),
    ],
)
@pytest.mark.parametrize("active", [None, True])
def test_a_stabiliser_strength_is_never_the_immunoglobulin_concentration(
    ingredient: str, amount: float, unit: str, active: bool | None
) -> None:
    data = extract(patient(), WEIGHT, _medication(ingredient, amount, unit, active=active), _ma())
    (a,) = data.administrations
    # the volume and the volume rate as recorded, the concentration unknown: so are the grams
    # and the mg/kg/min (clinical spec §4: never assumed)
    assert a.concentration_mg_per_ml is None
    assert (a.dose_ml, a.rate_ml_per_h, a.dose_g, a.rate_mg_per_h) == (1400, 300, None, None)


def test_an_ingredient_naming_nothing_else_still_gives_the_strength() -> None:
    """Control: the rule for a single ingredient that names no other substance stays."""
    data = extract(patient(), WEIGHT, _medication("active substance", 10, "g", active=None), _ma())
    (a,) = data.administrations
    assert a.concentration_mg_per_ml == Decimal(100)


def _percent_medication(percent: float, denominator: Json) -> Json:
    return {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"text": "Privigen 10% liquid"},
        "ingredient": [
            {
                "itemCodeableConcept": {"text": "human normal immunoglobulin"},
                "strength": {"numerator": qty(percent, "%"), "denominator": denominator},
            }
        ],
    }


@pytest.mark.parametrize(
    ("percent", "denominator", "mg_per_ml"),
    [
        (10, {"value": 1}, 100),
        (5, {"value": 1, "system": "http://unitsofmeasure.org", "code": "1"}, 50),
        (12, {"value": 1, "unit": "1"}, 120),
    ],
)
def test_a_percentage_strength_is_weight_per_volume(
    percent: float, denominator: Json, mg_per_ml: int
) -> None:
    """Clinical spec §4: "10% = 100 mg/mL, 5% = 50 mg/mL". A strength written as a percentage
    (UCUM ``%`` over a unitless 1) was left unknown: the grams of a dose in mL and the rate
    could not be computed."""
    med = _percent_medication(percent, denominator)
    (a,) = extract(patient(), WEIGHT, med, _ma()).administrations
    assert a.concentration_mg_per_ml == Decimal(mg_per_ml)


def test_a_percentage_over_a_volume_is_not_read_as_a_concentration() -> None:
    """Control: "10 % per 100 mL" says nothing exact: the concentration stays unknown."""
    med = _percent_medication(10, qty(100, "mL"))
    data = extract(patient(), WEIGHT, med, _ma())
    assert [a.concentration_mg_per_ml for a in data.administrations] in ([None], [])
