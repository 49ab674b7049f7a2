"""A restricted Patient labels every resource derived about the patient.

The Patient's ``birthDate``, ``gender`` and ``deceased[x]`` are inputs of every evaluation (the
juvenile criteria of the TIS and confirmed deterioration, the age factor of the tee-risk Flag
and so the limit of every rate DetectedIssue, the ideal dosing weight, the age at death), and
every derived resource is about the patient (its ``subject``/``patient``). The Provenance named
the Patient and carried its labels, but the derived resources did not: a Patient labelled ``R``
(a VIP, a protected person) had its TIS, doses, Flag, DetectedIssues and AdverseEvent written
back unlabelled (R4 security-labels.html: the labels are carried forward)."""

from __future__ import annotations

from typing import Any

from tests.fhir.patients import responder
from tests.fhir.test_s37seclab_security_labels import ACT, CONF, R, _evaluate, _security

Json = dict[str, Any]


def _patient_labelled(doc: Json, *security: Json) -> Json:
    for e in doc["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["meta"] = {"versionId": "2", "security": list(security)}
    return doc


def test_a_restricted_patient_labels_everything_derived_about_the_patient() -> None:
    cel = {"system": ACT, "code": "CEL"}  # celebrity
    doc = _patient_labelled(
        responder(fast_admin=True, dvt_after_cycle=2, hypertension=True), R, cel
    )
    result = _evaluate(doc)
    kinds = {d.resource["resourceType"] for d in result.derived}
    assert {"Observation", "Flag", "DetectedIssue", "AdverseEvent"} <= kinds
    for d in result.derived:
        assert _security(d.resource) == [R, cel], d.identifier
    bundle = result.plan().bundle
    assert bundle is not None
    assert _security(bundle["entry"][-1]["resource"]) == [R, cel]


def test_the_highest_confidentiality_of_patient_and_source_wins() -> None:
    doc = _patient_labelled(responder(), {"system": CONF, "code": "M"})
    for e in doc["entry"]:
        if e["resource"]["id"] == "pga3":
            e["resource"]["meta"] = {"versionId": "3", "security": [R]}
    tis = [
        d.resource
        for d in _evaluate(doc).derived
        if d.resource.get("code", {}).get("coding", [{}])[0].get("code") == "tis"
    ]
    assert [_security(t) for t in tis] == [[{"system": CONF, "code": "M"}]] * 2 + [[R]]


def test_an_unlabelled_patient_adds_nothing() -> None:
    doc = _patient_labelled(responder())
    result = _evaluate(doc)
    assert all(_security(d.resource) is None for d in result.derived)
