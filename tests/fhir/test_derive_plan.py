"""Derived resources and the transaction write plan."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.fhir.queries import existing_entries
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, administration, bundle, medication, obs, patient, qty
from tests.fhir.patients import responder

Json = dict[str, Any]


def _evaluate(doc: Json) -> PatientResult:
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())


def _by_code(result: PatientResult) -> dict[str, list[Json]]:
    out: dict[str, list[Json]] = {}
    for d in result.derived:
        code = d.resource["code"]["coding"][0]["code"]
        out.setdefault(code, []).append(d.resource)
    return out


def test_derived_resources_of_a_responder() -> None:
    result = _evaluate(responder())
    assert result.issues == []
    by = _by_code(result)
    tis = by["tis"]
    assert [t["effectivePeriod"]["end"] for t in tis] == ["2024-02-04", "2024-03-03", "2024-03-31"]
    last = tis[-1]
    assert last["valueQuantity"]["value"] == 62.5
    assert last["interpretation"][0]["coding"][0]["code"] == "major"
    assert last["method"]["coding"][0]["code"] == "adult-criteria"
    assert len(last["component"]) == 13  # 6 measures x (improvement, score), responder
    assert last["component"][-1]["code"]["coding"][0]["code"] == "responder"
    assert last["component"][-1]["valueBoolean"] is True  # 62.5 (major), no deterioration
    assert "Observation/pga0" in {r["reference"] for r in last["derivedFrom"]}
    assert by["confirmed-deterioration"][0]["valueBoolean"] is False
    cycles = by["ivig-cycle-dose"]
    assert len(cycles) == 4
    assert cycles[0]["valueQuantity"] == {
        "value": 2,
        "unit": "g/kg",
        "system": "http://unitsofmeasure.org",
        "code": "g/kg",
    }
    comps = {c["code"]["coding"][0]["code"]: c for c in cycles[0]["component"]}
    assert comps["ivig-grams"]["valueQuantity"]["value"] == 140
    assert comps["max-infusion-rate"]["valueQuantity"]["value"] == 3.5714
    assert comps["dosing-weight-basis"]["valueCodeableConcept"]["coding"][0]["code"] == "actual"
    cumulative = by["ivig-cumulative-dose"][0]
    assert cumulative["valueQuantity"]["value"] == 560
    flag = by["tee-risk"][0]
    assert flag["status"] == "inactive"
    assert "DetectedIssue" not in {d.resource_type for d in result.derived}


def test_partial_tis_is_a_range_never_a_number() -> None:
    result = _evaluate(responder(missing_haq_week=12))
    last = _by_code(result)["tis"][-1]
    assert "valueQuantity" not in last
    assert last["valueRange"]["low"]["value"] == 57.5
    assert last["valueRange"]["high"]["value"] == 67.5
    assert last["interpretation"] == [{"text": "undetermined: moderate or major"}]
    haq = next(c for c in last["component"] if c["code"]["coding"][0]["code"] == "score-haq")
    assert "dataAbsentReason" in haq


def test_rate_finding_and_associated_event() -> None:
    result = _evaluate(responder(dvt_after_cycle=2, fast_admin=True))
    issues = {
        d.resource["implicated"][0]["reference"]: {
            e["url"].rsplit("/", 1)[1]: e["valueQuantity"]["value"] for e in d.resource["extension"]
        }
        for d in result.derived
        if d.resource_type == "DetectedIssue"
    }
    # 300 mL/h in cycle 2 (before the DVT): 7.1429 > 4. After the DVT (cycle 2, day 36) the
    # history risk factor lowers the limit to 3.3, which 150 mL/h (3.5714) in cycles 3–4 exceeds.
    assert issues.pop("MedicationAdministration/ma10") == {
        "infusion-rate": 7.1429,
        "applicable-max-rate": 4,
    }
    assert sorted(issues) == [
        f"MedicationAdministration/ma{c}{k}" for c in (2, 3) for k in range(4)
    ]
    assert all(v == {"infusion-rate": 3.5714, "applicable-max-rate": 3.3} for v in issues.values())
    ae = next(d.resource for d in result.derived if d.resource_type == "AdverseEvent")
    assert ae["resultingCondition"] == [{"reference": "Condition/dvt"}]
    assert len(ae["suspectEntity"]) == 4
    flag = next(d.resource for d in result.derived if d.resource_type == "Flag")
    assert flag["status"] == "active"
    factors = [e for e in flag["extension"] if e["url"].endswith("tee-risk-factor")]
    assert factors[0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == (
        "thrombosis-history"
    )


def test_adverse_events_are_matched_without_an_identifier_search() -> None:
    """R4 AdverseEvent has no identifier search parameter: conditional creates and look-ups use
    patient, category, onset and the resulting Condition."""
    result = _evaluate(responder(dvt_after_cycle=2))
    bundle = result.plan().bundle
    assert bundle is not None
    ae = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "AdverseEvent")
    assert ae["request"]["ifNoneExist"] == (
        "subject=Patient/p1&category=http://fhirtis.org/fhir/CodeSystem/fhirtis"
        "|tee-temporally-associated&date=2024-02-13T10:00:00%2B00:00"
        "&event=http://snomed.info/sct|128053003&resultingcondition=Condition/dvt"
    )
    lookups = existing_entries(result.derived, 50)
    assert any(
        e["request"]["url"].startswith("AdverseEvent?subject=Patient/p1&category=") for e in lookups
    )
    assert not any(e["request"]["url"].startswith("AdverseEvent?identifier") for e in lookups)


def test_same_input_gives_byte_identical_output() -> None:
    a = orjson.dumps(_evaluate(responder()).plan().bundle)
    b = orjson.dumps(_evaluate(responder()).plan().bundle)
    assert a == b


def test_offline_plan_is_conditional_creates_with_one_provenance() -> None:
    result = _evaluate(responder())
    bundle = result.plan().bundle
    assert bundle is not None and bundle["type"] == "transaction"
    entries = bundle["entry"]
    creates, prov = entries[:-1], entries[-1]
    assert all(e["request"]["method"] == "POST" for e in creates)
    for e in creates:
        ident = e["resource"]["identifier"]
        assert e["request"]["ifNoneExist"] == f"identifier={IDENTIFIER_SYSTEM}|" + ident[0]["value"]
    assert len({e["fullUrl"] for e in creates}) == len(creates)
    p = prov["resource"]
    assert p["resourceType"] == "Provenance"
    assert {t["reference"] for t in p["target"]} == {e["fullUrl"] for e in creates}
    entities = {e["what"]["reference"] for e in p["entity"]}
    assert "Observation/pga0" in entities and "MedicationAdministration/ma00" in entities
    assert p["agent"][0]["who"]["display"].startswith("fhirtis ")


def test_plan_against_existing_state() -> None:
    result = _evaluate(responder())
    stored = {
        d.identifier: {
            **d.resource,
            "id": f"x{i}",
            "meta": {**d.resource.get("meta", {}), "versionId": "1"},
        }
        for i, d in enumerate(result.derived)
    }
    unchanged = result.plan(stored)
    assert unchanged.bundle is None
    assert unchanged.summary == {"create": 0, "update": 0, "unchanged": len(result.derived)}
    # One source value changes: exactly the affected TIS is updated, with If-Match.
    changed_doc = responder()
    for e in changed_doc["entry"]:
        if e["resource"]["id"] == "pga3":
            e["resource"]["valueQuantity"]["value"] = 1  # 6 → 1: 50 %, 20 points
    changed = _evaluate(changed_doc).plan(stored)
    assert changed.summary["update"] == 1
    assert changed.bundle is not None
    put = changed.bundle["entry"][0]
    assert put["request"]["method"] == "PUT"
    assert put["request"]["ifMatch"] == 'W/"1"'
    assert put["resource"]["valueQuantity"]["value"] == 65
    assert changed.bundle["entry"][-1]["resource"]["target"] == [
        {"reference": put["request"]["url"]}
    ]


def _rate_just_above_four() -> Json:
    """154.322 lb (69.99928 kg) and a 10 % product at 168 mL/h: 4.00004 mg/kg/min, above 4."""
    return bundle(
        patient(),
        obs("w", "29463-7", 154.322, "[lb_av]", "2024-03-01T10:00:00Z", system=LOINC),
        medication(),
        administration(
            "ma1",
            "2024-03-04T09:00:00Z",
            "2024-03-04T13:00:00Z",
            dose=qty(350, "mL"),
            rate=qty(168, "mL/h"),
        ),
    )


def test_a_rate_just_above_the_maximum_is_never_written_equal_to_it() -> None:
    """Spec §5.2: a DetectedIssue "with the rate, the limit". A weight of 154.322 lb (69.99928
    kg) and a 10 % product at 168 mL/h make 4.00004 mg/kg/min: above 4. Written to 4 places
    half-even it read rate 4, maximum 4 (in the DetectedIssue and the summary); it is written
    rounded away from the maximum, as the detail text shows it: 4.0001."""
    result = _evaluate(_rate_just_above_four())
    (issue,) = [d.resource for d in result.derived if d.resource_type == "DetectedIssue"]
    values = {e["url"].rsplit("/", 1)[1]: e["valueQuantity"]["value"] for e in issue["extension"]}
    assert values == {"infusion-rate": 4.0001, "applicable-max-rate": 4}
    assert "rate 4.0001 mg/kg/min is above the maximum 4" in issue["detail"]
    summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
    (finding,) = summary["thrombosis"]["rate_findings"]
    assert (finding["rate"], finding["limit"]) == (Decimal("4.0001"), Decimal(4))


def test_a_cycles_maximum_rate_is_written_as_its_rate_finding_writes_it() -> None:
    """The cycle of the administration above (4.00004 mg/kg/min, above 4) wrote its maximum
    rate to 4 places half-even, 4, in the cycle Observation and the summary, beside a
    DetectedIssue saying 4.0001 is above the maximum 4. A cycle's maximum rate is written
    beside the policy's limits as a rate finding is beside its own."""
    result = _evaluate(_rate_just_above_four())
    (cycle,) = [
        d.resource
        for d in result.derived
        if d.resource_type == "Observation" and "ivig-cycle-dose" in d.identifier
    ]
    (rate,) = [
        c for c in cycle["component"] if c["code"]["coding"][0]["code"] == "max-infusion-rate"
    ]
    assert rate["valueQuantity"]["value"] == 4.0001
    summary = patient_summary(result.patient_ref, result.evaluation, result.issues)
    (cycle_record,) = summary["ivig"]["cycles"]
    assert cycle_record["max_rate_mg_kg_min"] == Decimal("4.0001")


