"""A MedicationRequest that prohibits the medication (R4 ``MedicationRequest.doNotPerform`` =
true) records no use of it. R4 marks the element a modifier ("?!"; "True if request is
prohibiting action", http://hl7.org/fhir/R4/medicationrequest.html): it reverses the meaning
of the request. QI-Core publishes the shape as its profile ``qicore-medicationprohibited``
(repository HL7/fhir-qi-core, ``input/resources/medicationrequest-negation-example-code.xml``;
its JSON twin under ``input/tests/QICoreCommonTests/example/MedicationRequest/``):
``doNotPerform`` true, ``intent`` order, a SNOMED CT ``reasonCode`` "Drug treatment not
indicated". Fixture and sources: tests/data/s32-pub.

Clinical spec §5.1: estrogen use is a thrombosis risk factor, and with one the maximum infusion
rate is 3.3 mg/kg/min (§5.2). Before, a "do not give estradiol" order was read as estrogen use:
the limit fell from 4 to 3.3 and each administration at 3.571 mg/kg/min became a rate finding
(a DetectedIssue written back) that the record contradicts. Likewise an IVIG order that says
"do not give" is no IVIG order (no "orders immune globulin" note)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.builders import medication, patient
from tests.fhir.reading import extract
from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s32-pub"
FIXTURE = DATA / "qicore-estradiol-prohibited.json"
REQUEST = "MedicationRequest/s32-dnp-estradiol"


def _fixture() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(FIXTURE.read_text())
    return doc


def _request(doc: dict[str, Any]) -> dict[str, Any]:
    (r,) = (
        e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "MedicationRequest"
    )
    found: dict[str, Any] = r
    return found


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    check_fixture_folder(
        DATA, "".join(p.read_text() for p in Path(__file__).parent.glob("test_s32pub_*.py"))
    )


def test_a_prohibited_estradiol_is_no_estrogen_use() -> None:
    """``qicore-estradiol-prohibited.json``: 70 kg; 2 x 700 mL of a 10% IVIG at 150 mL/h =
    150 x 100 / (60 x 70) = 3.571 mg/kg/min; an order *not* to give estradiol. No risk factor:
    the limit stays 4 mg/kg/min and neither administration is above it."""
    result = evaluate_fixture(FIXTURE)
    assert [e for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN] == []
    t = result.evaluation.thrombosis
    assert t.risk_factors == ()
    assert t.max_rate_now.limit_mg_kg_min == 4
    assert t.rate_findings == ()
    (cycle,) = result.evaluation.exposure.cycles
    assert cycle.grams == 140
    assert [i for i in result.issues if i.severity in {"error", "fatal"}] == []


@pytest.mark.parametrize("status", ["active", "completed"])
def test_the_same_order_without_do_not_perform_is_estrogen_use(status: str) -> None:
    """The control: the same request, ``doNotPerform`` left out (false by default), is estrogen
    use from its ``authoredOn`` (2025-06-10): limit 3.3, both administrations above it; a
    ``completed`` one (the status of QI-Core's example) authored on the first infusion day
    counts that day."""
    doc = _fixture()
    req = _request(doc)
    del req["doNotPerform"]
    req["status"] = status
    if status == "completed":
        req["authoredOn"] = "2025-06-13T08:30:00-04:00"
    result = evaluate_bundle_bytes(json.dumps(doc).encode(), "control", Settings())
    sources = [e.source for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN]
    assert sources == [REQUEST]
    t = result.evaluation.thrombosis
    # active: both days at 3.3; completed: the day authored only (06-13, the first infusion)
    assert [f.administration_source for f in t.rate_findings] == (
        ["MedicationAdministration/s32-dnp-ma1", "MedicationAdministration/s32-dnp-ma2"]
        if status == "active"
        else ["MedicationAdministration/s32-dnp-ma1"]
    )


@pytest.mark.parametrize("status", ["active", "completed"])
def test_a_prohibition_in_either_status_shows_no_estrogen(status: str) -> None:
    doc = _fixture()
    req = _request(doc)
    req["status"] = status
    req["authoredOn"] = "2025-06-13T08:30:00-04:00"
    result = evaluate_bundle_bytes(json.dumps(doc).encode(), "prohibited", Settings())
    assert [e for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN] == []
    assert result.evaluation.thrombosis.rate_findings == ()


def test_do_not_perform_false_is_an_ordinary_order() -> None:
    doc = _fixture()
    _request(doc)["doNotPerform"] = False
    result = evaluate_bundle_bytes(json.dumps(doc).encode(), "ordinary", Settings())
    sources = [e.source for e in result.data.evidence if e.kind is RiskFactorKind.ESTROGEN]
    assert sources == [REQUEST]


def test_a_prohibited_ivig_order_is_not_an_ivig_order() -> None:
    """An order not to give IVIG, for a patient without administrations: no "orders immune
    globulin" note (that note says IVIG was ordered)."""
    ivig = medication("ivig")
    order: dict[str, Any] = {
        "resourceType": "MedicationRequest",
        "id": "mr-ivig",
        "status": "active",
        "intent": "order",
        "medicationReference": {"reference": "Medication/ivig"},
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2025-06-10",
    }
    ordered = extract(patient(), ivig, copy.deepcopy(order))
    assert [i.resource for i in ordered.issues if "orders immune globulin" in i.diagnostics] == [
        "MedicationRequest/mr-ivig"
    ]
    order["doNotPerform"] = True
    prohibited = extract(patient(), ivig, order)
    assert [i for i in prohibited.issues if "orders immune globulin" in i.diagnostics] == []
