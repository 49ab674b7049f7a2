"""IVIG recorded under the names used outside the US (fixtures in tests/data/s25-pub, each source
in its README): the UK dm+d / BNF generic name "Normal immunoglobulin human", the EU product
information's "human normal immunoglobulin", the Australian register's "normal immunoglobulin
(human)" and "immunoglobulin-normal (human)", and IV brands sold there (Intragam, Kiovig,
Intratect, Ig Vena). Before, each was passed over without a word: 0 g, no cycle, no issue
(clinical spec §4: every way an immune globulin is recorded is recognised; what looks like one
but cannot be used is reported)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhirtis.pipeline.offline import PatientResult
from tests.fhir.builders import SCT, administration, patient, qty
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import (
    assert_two_infusions_of_70_g,
    check_fixture_folder,
    evaluate_fixture,
)

Json = dict[str, Any]
DATA = Path(__file__).parents[1] / "data" / "s25-pub"
ROUTE_NOT_RECORDED = "route not recorded"


def _bundle(name: str) -> PatientResult:
    return evaluate_fixture(DATA / name)


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(
        DATA, "".join(p.read_text() for p in Path(__file__).parent.glob("test_s25_pub_*.py"))
    )


def test_uk_dmd_generic_name_with_an_iv_route_is_counted() -> None:
    """The Medication named as the BNF / dm+d generic "Normal immunoglobulin human 10g/100ml
    solution for infusion vials", 10 g / 100 mL, route SNOMED CT 47625008, 700 mL at 120 mL/h
    ("ml/hour") on two days, 70 kg: 2 x 700 mL x 100 mg/mL = 140 g; 140 / 70 = 2.0 g/kg;
    120 x 100 / (60 x 70) = 2.857 mg/kg/min; no issue. Before: 0 g, no issue."""
    result = _bundle("uk-dmd-normal-immunoglobulin-human.json")
    assert_two_infusions_of_70_g(result, ("uk-ma-1", "uk-ma-2"), Decimal(12000) / 4200)
    assert result.issues == []


def test_au_artg_brand_name_of_an_iv_only_product_needs_no_route() -> None:
    """Intragam 10 (the ARTG names it "INTRAGAM 10 normal immunoglobulin (human) 10g/100mL
    solution for injection vial", route intravenous only), glycine listed as an inactive
    ingredient, 70 g at 150 mL/h on two days, no route recorded, 70 kg: 140 g, 2.0 g/kg,
    150 x 100 / (60 x 70) = 3.571 mg/kg/min (< 4: no finding); an IV-only brand, so no
    "route not recorded" warning. Before: 0 g, no issue."""
    result = _bundle("au-artg-intragam-10.json")
    assert_two_infusions_of_70_g(result, ("au-ma-1", "au-ma-2"), Decimal(15000) / 4200)
    assert result.evaluation.thrombosis.rate_findings == ()
    assert result.issues == []


def _named(text: str, route: str | None) -> Json:
    """An administration of 60 g of a medicationCodeableConcept named ``text`` only."""
    ma = administration("a1", "2025-03-01T09:00:00Z", dose=qty(60, "g"), med="Medication/none")
    del ma["medicationReference"]
    ma["medicationCodeableConcept"] = {"text": text}
    if route is not None:
        ma["dosage"]["route"] = {"coding": [{"system": SCT, "code": route}]}
    return ma


GENERIC = [
    "Normal immunoglobulin human 100 mg per 1 ml",  # BNF / dm+d (UK)
    "Human normal immunoglobulin",  # EU SmPC section 2, UK formularies
    "Normal human immunoglobulins",  # NHS formulary heading (BNSSG)
    "Immunoglobulin, normal (human)",  # NPS MedicineWise active ingredient (AU)
    "INTRAGAM P immunoglobulin-normal (human) 3g/50mL",  # ARTG entry 68632 (AU)
]


@pytest.mark.parametrize("text", GENERIC)
def test_a_generic_name_given_intravenously_is_counted(text: str) -> None:
    data = extract(patient(), _named(text, "47625008"))
    assert [(a.source, a.dose_g) for a in data.administrations] == [
        ("MedicationAdministration/a1", Decimal(60))
    ]


@pytest.mark.parametrize("text", GENERIC)
def test_a_generic_name_given_under_the_skin_is_excluded_with_the_reason(text: str) -> None:
    data = extract(patient(), _named(text, "34206005"))
    assert data.administrations == []
    assert [i.resource for i in data.issues if "subcutaneous" in i.diagnostics] == [
        "MedicationAdministration/a1"
    ]


def test_a_generic_name_without_route_counts_with_the_route_warning() -> None:
    """The generic name covers subcutaneous and intramuscular products too: without a route
    it counts with the "route not recorded" warning, as "immune globulin" does (§4)."""
    data = extract(patient(), _named("Normal immunoglobulin human", None))
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
    assert [i.resource for i in data.issues if ROUTE_NOT_RECORDED in i.diagnostics] == [
        "MedicationAdministration/a1"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "KIOVIG 100 mg/ml solution for infusion",  # EMA EU/1/05/329
        "Intratect 100 g/l solution for infusion",  # Biotest
        "Ig VENA 50 g/l solution for infusion",  # Kedrion
        "Intragam 10",  # CSL Behring Australia
    ],
)
def test_an_iv_brand_sold_outside_the_us_is_counted_without_a_route_warning(text: str) -> None:
    data = extract(patient(), _named(text, None))
    assert [a.source for a in data.administrations] == ["MedicationAdministration/a1"]
    assert [i for i in data.issues if ROUTE_NOT_RECORDED in i.diagnostics] == []


@pytest.mark.parametrize(
    "text",
    [
        "GAMMANORM normal immunoglobulin (human) 3300mg/20mL",  # ARTG: SC / IM only
        "Subgam human normal immunoglobulin",  # UKHSA: intramuscular
    ],
)
def test_an_extravascular_brand_with_the_generic_name_is_not_ivig(text: str) -> None:
    """A subcutaneous/intramuscular brand is not counted even without a route (it would be
    counted with a route warning from its generic name alone)."""
    data = extract(patient(), _named(text, None))
    assert data.administrations == []
    assert [i.resource for i in data.issues if "subcutaneous" in i.diagnostics] == [
        "MedicationAdministration/a1"
    ]


@pytest.mark.parametrize(
    "text",
    [
        "Antithymocyte Immunoglobulin (Rabbit) 25mg",  # not a human normal immunoglobulin
        "Hepatitis B immunoglobulin human",  # hyperimmune (ATC J06BB)
    ],
)
def test_other_immunoglobulins_are_still_not_ivig(text: str) -> None:
    data = extract(patient(), _named(text, "47625008"))
    assert data.administrations == []
