"""The security labels of a contained resource read are carried with its container's.

R4 references.html: a contained resource has no independent existence; it is part of its
container, which is the source fhirtis cites and its Provenance names (versioned). R4 allows it
``meta.security`` (dom-4 forbids only ``versionId`` and ``lastUpdated``). A contained Medication
labelled ``R`` (the product of an administration), or a contained weight of a DiagnosticReport
labelled ``R``, was never read: the cycle dose computed from it was written back unlabelled, and
so was the Provenance. A contained resource that is not read labels nothing."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import terminology
from fhirtis.fhir.extract import Extractor
from tests.fhir.builders import bundle, medication, patient
from tests.fhir.patients import responder
from tests.fhir.test_s36dr_report_contained_results import _contained, _report
from tests.fhir.test_s37seclab_security_labels import ACT, CONF, R, _by_code, _evaluate, _security

Json = dict[str, Any]
HIV = {"system": ACT, "code": "HIV"}
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _resource(doc: Json, rid: str) -> Json:
    entry: Json = next(e for e in doc["entry"] if e["resource"]["id"] == rid)
    return entry


def test_a_contained_medications_label_reaches_the_dose_and_provenance() -> None:
    doc = responder()
    ma = _resource(doc, "ma10")["resource"]
    ma["meta"] = {"versionId": "4"}
    med = medication("m")
    med["meta"] = {"security": [R]}
    ma["contained"] = [med]
    ma["medicationReference"] = {"reference": "#m"}
    result = _evaluate(doc)
    doses = _by_code(result)["ivig-cycle-dose"]
    assert _security(doses[1]) == [R]  # cycle 2 holds ma10
    assert [_security(d) for d in (doses[0], doses[2], doses[3])] == [None] * 3
    assert _security(_by_code(result)["ivig-cumulative-dose"][0]) == [R]
    bundle = result.plan().bundle
    assert bundle is not None
    assert _security(bundle["entry"][-1]["resource"]) == [R]


def test_a_contained_weights_label_reaches_the_dose() -> None:
    doc = responder()
    weight = _resource(doc, "w0")
    day = weight["resource"]["effectiveDateTime"]
    result_obs = _contained("r2", "29463-7", 70, "kg", meta={"security": [R]})
    report = _report("lab", day, result_obs)
    report["meta"] = {"versionId": "1"}
    weight["resource"], weight["fullUrl"] = report, "DiagnosticReport/lab"
    result = _evaluate(doc)
    first = _by_code(result)["ivig-cycle-dose"][0]
    assert "DiagnosticReport/lab/_history/1" in first["note"][0]["text"]
    assert _security(first) == [R]
    bundle = result.plan().bundle
    assert bundle is not None
    assert _security(bundle["entry"][-1]["resource"]) == [R]


def test_two_contained_results_of_one_report_add_their_labels_up() -> None:
    doc = responder()
    weight = _resource(doc, "w0")
    day = weight["resource"]["effectiveDateTime"]
    report = _report(
        "lab",
        day,
        _contained("r2", "29463-7", 70, "kg", meta={"security": [R]}),
        _contained("r3", "8302-2", 175, "cm", meta={"security": [HIV]}),
    )
    report["meta"] = {"versionId": "1"}
    weight["resource"], weight["fullUrl"] = report, "DiagnosticReport/lab"
    first = _by_code(_evaluate(doc))["ivig-cycle-dose"][0]
    assert _security(first) == [R, HIV]


def test_a_contained_result_not_read_labels_nothing() -> None:
    doc = responder()
    weight = _resource(doc, "w0")
    day = weight["resource"]["effectiveDateTime"]
    ldl = _contained("r9", "13457-7", 3.1, "mmol/L", meta={"security": [R, HIV]})
    report = _report("lab", day, _contained("r2", "29463-7", 70, "kg"), copy.deepcopy(ldl))
    report["meta"] = {"versionId": "1"}
    weight["resource"], weight["fullUrl"] = report, "DiagnosticReport/lab"
    result = _evaluate(doc)
    assert all(_security(d.resource) is None for d in result.derived)


def _extract(*resources: Json) -> Any:
    pr = read_patient_bundle(orjson.dumps(bundle(*resources)))
    return Extractor(terminology()).extract(pr.patient_ref, pr.resources, pr.resolve)


def test_a_contained_catheters_label_is_its_statements() -> None:
    device = {
        "resourceType": "Device",
        "id": "cvc",
        "meta": {"security": [R]},
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "52124006"}]},
    }
    statement = {
        "resourceType": "DeviceUseStatement",
        "id": "dus",
        "meta": {"versionId": "2"},
        "status": "active",
        "subject": {"reference": "Patient/p1"},
        "device": {"reference": "#cvc"},
        "timingPeriod": {"start": "2025-03-01"},
        "contained": [device],
    }
    data = _extract(patient(birth="1968-04-02"), statement)
    assert [e.source for e in data.evidence] == ["DeviceUseStatement/dus/_history/2"]
    assert data.labels == {"DeviceUseStatement/dus/_history/2": frozenset({(CONF, "R")})}


def test_a_contained_estrogens_label_is_its_requests() -> None:
    hrt = medication("e2", grams_per_100ml=None, code=(RXNORM, "999999"), text="ESTRADIOL 1 MG")
    hrt["meta"] = {"security": [HIV]}
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2023-06-01",
        "medicationReference": {"reference": "#e2"},
        "contained": [hrt],
    }
    data = _extract(patient(birth="1985-03-01"), request)
    assert [e.source for e in data.evidence] == ["MedicationRequest/mr"]
    assert data.labels == {"MedicationRequest/mr": frozenset({(ACT, "HIV")})}


def test_a_panels_contained_members_label_is_the_panels() -> None:
    doc = responder()
    weight = _resource(doc, "w0")["resource"]
    member = {k: v for k, v in weight.items() if k not in ("subject", "meta")}
    member["id"], member["meta"] = "m1", {"security": [R]}
    panel = {
        "resourceType": "Observation",
        "id": "vs",
        "meta": {"versionId": "5"},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "85353-1"}]},
        "subject": weight["subject"],
        "effectiveDateTime": weight["effectiveDateTime"],
        "hasMember": [{"reference": "#m1"}],
        "contained": [member],
    }
    _resource(doc, "w0")["resource"] = panel
    _resource(doc, "vs")["fullUrl"] = "Observation/vs"
    first = _by_code(_evaluate(doc))["ivig-cycle-dose"][0]
    assert first["derivedFrom"][-1] == {"reference": "Observation/vs/_history/5"}
    assert _security(first) == [R]
