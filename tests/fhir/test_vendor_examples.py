"""Vendor documentation shapes (tests/data/vendor, sources in its README): Oracle Health (Cerner
Millennium R4) and Epic R4 responses, written by us in the vendors' published shapes. fhirtis never
crashes on them, drops nothing silently, reads the values as worked out by hand, and everything it
derives validates (``check_output`` of test_published_examples).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_bundle_file, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.test_corpus_schema import _resources, _schema_errors
from tests.fhir.test_published_examples import _read_facts, check_output

Json = dict[str, Any]
VENDOR = Path(__file__).parents[1] / "data" / "vendor"
LB = Decimal("0.45359237")  # kg per [lb_av] (UCUM, exact)

ORACLE_PT = "Patient/12790411"
EPIC_PT = "Patient/eT1kWm3o.Q2xYvbn8ufRa7w3"
ORACLE_WEIGHT = "weight 75.069537235 2025-09-08"  # 165.5 [lb_av] x 0.45359237


def _bundle(name: str) -> PatientResult:
    result = evaluate_bundle_file(VENDOR / name, Settings())
    check_output(result)
    return result


def _single(name: str) -> PatientResult:
    """A single resource example in a one-patient Bundle beside its (Epic) Patient."""
    patient = json.loads((VENDOR / "epic/patient.json").read_text())
    example = json.loads((VENDOR / name).read_text())
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": r} for r in (patient, example)],
    }
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(bundle), name), Settings())
    check_output(result)
    return result


def _issues(result: PatientResult) -> list[tuple[str, str, str | None]]:
    return [(i.severity, i.code, i.expression) for i in result.issues]


def test_every_fixture_is_tested_and_listed() -> None:
    names = {str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*.json")}
    readme = (VENDOR / "README.md").read_text()
    assert all(f"`{n}`" in readme for n in names), names
    assert all(n in Path(__file__).read_text() for n in names)


@pytest.mark.parametrize("name", sorted(str(p.relative_to(VENDOR)) for p in VENDOR.rglob("*.json")))
def test_each_fixture_matches_the_r4_json_schema(name: str) -> None:
    """Our fixtures (every entry and contained resource) are valid FHIR R4 (the official JSON
    schema, as the corpus test checks): a shape fhirtis handles badly is fhirtis's problem."""
    doc = json.loads((VENDOR / name).read_text())
    assert [e for r in _resources(doc) for e in _schema_errors(r)] == []


# -- Oracle Health (Cerner Millennium R4) ---------------------------------------------------------


def test_oracle_vitals_and_lab_searchset_with_a_suppressed_outcome() -> None:
    """Weight 165.5 [lb_av] (unit text "lb") = 165.5 x 0.45359237 = 75.069537235 kg exactly;
    height 167 cm; CK 1840 U/L with its referenceRange high 192 as the ULN; the OperationOutcome
    entry (search.mode outcome, warning "suppressed") is not an error: the data are used and one
    warning says they may be incomplete."""
    result = _bundle("oracle/observations-searchset-outcome.json")
    assert result.patient_ref == ORACLE_PT
    assert Decimal("165.5") * LB == Decimal("75.069537235")
    assert _read_facts(result) == [
        ORACLE_WEIGHT,
        "height 167 2025-09-08",
        "measure ck 1840",
    ]
    (ck,) = result.data.measures
    assert ck.uln == Decimal(192)
    assert sorted(result.data.used) == [
        "Observation/L-201885610",
        "Observation/VS-201885501",
        "Observation/VS-201885502",
        ORACLE_PT,
    ]
    assert _issues(result) == [("warning", "incomplete", "Bundle.entry[4].resource")]
    assert "code suppressed" in result.issues[0].diagnostics


def test_oracle_searchset_page_with_a_next_link_warns_it_is_one_page() -> None:
    result = _bundle("oracle/observations-searchset-next-page.json")
    assert _read_facts(result) == [ORACLE_WEIGHT, "height 167 2025-09-08"]
    assert _issues(result) == [("warning", "incomplete", "Bundle.link[1]")]


