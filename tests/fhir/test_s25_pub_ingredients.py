"""Medication ingredients given as a Reference (R4 ``Medication.ingredient.item[x]`` is a
CodeableConcept or a Reference(Substance | Medication)); the R4 examples medicationexample0310,
0312 and 15 (http://hl7.org/fhir/R4/medicationexample0310.json.html, stored in
tests/data/published/r4/) write ``itemReference "#sub03"`` to a contained Substance that carries
the code. The concentration is the strength of the immunoglobulin ingredient, identified by its
code or name, never simply the first listed (clinical spec §4); and a code on an ingredient
counts as the product's (§4). Before, an ingredient given by reference had no name: with a
stabiliser beside it the concentration was unknown (140 g read as unknown grams), and a product
named only on its ingredient was passed over without a word."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tests.fhir.builders import LOINC, SCT, administration, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
WEIGHT = obs("w1", "29463-7", 70, "kg", "2025-03-01", system=LOINC)


def _strength(grams: float) -> Json:
    return {"numerator": qty(grams, "g"), "denominator": qty(100, "mL")}


def _substance(sid: str, text: str) -> Json:
    return {"resourceType": "Substance", "id": sid, "code": {"text": text}}


def _ingredients(glycine: Json, ig: Json) -> list[Json]:
    """Glycine (a stabiliser, 1.5 g / 100 mL) listed first, the immunoglobulin (10 g / 100 mL)
    second, neither with ``isActive`` (0..1 in R4)."""
    return [
        {"itemReference": glycine, "strength": _strength(1.5)},
        {"itemReference": ig, "strength": _strength(10)},
    ]


def _ma(aid: str = "a1", med: str = "Medication/m1", **extra: Any) -> Json:
    return administration(
        aid,
        "2025-03-02T09:00:00Z",
        dose=qty(700, "mL"),
        rate=qty(120, "mL/h"),
        med=med,
        **extra,
    )


def test_ingredients_referencing_contained_substances_give_the_immunoglobulin_strength() -> None:
    """700 mL x 100 mg/mL = 70 g (never glycine's 15 mg/mL, never unknown)."""
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"text": "Privigen 10%"},
        "contained": [_substance("gly", "glycine"), _substance("igg", "immune globulin")],
        "ingredient": _ingredients({"reference": "#gly"}, {"reference": "#igg"}),
    }
    (a,) = extract(patient(), WEIGHT, med, _ma()).administrations
    assert a.concentration_mg_per_ml == Decimal(100)


def test_ingredients_referencing_substances_by_display_give_the_immunoglobulin_strength() -> None:
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"text": "Privigen 10%"},
        "ingredient": _ingredients(
            {"reference": "Substance/gly", "display": "glycine"},
            {"reference": "Substance/igg", "display": "human normal immunoglobulin"},
        ),
    }
    (a,) = extract(patient(), WEIGHT, med, _ma()).administrations
    assert a.concentration_mg_per_ml == Decimal(100)


def test_ingredients_referencing_substances_in_the_bundle_give_the_immunoglobulin_strength() -> (
    None
):
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"text": "Privigen 10%"},
        "ingredient": _ingredients({"reference": "Substance/gly"}, {"reference": "Substance/igg"}),
    }
    sgly, sigg = _substance("gly", "glycine"), _substance("igg", "immunoglobulin G, human")
    (a,) = extract(patient(), WEIGHT, sgly, sigg, med, _ma()).administrations
    assert a.concentration_mg_per_ml == Decimal(100)


def test_a_medication_contained_in_the_administration_with_its_substances_beside_it() -> None:
    """R4 contained resources do not nest: the Substances sit beside the Medication in the
    administration's ``contained``, and the Medication's ``#id`` references name them."""
    med = {
        "resourceType": "Medication",
        "id": "med",
        "code": {"text": "Privigen 10%"},
        "ingredient": _ingredients({"reference": "#gly"}, {"reference": "#igg"}),
    }
    ma = _ma(med="#med")
    ma["contained"] = [med, _substance("gly", "glycine"), _substance("igg", "immune globulin")]
    (a,) = extract(patient(), WEIGHT, ma).administrations
    assert a.concentration_mg_per_ml == Decimal(100)


def test_a_product_named_only_on_its_referenced_ingredient_is_counted() -> None:
    """A local formulary item whose only immune globulin name is its ingredient Substance's
    (the R4 example's shape), given IV: counted, 70 g."""
    med = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"text": "Formulary item 4711"},
        "contained": [_substance("igg", "immune globulin intravenous (human)")],
        "ingredient": [{"itemReference": {"reference": "#igg"}, "strength": _strength(10)}],
    }
    ma = _ma()
    ma["dosage"]["route"] = {"coding": [{"system": SCT, "code": "47625008"}]}
    data = extract(patient(), WEIGHT, med, ma)
    assert [(a.source, a.concentration_mg_per_ml) for a in data.administrations] == [
        ("MedicationAdministration/a1", Decimal(100))
    ]
