"""The DetectedIssue of a titration step above the maximum names the bag it is a step of (s37).

Clinical spec §5.2: an administration above the applicable maximum is a finding (DetectedIssue),
one per record (``implicated`` 1..1). A rate step of a titrated bag (R4 MedicationAdministration
``partOf``) is a record of its own but not an infusion of its own (s36tidy): its DetectedIssue
said nothing of the bag, so two fast steps of one bag read as two infusions on the SMART page.
It now carries the bag in ``evidence.detail`` (profile fhirtis-infusion-rate-above-max); a bag's
own DetectedIssue carries no evidence, as before (example output unchanged)."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.fhir.validation import validate
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import administration, qty
from tests.fhir.patients import responder

Json = dict[str, Any]

BAG = "MedicationAdministration/ma00"


def titrated_too_fast() -> dict[str, Any]:
    """The responder, its first bag (ma00) charted with 2 rate steps partOf it, both far above
    4 mg/kg/min (500 and 600 mL/h of a 10 % product at about 70 kg)."""
    data = responder()
    data["entry"] += [
        {
            "resource": administration(
                f"s{i}",
                f"2024-01-08T09:{i}0:00+01:00",
                rate=qty(r, "mL/h"),
                partOf=[{"reference": BAG}],
            )
        }
        for i, r in ((1, 500), (2, 600))
    ]
    return data


def _issues(data: Json) -> list[Json]:
    result = evaluate_bundle_bytes(orjson.dumps(data), "p1.json", Settings())
    bundle: Any = result.plan().bundle
    return [
        e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "DetectedIssue"
    ]


def test_a_fast_steps_issue_names_its_bag_in_evidence() -> None:
    issues = _issues(titrated_too_fast())
    by_record = {i["implicated"][0]["reference"]: i for i in issues}
    steps = ["MedicationAdministration/s1", "MedicationAdministration/s2"]
    assert sorted(by_record) == steps  # one DetectedIssue per record, as before
    for ref in steps:
        evidence = by_record[ref]["evidence"]
        assert [d["reference"] for e in evidence for d in e["detail"]] == [BAG]
        assert "rate step" in evidence[0]["code"][0]["text"]
        assert validate(by_record[ref]) is by_record[ref]  # R4B model: well formed


def test_a_bags_own_issue_has_no_evidence() -> None:
    data = titrated_too_fast()
    bag = next(e["resource"] for e in data["entry"] if e["resource"].get("id") == "ma00")
    bag["dosage"]["rateQuantity"]["value"] = 700
    issues = _issues(data)
    own = next(i for i in issues if i["implicated"][0]["reference"] == BAG)
    assert "evidence" not in own
    assert len(issues) == 3


def test_the_summary_is_unchanged() -> None:
    result = evaluate_bundle_bytes(orjson.dumps(titrated_too_fast()), "p1.json", Settings())
    summary = orjson.loads(
        orjson.dumps(
            patient_summary(result.patient_ref, result.evaluation, result.issues), default=str
        )
    )
    findings = summary["thrombosis"]["rate_findings"]
    assert {tuple(f) for f in findings} == {("administration", "rate", "limit", "cycle")}
    assert sorted(f["administration"] for f in findings) == [
        "MedicationAdministration/s1",
        "MedicationAdministration/s2",
    ]
