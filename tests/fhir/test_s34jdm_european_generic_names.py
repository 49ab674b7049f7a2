"""A Medication named only by the generic name of normal human immunoglobulin in German or a
Nordic language is an immune globulin by a generic name (clinical spec §4: "or only text —
brand names and generic names …, case-insensitive"; all the ways real EHRs code the product
"must be recognised").

The European product information names the active substance so: German "Normales
Immunglobulin vom Menschen (IVIg)" (Privigen, Ig Vena, Octagam 10 % Fachinformation and
Gebrauchsinformation), Danish and Swedish "Humant normalt immunglobulin (IVIg)" (Kiovig,
Privigen produktresumé; Flebogamma DIF, Intratect produktresumé), Norwegian "Immunglobulin,
normalt (humant) (IVIg)" (Intratect preparatomtale). A German hospital's Medication carries a
PZN and this name, often with no ATC code and no brand. Session 34 taught the ingredient reader
these names (the immunoglobulin ingredient, not a stabiliser), but the product itself was
"looks like an immune globulin but is not recognised" and not counted, even with an
intravenous route recorded. They are now designations of ``immune-globulin-names``
(route-agnostic, like "normal human immunoglobulin"): the route decides, a product that names
its route in these languages ("zur subkutanen Anwendung") is read by it, and an
antigen-specific globulin ("Hepatitis-B-Immunglobulin vom Menschen") is still not IVIG."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
PZN = "http://fhir.de/CodeSystem/ifa/pzn"
ROUTE_UNSURE = "route not recorded on MedicationAdministration/a1 of a product given by more"


def _given(name: str, route: Json | None) -> Any:
    """One 35 g administration of a Medication coded only by a PZN, named ``name`` (its
    ingredient too, 10 g / 100 mL)."""
    med = medication(text=name, code=(PZN, "16163081"))
    med["ingredient"][0]["itemCodeableConcept"] = {"text": name}
    ma = administration("a1", "2025-03-03T09:00:00+01:00", dose=qty(35, "g"))
    if route is not None:
        ma["dosage"]["route"] = route
    weight = obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
    return extract(patient(), weight, med, ma)


NAMES = [
    "Normales Immunglobulin vom Menschen",
    "NORMALES IMMUNGLOBULIN VOM MENSCHEN 10%",
    "Humant normalt immunglobulin",
    "humant normalt immunoglobulin",
    "Immunglobulin, normalt (humant)",
]


@pytest.mark.parametrize("name", NAMES)
def test_a_european_generic_name_given_intravenously_is_counted(name: str) -> None:
    for route in ({"text": "intravenös"}, {"text": "IV"}):
        data = _given(name, route)
        assert [a.dose_g for a in data.administrations] == [Decimal(35)]
        assert data.issues == []


@pytest.mark.parametrize("name", NAMES)
def test_without_a_route_it_is_counted_with_the_route_warning(name: str) -> None:
    """Route-agnostic, as "normal human immunoglobulin" (SCIg carry the same name)."""
    data = _given(name, None)
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert [i.diagnostics[: len(ROUTE_UNSURE)] for i in data.issues] == [ROUTE_UNSURE]


@pytest.mark.parametrize(
    "name",
    [
        "Normales Immunglobulin vom Menschen (IVIg)",
        "Normales Immunglobulin vom Menschen zur intravenösen Anwendung",
    ],
)
def test_a_name_that_says_intravenous_needs_no_route(name: str) -> None:
    data = _given(name, None)
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert data.issues == []


@pytest.mark.parametrize(
    "name",
    [
        "Normales Immunglobulin vom Menschen zur subkutanen Anwendung",
        "humant normalt immunglobulin, subkutan",
        "Normales Immunglobulin vom Menschen (SCIg)",
    ],
)
def test_a_name_that_says_subcutaneous_is_not_ivig(name: str) -> None:
    data = _given(name, None)
    assert data.administrations == []
    [issue] = data.issues
    assert "subcutaneous immune globulin product" in issue.diagnostics


@pytest.mark.parametrize("name", ["Normales Immunglobulin vom Menschen", "Octagam 10%"])
def test_a_subcutaneous_route_still_excludes_it(name: str) -> None:
    data = _given(name, {"text": "subkutan"})
    assert data.administrations == []


def test_an_antigen_specific_globulin_is_still_not_ivig() -> None:
    data = _given("Hepatitis-B-Immunglobulin vom Menschen", {"text": "intravenös"})
    assert data.administrations == []