def test_distinct_adverse_events_of_one_onset_have_distinct_conditional_creates() -> None:
    """R4 AdverseEvent has no identifier search, so its conditional create matches on patient,
    category and date (and the resulting Condition). A myocardial infarction and a pulmonary
    embolism recorded as AdverseEvents with the same onset got the same ``ifNoneExist``: one
    match skips the second create, two make the transaction fail (412). The match names the
    event's own coding too."""
    onset = "2024-01-09T08:00:00+01:00"

    def input_event(aid: str, code: str) -> Json:
        return {
            "resourceType": "AdverseEvent",
            "id": aid,
            "actuality": "actual",
            "subject": {"reference": "Patient/p1"},
            "event": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
            "date": onset,
        }

    doc = bundle(
        patient(),
        obs("w", "29463-7", 70, "kg", "2024-01-06T08:00:00Z", system=LOINC),
        medication(),
        administration(
            "ma0", "2024-01-08T09:00:00+01:00", "2024-01-08T20:00:00+01:00", dose=qty(140, "g")
        ),
        input_event("mi", "22298006"),
        input_event("pe", "59282003"),
    )
    result = _evaluate(doc)
    bundle_out = result.plan().bundle
    assert bundle_out is not None
    matches = [
        e["request"]["ifNoneExist"]
        for e in bundle_out["entry"]
        if e["resource"]["resourceType"] == "AdverseEvent"
    ]
    assert len(matches) == 2 and len(set(matches)) == 2
    assert all("event=http://snomed.info/sct|" in m for m in matches)
