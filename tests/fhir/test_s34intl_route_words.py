"""IVIG routes written in the words of European records (clinical spec §4: an intravenous route
counts the administration as IVIG; a subcutaneous or intramuscular one excludes it).

A route not coded in the route ValueSets is read from its text and its codings' displays
(``fhirtis/fhir/extract/medications.py`` ``_route``). Only English words were read, split on
ASCII letters, so routes as the published sources below write them were taken for a route that
is "not intravenous" and the infusion was not counted (0 g, and the warning said the recorded
route was not intravenous):

- CHMED / eMediplan (Switzerland, HCI Solutions' INDEX code system CDTYP61, canonical
  ``http://chmed.emediplan.ch/fhir/CodeSystem/chmed-codesystem-cdtyp61``; ahdis/chmed:
  input/fsh/terminology/CDTYP61-Roa.fsh): ``IV`` "intravenös (Infusion)", ``IVINJ`` "intravenös
  (Injektion)", fr-CH "intraveineuse (perfusion)"; ``SQ`` "subcutan (Injektion)", fr-CH
  "sous-cutanée (injection)"; ``IM`` "intramuskulär", fr-CH "intramusculaire"; and
  ``IVENTINJ`` "intraventrikulär", which is not intravenous.
- CH EMED MedicationAdministration ``3-2-MedAdminFentanyl`` (hl7ch/ch-emed:
  input/fsh/instances/medicationadministration/3-2-MedAdminFentanyl.fsh): route text
  "intravenöse Anwendung" (there beside an EDQM coding, which fhirtis reads; here as a text
  with a local code, as a system without the EDQM code sends it).
- Norway's national register of administered medicines (LMDI, folkehelseinstituttet/LMDI:
  LMDI/input/fsh/examples/lmdi-example-scenario-kjemoterapi.fsh): route coding
  ``urn:oid:2.16.578.1.12.4.1.1.7477`` code 7 "Intravenøs" (there beside SNOMED CT 47625008;
  the SNOMED CT slice is optional).
- The Latin abbreviations every German, Dutch and Nordic chart writes: "i.v.", "s.c.", "i.m."
  (read as the English "iv", "sc", "im" were).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.reading import extract

Json = dict[str, Any]
CDTYP61 = "http://chmed.emediplan.ch/fhir/CodeSystem/chmed-codesystem-cdtyp61"
VOLVEN_7477 = "urn:oid:2.16.578.1.12.4.1.1.7477"
LOCAL = "http://example.org/fhir/CodeSystem/local-route"
NOT_IV = "route recorded is not intravenous"


def _given(route: Json, text: str = "Octagam 10%") -> Any:
    """One 35 g infusion of an IVIG product (by default IV-only Octagam) with ``route``."""
    med = medication(text=text)
    ma = administration("a1", "2025-03-03T09:00:00+01:00", dose=qty(35, "g"))
    ma["dosage"]["route"] = route
    weight = obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
    return extract(patient(), weight, med, ma)


def _coded(system: str, code: str, display: str) -> Json:
    return {"coding": [{"system": system, "code": code, "display": display}]}


@pytest.mark.parametrize(
    "route",
    [
        _coded(CDTYP61, "IV", "intravenös (Infusion)"),
        _coded(CDTYP61, "IVINJ", "intravenös (Injektion)"),
        _coded(CDTYP61, "IV", "intraveineuse (perfusion)"),
        _coded(VOLVEN_7477, "7", "Intravenøs"),
        {"coding": [{"system": LOCAL, "code": "iv"}], "text": "intravenöse Anwendung"},
        {"text": "i.v."},
        {"text": "I.V. Kurzinfusion"},
        {"text": "i. v."},
        {"text": "intraveneus"},  # Dutch
    ],
)
def test_an_intravenous_route_in_a_european_language_is_counted(route: Json) -> None:
    """Each route says intravenous: the 35 g count, and no issue is raised. Before: 0 g, "not
    counted: route recorded is not intravenous"."""
    data = _given(route)
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert data.issues == []


@pytest.mark.parametrize(
    ("route", "said"),
    [
        (_coded(CDTYP61, "SQ", "subcutan (Injektion)"), "route subcutaneous"),
        (_coded(CDTYP61, "SQINFUS", "sous-cutanée (perfusion)"), "route subcutaneous"),
        ({"text": "s.c."}, "route subcutaneous"),
        ({"text": "subkutan"}, "route subcutaneous"),
        (_coded(CDTYP61, "IM", "intramuskulär"), "route intramuscular"),
        (_coded(CDTYP61, "IM", "intramusculaire"), "route intramuscular"),
        ({"text": "i.m."}, "route intramuscular"),
    ],
)
def test_a_subcutaneous_or_intramuscular_route_is_named_as_such(route: Json, said: str) -> None:
    """A dual-route product (Gamunex) given under the skin or into a muscle, in the words of
    the sources: not IVIG, and the warning names the route recorded (before, it said the route
    was "not intravenous", as for an oral one)."""
    data = _given(route, text="Gamunex 10%")
    assert data.administrations == []
    assert [i.diagnostics for i in data.issues] == [
        f"MedicationAdministration/a1 not counted: {said} "
        f"({'SNOMED CT 34206005' if 'sub' in said else 'SNOMED CT 78421000'}): not IVIG"
    ]


@pytest.mark.parametrize(
    "route",
    [
        _coded(CDTYP61, "IVENTINJ", "intraventrikulär"),  # into a cerebral ventricle
        _coded(CDTYP61, "IVITINJ", "intravitreal (Injektion)"),
        _coded(CDTYP61, "BLADINJ", "intravesikal (Injektion)"),
        _coded(CDTYP61, "PO", "per oral"),
    ],
)
def test_other_routes_stay_not_intravenous(route: Json) -> None:
    """Routes that only begin like "intravenous" are not read as it."""
    data = _given(route)
    assert data.administrations == []
    assert [i.diagnostics for i in data.issues] == [
        f"MedicationAdministration/a1 not counted: {NOT_IV}: not IVIG"
    ]


@pytest.mark.parametrize("text", ["IV-Infusion", "i.v.-Gabe", "intravenous", "IV push"])
def test_hyphenated_and_english_routes_are_still_read(text: str) -> None:
    """A hyphenated route is read by its parts as before ("IV-Infusion"), and whole."""
    data = _given({"text": text})
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert data.issues == []
