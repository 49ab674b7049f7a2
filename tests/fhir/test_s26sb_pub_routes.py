"""IVIG routes as published non-SNOMED sources code them (fixture in tests/data/s26sb-pub, each
source in its README): the EDQM Standard Terms route (CH EMED under its OID
``urn:oid:0.4.0.127.0.16.1.1.2.1`` with the German text "intravenöse Anwendung"; MII KDS and
IPS under ``http://standardterms.edqm.eu``) and the HL7 v3 RouteOfAdministration infusion codes
(``IV`` "Infusion, intravenous", the code HL7's own examples use for an IV infusion). Before,
each such route was read as "route recorded is not intravenous" and the infusion was not
counted: 0 g (clinical spec §4: intravenous → IVIG; subcutaneous or intramuscular → not IVIG)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import (
    assert_two_infusions_of_70_g,
    check_fixture_folder,
    evaluate_fixture,
)

Json = dict[str, Any]
DATA = Path(__file__).parents[1] / "data" / "s26sb-pub"
V3_ROUTE = "http://terminology.hl7.org/CodeSystem/v3-RouteOfAdministration"
EDQM = "http://standardterms.edqm.eu"
EDQM_OID = "urn:oid:0.4.0.127.0.16.1.1.2.1"
NOT_IV = "route recorded is not intravenous"


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(
        DATA, "".join(p.read_text() for p in Path(__file__).parent.glob("test_s26sb_*.py"))
    )


def test_ch_emed_edqm_route_with_german_text_is_intravenous() -> None:
    """``ch-emed-edqm-oid-route-ivig.json``: two IVIG infusions whose route is EDQM 20045000
    "Intravenous use" under the EDQM OID with the text "intravenöse Anwendung" (as CH EMED's
    MedicationAdministration), 10 g / 100 mL, 700 mL at 120 mL/h on two days, 70 kg:
    2 x 700 mL x 100 mg/mL = 140 g; 140 / 70 = 2.0 g/kg; 120 x 100 / (60 x 70) = 2.857
    mg/kg/min; no issue. Before: 0 g, both "not counted: route recorded is not intravenous"."""
    result = evaluate_fixture(DATA / "ch-emed-edqm-oid-route-ivig.json")
    assert_two_infusions_of_70_g(result, ("ivig-1", "ivig-2"), Decimal(12000) / 4200)
    assert result.issues == []


def _with_route(route: Json) -> Any:
    ma = administration("a1", "2025-03-03T09:00:00Z", dose=qty(35, "g"))
    ma["dosage"]["route"] = route
    weight = obs("w", "29463-7", 70, "kg", "2025-03-01", system=LOINC)
    return extract(patient(), weight, medication(), ma)


@pytest.mark.parametrize(
    ("system", "code"),
    [
        (V3_ROUTE, "IV"),  # Infusion, intravenous
        (V3_ROUTE, "IVC"),  # Infusion, intravenous catheter
        (V3_ROUTE, "IVCC"),  # Infusion, intravenous catheter, continuous
        (V3_ROUTE, "IVCI"),  # Infusion, intravenous catheter, intermittent
        (EDQM, "20045000"),  # Intravenous use
        (EDQM_OID, "20045000"),
    ],
)
def test_an_intravenous_route_code_without_display_is_counted(system: str, code: str) -> None:
    """The code alone (no display, no text) decides: 35 g counted, no issue."""
    data = _with_route({"coding": [{"system": system, "code": code}]})
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert data.issues == []


@pytest.mark.parametrize(
    ("system", "code", "word"),
    [
        (V3_ROUTE, "SQINFUS", "subcutaneous"),  # Infusion, subcutaneous
        (EDQM, "20066000", "subcutaneous"),  # Subcutaneous use
        (EDQM_OID, "20066000", "subcutaneous"),
        (EDQM, "20035000", "intramuscular"),  # Intramuscular use
    ],
)
def test_a_subcutaneous_or_intramuscular_route_code_is_named_as_such(
    system: str, code: str, word: str
) -> None:
    """Not IVIG, and the warning names the route read (not "not intravenous")."""
    data = _with_route({"coding": [{"system": system, "code": code}]})
    assert data.administrations == []
    (issue,) = data.issues
    assert f"route {word}" in issue.diagnostics and NOT_IV not in issue.diagnostics


def test_a_display_is_read_when_the_text_is_in_another_language() -> None:
    """A local route code with a German ``text`` and an English display "Intravenous use":
    the display says intravenous, so the infusion counts (before: "not intravenous")."""
    route = {
        "coding": [{"system": "urn:oid:2.999.7.1", "code": "iv", "display": "Intravenous use"}],
        "text": "intravenöse Anwendung",
    }
    data = _with_route(route)
    assert [a.dose_g for a in data.administrations] == [Decimal(35)]
    assert data.issues == []


def test_an_oral_route_is_still_not_intravenous() -> None:
    """EDQM 20053000 "Oral use" (ANS JDV Mode Administration CISIS "Voie orale"): not IVIG."""
    data = _with_route({"coding": [{"system": EDQM, "code": "20053000", "display": "Oral use"}]})
    assert data.administrations == []
    (issue,) = data.issues
    assert NOT_IV in issue.diagnostics
