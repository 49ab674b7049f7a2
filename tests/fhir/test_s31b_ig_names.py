"""Immune globulins named in ways the product ValueSets do not list (clinical spec §4).

* "Anything that looks like an immune globulin but cannot be used ... is reported, never ignored
  silently." Before, an intravenous administration of "Intravenous immunoglobulin" (the words
  IVIG abbreviates) or "Immunoglobulin G 10%" was passed over without a word: not counted, and
  no issue said so.
* "Subcutaneous products (J06BA01) are not IVIG"; intramuscular is not IVIG either. Before, a
  product named only generically as subcutaneous ("Immune Globulin Subcutaneous (Human), 20%
  Liquid", the title of the Hizentra label) or intramuscular ("Immune Globulin Intramuscular
  (Human)"), with no route recorded, was counted as IVIG (with a "route not recorded" warning).
* IVIG is normal human immune globulin: Atgam, "lymphocyte immune globulin, anti-thymocyte
  globulin (equine)", an immunosuppressant given intravenously, was counted as IVIG by the
  generic name "immune globulin" in its name.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fhir.builders import LOINC, administration, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
WEIGHT = obs("w1", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
IV = {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}


def named_medication(text: str) -> Json:
    """A Medication known only by its text (``Medication/m1``)."""
    return {"resourceType": "Medication", "id": "m1", "code": {"text": text}}


def administered(route: Json | None) -> Json:
    """140 g of ``Medication/m1`` on 2025-03-02, by ``route`` (None: not recorded)."""
    ma = administration("a1", "2025-03-02T09:00:00Z", dose=qty(140, "g"), med="Medication/m1")
    if route is not None:
        ma["dosage"]["route"] = route
    return ma


@pytest.mark.parametrize(
    "text",
    [
        "Intravenous immunoglobulin",
        "Immunoglobulin G 10%",
        "Immunoglobulin G (human) 10%",
        "Human immunoglobulin 10%",
        "Humanes Immunglobulin G 10%",
    ],
)
def test_an_unrecognised_immune_globulin_is_reported_not_ignored(text: str) -> None:
    data = extract(patient(), WEIGHT, named_medication(text), administered(IV))
    counted = len(data.administrations)
    said = [i for i in data.issues if i.resource == "MedicationAdministration/a1"]
    # either counted as IVIG, or reported as not counted: never passed over without a word
    assert counted == 1 or said, f"{text!r} neither counted nor reported"
    if not counted:
        assert any("not counted" in i.diagnostics for i in said)


@pytest.mark.parametrize(
    "text",
    [
        "Hepatitis B immune globulin",
        "Rho(D) immune globulin intravenous (human)",
        "Atgam (lymphocyte immune globulin, anti-thymocyte globulin, equine)",
    ],
)
def test_a_globulin_known_not_to_be_ivig_is_not_counted_nor_reported(text: str) -> None:
    """Control: an antigen-specific (hyperimmune) or antithymocyte globulin is known not to be
    IVIG: not counted, and not reported as an unrecognised immune globulin."""
    data = extract(patient(), WEIGHT, named_medication(text), administered(IV))
    assert data.administrations == []
    assert not [i for i in data.issues if "looks like an immune globulin" in i.diagnostics]


@pytest.mark.parametrize(
    "text",
    [
        "Immune Globulin Subcutaneous (Human), 20% Liquid",
        "Human normal immunoglobulin (SCIg)",
        "Immune Globulin Intramuscular (Human)",
    ],
)
def test_a_product_named_subcutaneous_or_intramuscular_is_not_ivig(text: str) -> None:
    data = extract(patient(), WEIGHT, named_medication(text), administered(None))
    assert data.administrations == []
    said = [i for i in data.issues if i.resource == "MedicationAdministration/a1"]
    assert any("not counted" in i.diagnostics for i in said)


@pytest.mark.parametrize(
    "text",
    [
        "immune globulin",
        "Immune globulin infusion (human) 10%, for intravenous and subcutaneous use",
    ],
)
def test_a_generic_name_without_a_route_is_still_counted_with_a_warning(text: str) -> None:
    """A generic name giving no route (control), or both routes (before: counted with no
    warning, though the product is labelled for both), is counted with the "route not recorded"
    warning when no route is recorded."""
    data = extract(patient(), WEIGHT, named_medication(text), administered(None))
    assert len(data.administrations) == 1
    assert any("route not recorded" in i.diagnostics for i in data.issues)
