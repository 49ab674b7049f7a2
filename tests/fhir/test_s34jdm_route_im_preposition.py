"""The German preposition "im" is not the intramuscular route (clinical spec §4: an
intramuscular route excludes the administration "with the reason"; the reason must be the one
recorded).

A route not coded in the route ValueSets is read from its text by its words
(``fhirtis/fhir/extract/medications.py`` ``_route_kind``). "im" was one of them, so a German
route text "Kurzinfusion im Port" (a short infusion into the port, "im" = "in dem") was read as
intramuscular: the infusion was excluded as "route intramuscular (SNOMED CT 78421000)", a route
the record does not give. Within a longer text "im" is now the intramuscular route only as the
abbreviation is written: in capitals ("IM", HL7 v2 table 0162's code, the route text EHR
exports send beside SNOMED CT 78421000 "Intramuscular route") or with points ("i.m."); a text
that is only "im" is still the abbreviation. A route text that names no route fhirtis knows is,
as before, "route recorded is not intravenous" (not counted, reported): "Kurzinfusion im Port"
is not read as intravenous, which the text does not say in words fhirtis reads."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
SNOMED = "http://snomed.info/sct"
NOT_IV = "MedicationAdministration/a1 not counted: route recorded is not intravenous: not IVIG"
IM = "MedicationAdministration/a1 not counted: route intramuscular (SNOMED CT 78421000): not IVIG"


def _given(route: Json, text: str = "Gamunex 10%") -> Any:
    """One 35 g infusion of an immune globulin (by default dual-route Gamunex) with ``route``."""
    med = medication(text=text)
    ma = administration("a1", "2025-03-03T09:00:00+01:00", dose=qty(35, "g"))
    ma["dosage"]["route"] = route
    weight = obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
    return extract(patient(), weight, med, ma)


@pytest.mark.parametrize(
    "text", ["Kurzinfusion im Port", "Infusion im Portsystem", "im Port", "Im Port"]
)
def test_the_german_preposition_is_not_the_intramuscular_route(text: str) -> None:
    data = _given({"text": text})
    assert data.administrations == []
    assert [i.diagnostics for i in data.issues] == [NOT_IV]


@pytest.mark.parametrize(
    "text",
    ["i.v. Kurzinfusion im Port", "intravenös im Port", "IV-Kurzinfusion im Port"],
)
def test_an_intravenous_route_with_the_preposition_is_counted(text: str) -> None:
    data = _given({"text": text}, text="Octagam 10%")
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert data.issues == []


@pytest.mark.parametrize(
    "route",
    [
        {"text": "IM"},
        {"text": "im"},
        {"text": " Im "},
        {"text": "i.m."},
        {"text": "Injektion i.m."},
        {"text": "IM injection"},
        {"text": "IM-Injektion"},
        {"coding": [{"system": "http://example.org/route", "code": "x", "display": "IM"}]},
        # Epic / Cerner shape: a local code, the route's name as text
        {
            "coding": [{"system": "urn:oid:1.2.840.114350.1.13.0.1.7.4.798268.7025", "code": "2"}],
            "text": "IM",
        },
        {"coding": [{"system": SNOMED, "code": "78421000"}], "text": "im"},
    ],
)
def test_the_abbreviation_is_still_the_intramuscular_route(route: Json) -> None:
    data = _given(route)
    assert data.administrations == []
    assert [i.diagnostics for i in data.issues] == [IM]
