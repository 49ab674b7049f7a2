"""Security labels (meta.security) of the sources carried to what is derived from them (R4
security-labels.html: "carry the security labels forward"; confidentiality high water mark)."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.registry.evaluate import evaluate_resources
from fhirtis.settings import Settings
from tests.fhir.patients import responder
from tests.fhir.test_s36dr_report_contained_results import _contained, _report

Json = dict[str, Any]
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
R = {"system": CONF, "code": "R"}
PSY = {"system": ACT, "code": "PSY"}


def _evaluate(doc: Json) -> PatientResult:
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())


def _label(doc: Json, rid: str, *security: Json) -> Json:
    for e in doc["entry"]:
        if e["resource"]["id"] == rid:
            e["resource"]["meta"] = {"versionId": "3", "security": list(security)}
    return doc


def _security(resource: Json) -> list[Json] | None:
    return resource.get("meta", {}).get("security")


def _by_code(result: PatientResult) -> dict[str, list[Json]]:
    out: dict[str, list[Json]] = {}
    for d in result.derived:
        if "code" in d.resource:
            out.setdefault(d.resource["code"]["coding"][0]["code"], []).append(d.resource)
    return out


def test_unlabelled_sources_give_unlabelled_output() -> None:
    result = _evaluate(responder())
    assert all(_security(d.resource) is None for d in result.derived)
    bundle = result.plan().bundle
    assert bundle is not None
    assert _security(bundle["entry"][-1]["resource"]) is None


def test_a_restricted_value_labels_what_is_derived_from_it() -> None:
    doc = _label(responder(), "pga3", R, PSY, {"system": "http://example.org/local", "code": "x"})
    result = _evaluate(doc)
    by = _by_code(result)
    tis = by["tis"]
    # the last TIS compares the baseline with week 12 (pga3): restricted; the others are not
    assert _security(tis[-1]) == [R, PSY]
    assert [_security(t) for t in tis[:-1]] == [None, None]
    assert _security(by["confirmed-deterioration"][0]) == [R, PSY]
    assert all(_security(c) is None for c in by["ivig-cycle-dose"])
    # the profile still applies (meta.profile kept beside the labels)
    assert tis[-1]["meta"]["profile"]
    bundle = result.plan().bundle
    assert bundle is not None
    prov = bundle["entry"][-1]["resource"]
    assert prov["resourceType"] == "Provenance"
    assert _security(prov) == [R, PSY]
    assert prov["meta"]["profile"]


def test_highest_confidentiality_only_and_old_system_uri() -> None:
    doc = _label(responder(), "pga0", {"system": CONF, "code": "M"})
    doc = _label(doc, "pga3", {"system": "http://hl7.org/fhir/v3/Confidentiality", "code": "V"})
    tis = _by_code(_evaluate(doc))["tis"]
    assert _security(tis[0]) == [{"system": CONF, "code": "M"}]
    assert _security(tis[-1]) == [{"system": CONF, "code": "V"}]


def test_administrations_conditions_and_risk_factors_label_their_output() -> None:
    doc = _label(responder(fast_admin=True, dvt_after_cycle=2, hypertension=True), "htn", R)
    doc = _label(doc, "ma10", {"system": ACT, "code": "ETH"})
    result = _evaluate(doc)
    by_type: dict[str, list[Json]] = {}
    for d in result.derived:
        by_type.setdefault(d.resource["resourceType"], []).append(d.resource)
    # with hypertension (restricted) every administration (3.57 mg/kg/min) is above 3.3: each
    # DetectedIssue's limit rests on it; ma10's also names the ETH-labelled administration
    issues = {i["implicated"][0]["reference"]: i for i in by_type["DetectedIssue"]}
    assert len(issues) == 16
    assert _security(issues.pop("MedicationAdministration/ma10/_history/3")) == [
        R,
        {"system": ACT, "code": "ETH"},
    ]
    assert all(_security(i) == [R] for i in issues.values())
    (flag,) = by_type["Flag"]  # cites the hypertension as evidence
    assert _security(flag) == [R]
    by = _by_code(result)
    assert _security(by["ivig-cycle-dose"][1]) == [{"system": ACT, "code": "ETH"}]
    assert _security(by["ivig-cycle-dose"][0]) is None
    assert _security(by["ivig-cumulative-dose"][0]) == [{"system": ACT, "code": "ETH"}]
    # the DVT is not labelled; its AdverseEvent names ma10? (cycle 2's administrations)
    (ae,) = by_type["AdverseEvent"]
    suspects = {s["instance"]["reference"] for s in ae["suspectEntity"]}
    expected = [{"system": ACT, "code": "ETH"}] if any("ma10" in s for s in suspects) else None
    assert _security(ae) == expected


def test_a_labelled_event_labels_its_adverse_event() -> None:
    doc = _label(responder(dvt_after_cycle=2), "dvt", R)
    result = _evaluate(doc)
    (ae,) = [d.resource for d in result.derived if d.resource["resourceType"] == "AdverseEvent"]
    assert _security(ae) == [R]


def _stored(result: PatientResult) -> dict[str, Json]:
    return {
        d.identifier: {
            **copy.deepcopy(d.resource),
            "id": f"x{i}",
            "meta": {**d.resource.get("meta", {}), "versionId": "1"},
        }
        for i, d in enumerate(result.derived)
    }


def test_a_source_labelled_later_updates_the_derived_resources_once() -> None:
    stored = _stored(_evaluate(responder()))
    labelled = _evaluate(_label(responder(), "pga3", R))
    plan = labelled.plan(stored)
    # the last TIS and the confirmed deterioration cite pga3: updated with the label
    assert plan.summary["update"] == 2
    assert plan.bundle is not None
    puts = [e for e in plan.bundle["entry"] if e["request"]["method"] == "PUT"]
    assert len(puts) == 2
    assert all(_security(e["resource"]) == [R] for e in puts)
    assert _security(plan.bundle["entry"][-1]["resource"]) == [R]
    # a re-run over what was written writes nothing
    again = _stored(labelled)
    assert labelled.plan(again).bundle is None


def test_labels_a_server_or_person_added_are_no_difference_and_never_lowered() -> None:
    labelled = _evaluate(_label(responder(), "pga3", R))
    stored = _stored(labelled)
    local = {"system": "http://example.org/local", "code": "x"}
    for s in stored.values():
        if _security(s):  # raised to V by a person, and a label of the server's own
            s["meta"]["security"] = [{"system": CONF, "code": "V"}, local]
    assert labelled.plan(stored).bundle is None
    # an update for another reason keeps the stored labels (fhirtis never lowers one)
    changed_doc = _label(responder(), "pga3", R)
    for e in changed_doc["entry"]:
        if e["resource"]["id"] == "pga3":
            e["resource"]["valueQuantity"]["value"] = 1
    plan = _evaluate(changed_doc).plan(stored)
    assert plan.bundle is not None
    puts = [e for e in plan.bundle["entry"] if e["request"]["method"] == "PUT"]
    assert puts
    for e in puts:
        assert _security(e["resource"]) == [{"system": CONF, "code": "V"}, local]
    # and a source whose label was removed does not lower the stored resource either
    assert _evaluate(_label(responder(), "pga3")).plan(stored).bundle is None


def test_the_registry_path_labels_its_provenance_too() -> None:
    doc = _label(responder(), "pga3", R)
    evaluated = evaluate_resources(read_patient_bundle(orjson.dumps(doc)), "d", Settings())
    evaluated = pickle.loads(pickle.dumps(evaluated))  # as it crosses to a Dask worker and back
    bundle = evaluated.plan().bundle
    assert bundle is not None
    assert _security(bundle["entry"][-1]["resource"]) == [R]
    assert sum(_security(e["resource"]) == [R] for e in bundle["entry"][:-1]) == 2


def test_a_labelled_report_named_in_a_note_labels_the_dose() -> None:
    doc = responder()
    weight = next(e for e in doc["entry"] if e["resource"]["id"] == "w0")
    day = weight["resource"]["effectiveDateTime"]
    report = _report("lab", day, _contained("r2", "29463-7", 70, "kg"))
    report["meta"] = {"versionId": "1", "security": [R]}
    weight["resource"], weight["fullUrl"] = report, "DiagnosticReport/lab"
    result = _evaluate(doc)
    first = _by_code(result)["ivig-cycle-dose"][0]
    assert "DiagnosticReport/lab/_history/1" in first["note"][0]["text"]
    assert "derivedFrom" not in first
    assert _security(first) == [R]
