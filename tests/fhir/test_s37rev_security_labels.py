"""Security labels (s37 review): a malformed ``meta.security`` coding (a ``system`` that is a
list or an object, as damaged or hand-made JSON has it) in a source or in a stored derived
resource is passed over, never a TypeError that loses the patient or the write; and the bag a
rate step's DetectedIssue names (``evidence.detail``, a reference it holds) gives its labels
as the other references do, versioned or not."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.patients import responder
from tests.fhir.test_s37page_step_issue_names_bag import titrated_too_fast

Json = dict[str, Any]
CONF = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
R = {"system": CONF, "code": "R"}


def _evaluate(doc: Json) -> PatientResult:
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())


def _label(doc: Json, rid: str, *security: Any) -> Json:
    for e in doc["entry"]:
        if e["resource"]["id"] == rid:
            e["resource"]["meta"] = {"versionId": "3", "security": list(security)}
    return doc


def _security(resource: Json) -> Any:
    return resource.get("meta", {}).get("security")


def test_a_source_label_with_a_list_or_object_system_is_passed_over() -> None:
    for system in (["x"], {"a": 1}):
        doc = _label(responder(), "pga3", {"system": system, "code": "V"}, R)
        result = _evaluate(doc)
        tis = [d.resource for d in result.derived if d.identifier.startswith("tis-")]
        assert _security(tis[-1]) == [R]  # the readable label still carried
        assert result.plan().bundle is not None


def test_a_stored_resource_with_malformed_labels_is_updated_not_a_traceback() -> None:
    base = _evaluate(responder())
    stored = {
        d.identifier: {
            **copy.deepcopy(d.resource),
            "id": f"x{i}",
            "meta": {**d.resource.get("meta", {}), "versionId": "1"},
        }
        for i, d in enumerate(base.derived)
    }
    for n, s in enumerate(stored.values()):
        s["meta"]["security"] = 5 if n % 2 else [{"system": ["x"], "code": "R"}, "R"]
    plan = _evaluate(_label(responder(), "pga3", R)).plan(stored)
    assert plan.bundle is not None
    puts = [e["resource"] for e in plan.bundle["entry"] if e["request"]["method"] == "PUT"]
    assert puts
    for body in puts:
        assert R in _security(body)


def test_a_rate_steps_issue_carries_the_label_of_the_bag_it_names() -> None:
    doc = _label(titrated_too_fast(), "ma00", R)
    result = _evaluate(doc)
    issues = [d.resource for d in result.derived if d.resource["resourceType"] == "DetectedIssue"]
    steps = [i for i in issues if "evidence" in i]
    assert len(steps) == 2
    for issue in steps:
        assert issue["evidence"][0]["detail"][0]["reference"] == "MedicationAdministration/ma00"
        assert _security(issue) == [R]


def test_a_restricted_weight_labels_the_cumulative_dose_and_the_rate_issue() -> None:
    """The cumulative g/kg is the sum of the cycles' g/kg, each on its dosing weight (spec §4),
    and a DetectedIssue's rate in mg/kg/min is computed with its cycle's dosing weight: both are
    derived from the weight, as the cycle doses that carry its label are (one cycle: the same
    g/kg, written once labelled and once not)."""
    doc = _label(responder(fast_admin=True), "w0", R)
    result = _evaluate(doc)
    by_kind: dict[str, list[Json]] = {}
    for d in result.derived:
        by_kind.setdefault(d.identifier.rsplit("-", 1)[0], []).append(d.resource)
    assert all(_security(c) == [R] for c in by_kind["ivig-cycle-dose"])
    assert [_security(c) for c in by_kind["ivig-cumulative-dose"]] == [[R]]
    issues = by_kind["infusion-rate-above-max"]
    assert issues
    assert all(_security(i) == [R] for i in issues)
    assert all(_security(t) is None for t in by_kind["tis"])  # not derived from the weight