def test_oracle_iv_piggyback_with_contained_medication() -> None:
    """Two IV piggyback administrations (route SNOMED CT 47625008), each 700 mL of a contained
    Medication whose ingredient strength is 70 g / 700 mL (= 100 mg/mL), rateQuantity 125 mL/h
    (code "mL/h"), the infuse-over-time extension: 2 x 70 g = 140 g; 140 / 75.069537235 =
    1.8649 g/kg; 125 x 100 / (60 x 75.069537235) = 2.7752 mg/kg/min. The not-done amoxicillin
    is not IVIG and not counted."""
    result = _bundle("oracle/medication-administrations-searchset.json")
    got = [
        (a.start.instant, a.dose_ml, a.rate_ml_per_h, a.concentration_mg_per_ml)
        for a in result.data.administrations
    ]
    assert got == [
        (datetime(2025, 9, d, 14, tzinfo=UTC), Decimal(700), Decimal(125), Decimal(100))
        for d in (9, 10)
    ]
    (cycle,) = result.evaluation.exposure.cycles
    kg = Decimal("75.069537235")
    assert cycle.grams == Decimal(140)
    assert round(cycle.g_per_kg or 0, 4) == round(Decimal(140) / kg, 4) == Decimal("1.8649")
    rate = Decimal(125) * 100 / (60 * kg)
    assert round(cycle.max_rate_mg_kg_min or 0, 4) == round(rate, 4) == Decimal("2.7752")
    assert not result.evaluation.thrombosis.rate_findings
    assert "MedicationAdministration/201885703" not in result.data.used
    assert result.issues == []


def test_oracle_provisional_encounter_diagnosis_and_resolved_pregnancy() -> None:
    """Pulmonary thromboembolism (SNOMED CT 233935004, ICD-10-CM I26.99) as an encounter
    diagnosis, verificationStatus provisional: counted as an event, with a warning that it is not
    confirmed. The problem-list pregnancy (77386006, resolved 2020) is not a code fhirtis ships:
    reported as unclassified, not dropped silently."""
    result = _bundle("oracle/conditions-searchset.json")
    assert _read_facts(result) == ["event pulmonary-embolism 2025-09-12"]
    pe, pregnancy = result.issues
    assert (pe.severity, pe.expression) == (
        "warning",
        "Bundle.entry[1].resource.verificationStatus",
    )
    assert "provisional" in pe.diagnostics and "Condition/d201885801" in str(pe.resource)
    assert (pregnancy.severity, pregnancy.resource) == ("warning", "Condition/p201885802")
    assert "77386006 could not be classified" in pregnancy.diagnostics


def test_oracle_procedures_with_year_only_dates_count_from_the_first_possible_day() -> None:
    """Oracle's Procedure search gives `performedDateTime` as a year ("2002"): a central venous
    catheter insertion (SNOMED CT 233527006, a risk factor) dated "2025" cannot be placed on a
    day, so it counts from the first day it may have been done (2025-01-01: the safe side for
    the maximum rate, as a risk-factor Condition with such an onset does), with a warning naming
    it and the element (it was excluded with an error); the CPT appendectomy (44950) is not a
    code fhirtis uses and is passed over."""
    result = _bundle("oracle/procedures-searchset.json")
    assert [(e.kind.value, e.source, e.start, e.end) for e in result.data.evidence] == [
        ("central-venous-catheter", "Procedure/2572990101/_history/0", date(2025, 1, 1), None)
    ]
    (issue,) = result.issues
    assert (issue.severity, issue.resource, issue.expression) == (
        "warning",
        "Procedure/2572990101",
        "Bundle.entry[1].resource.performedDateTime",
    )
    assert "only to the year or month" in issue.diagnostics
    assert "2025-01-01" in issue.diagnostics


def test_oracle_active_central_line_device_without_placement_date() -> None:
    """Oracle's Device search: an active central venous catheter (SNOMED CT 52124006) with only
    udiCarrier HRF, manufactureDate and expirationDate: a central venous catheter risk factor
    with no start or end (its manufacture date is not when it was placed), cited by version
    (meta.versionId 1). The Bundle holds no
    Patient: the patient is the Device's `patient`."""
    result = _bundle("oracle/device-searchset.json")
    assert result.patient_ref == ORACLE_PT
    assert [(e.kind.value, e.source, e.start, e.end) for e in result.data.evidence] == [
        ("central-venous-catheter", "Device/31600101/_history/1", None, None)
    ]
    assert result.issues == []


