"""An IVIG order with no administration to count (fixture in tests/data/s25-pub, source in its
README). US Core has no MedicationAdministration profile: a server or export that offers only the
US Core types gives fhirtis the MedicationRequest of an IVIG course and no infusion. fhirtis reads
exposure from administrations only (clinical spec §4), so the result is 0 g; it must say why
rather than show 0 g as if no IVIG had been ordered (§4: what looks like an immune globulin but
cannot be used is reported, never ignored silently). Before, nothing was said."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhirtis.pipeline.offline import evaluate_bundle_file
from fhirtis.settings import Settings
from tests.fhir.builders import administration, medication, patient, qty
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import check_output

Json = dict[str, Any]
DATA = Path(__file__).parents[1] / "data" / "s25-pub"
ORDERED = "orders immune globulin"


def _order(status: str = "active", med: str = "Medication/octa") -> Json:
    return {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": status,
        "intent": "order",
        "medicationReference": {"reference": med},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-03-01",
    }


def test_a_us_core_ivig_order_without_administrations_is_reported() -> None:
    """A US Core MedicationRequest (RxNorm 1809671 GAMMAGARD LIQUID, 1 g/kg IV) and no
    MedicationAdministration: 0 cycles, with one information issue at the order saying that
    exposure is read from administrations and none was read. Before: 0 g, no issue."""
    result = evaluate_bundle_file(
        DATA / "us-core-ivig-order-without-administrations.json", Settings()
    )
    check_output(result)
    assert result.evaluation.exposure.cycles == ()
    issues = [i for i in result.issues if ORDERED in i.diagnostics]
    assert [(i.severity, i.resource, i.expression) for i in issues] == [
        ("information", "MedicationRequest/usc-mr-ivig", "Bundle.entry[3].resource")
    ]
    assert "MedicationAdministration" in issues[0].diagnostics


def test_an_ivig_order_beside_its_administrations_says_nothing() -> None:
    data = extract(
        patient(),
        medication(),
        _order(),
        administration(
            "a1",
            "2025-03-02T09:00:00Z",
            dose=qty(70, "g"),
            request={"reference": "MedicationRequest/mr1"},
        ),
    )
    assert [a.dose_g for a in data.administrations] == [Decimal(70)]
    assert [i for i in data.issues if ORDERED in i.diagnostics] == []


@pytest.mark.parametrize("status", ["draft", "cancelled", "entered-in-error"])
def test_an_order_that_records_no_use_says_nothing(status: str) -> None:
    """A draft (the order a CDS Hooks order-sign call is about), a cancelled or an
    entered-in-error order is no IVIG ordered."""
    data = extract(patient(), medication(), _order(status))
    assert [i for i in data.issues if ORDERED in i.diagnostics] == []


def test_an_order_of_another_medication_says_nothing() -> None:
    other = {"resourceType": "Medication", "id": "pred", "code": {"text": "prednisone 20 mg"}}
    data = extract(patient(), other, _order(med="Medication/pred"))
    assert [i for i in data.issues if ORDERED in i.diagnostics] == []