# -- Epic R4 --------------------------------------------------------------------------------------


def test_epic_flowsheet_weight_and_lab_searchset() -> None:
    """Epic's vitals coding (flowsheet row 14 "Weight", the flowsheet-id token, LOINC under its
    OID urn:oid:1.2.246.537.6.96 and under http://loinc.org, 3141-9, 8716-3): weight 70 kg read
    once; CK 2400 U/L with referenceRange low/high and text: ULN 192."""
    result = _bundle("epic/observations-searchset.json")
    assert result.patient_ref == EPIC_PT
    assert _read_facts(result) == ["weight 70 2025-10-06", "measure ck 2400"]
    assert result.data.measures[0].uln == Decimal(192)
    assert result.issues == []


def test_epic_enzyme_labs_each_with_its_uln() -> None:
    """LDH (2532-0), AST (1920-8), ALT (1742-6) and aldolase (1761-6) in Epic's lab shape, each
    with referenceRange low/high/text: every value read in U/L with its high as the ULN."""
    result = _bundle("epic/labs-enzymes-searchset.json")
    assert [(m.instrument.value, m.value, m.uln) for m in result.data.measures] == [
        ("ldh", Decimal(450), Decimal(220)),
        ("ast", Decimal(96), Decimal(40)),
        ("alt", Decimal(120), Decimal(56)),
        ("aldolase", Decimal("14.2"), Decimal("7.6")),
    ]
    assert result.issues == []


def test_epic_weight_with_unit_text_kg_upper_case() -> None:
    """Epic's Observation.Create (Vitals) example writes the value as {65, "KG"} (no system, no
    code). "KG" is kg (UCUM's case-insensitive symbol); it was excluded as an unknown unit."""
    result = _single("epic/observation-weight-unit-text.json")
    assert _read_facts(result) == ["weight 70 2025-10-06"]
    assert result.issues == []


def test_epic_iv_infusion_in_grams_with_a_rate() -> None:
    """Two completed infusions, dose 35 g (UCUM g), rateQuantity 100 mL/h, effectivePeriod
    3.5 h, Medication (10 g / 100 mL) as a search include: 2 x 35 = 70 g; 70 / 70 kg = 1 g/kg;
    100 x 100 / (60 x 70) = 2.381 mg/kg/min."""
    result = _bundle("epic/medication-administrations-searchset.json")
    assert [(a.dose_g, a.rate_ml_per_h) for a in result.data.administrations] == [
        (Decimal(35), Decimal(100))
    ] * 2
    (cycle,) = result.evaluation.exposure.cycles
    assert (cycle.grams, cycle.g_per_kg) == (Decimal(70), Decimal(1))
    assert round(cycle.max_rate_mg_kg_min or 0, 3) == Decimal("2.381")
    assert result.issues == []


def test_epic_problem_list_dvt_with_a_search_outcome() -> None:
    """DVT (SNOMED CT 128053003, ICD-10-CM I80.12) on the problem list, confirmed, onset
    2025-10-10: an event; the OperationOutcome entry (search.mode outcome) is a warning, not an
    error, and the Patient (search.mode include) is read."""
    result = _bundle("epic/conditions-searchset-outcome.json")
    assert _read_facts(result) == ["event deep-vein-thrombosis 2025-10-10"]
    assert _issues(result) == [("warning", "incomplete", "Bundle.entry[2].resource")]


@pytest.mark.parametrize(
    ("name", "ref", "birth"),
    [
        ("oracle/patient.json", ORACLE_PT, date(1971, 5, 14)),
        ("epic/patient.json", EPIC_PT, date(1968, 11, 2)),
    ],
)
def test_vendor_patients(name: str, ref: str, birth: date) -> None:
    patient = json.loads((VENDOR / name).read_text())
    bundle: Json = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": patient}],
    }
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(bundle), name), Settings())
    check_output(result)
    assert (result.patient_ref, list(result.data.used)) == (ref, [ref])
    assert (result.data.patient.sex.value, result.data.patient.birth_date) == ("female", birth)
    assert result.issues == []
