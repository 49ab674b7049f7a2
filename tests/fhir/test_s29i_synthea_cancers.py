"""The other cancers Synthea's modules record, without a terminology server (session 29 "i").

Synthea's cancer modules (repository synthetichealth/synthea, `src/main/resources/modules/`)
record each cancer as an active, confirmed Condition coded only with SNOMED CT. Sessions 29 "d"
and "g" listed the codes seen in published Synthea patients; the modules write more, one per
stage:

- `lung_cancer.json`, ConditionOnset states "NSCLC II"-"NSCLC IV": 425048006, 422968005,
  423121009 "Non-small cell carcinoma of lung, TNM stage 2/3/4 (disorder)"; "SCLC II"-"SCLC IV":
  67821000119109, 67831000119107, 67841000119103 "Primary small cell malignant neoplasm of lung,
  TNM stage 2/3/4 (disorder)" (stage 1, 424132000 and 67811000119102, were listed in session 29
  "d");
- `lung_cancer.json`, state "SCLC": 254632001 "Small cell carcinoma of lung (disorder)", which
  the shipped expansion had left out as the tests' example of a code only a terminology server
  classifies (session 29 "g": that example is now 93993007);
- `colorectal_cancer.json`, state "Colorectal_Cancer_Stage_I": 93761005 "Primary malignant
  neoplasm of colon" (stages II-IV, 109838007, 363406005, 94260004, were listed in session 29
  "d").

Each is a member of VSAC "Malignant Neoplasms" 2.16.840.1.113883.3.464.1003.1194
(profiles/TERMINOLOGY.md [S29d-VSAC]). An active one is an active malignancy (clinical spec
§5.1), the thrombosis risk factor that lowers the maximum rate to 3.3 mg/kg/min (§5.2). The
shipped `risk-malignancy` expansion left them out, so without a terminology server a Synthea
patient with a stage 2-4 lung cancer or a stage I colon cancer got "could not be classified",
no risk factor and limit 4.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings

DATA = Path(__file__).parents[1] / "data"
CONDITION_URL = "urn:uuid:3f0b7c52-9a1d-4e8b-b6c4-8d2e5a719c03"

SYNTHEA_CANCERS = [
    # lung_cancer.json, "SCLC" (session 29 "g"): as in the published Synthea R4 patient
    # R4/SYNTHEA/Sherman_McGlynn_8ef2ef98-48c5-427e-80d4-5e8f30ac8bf5.json of repository
    # smart-on-fhir/generated-sample-data (commit 25ac8089f0464b8673c7669509dc0bb8f4883773)
    ("254632001", "Small cell carcinoma of lung (disorder)"),
    # lung_cancer.json, "NSCLC II", "NSCLC III", "NSCLC IV"
    ("425048006", "Non-small cell carcinoma of lung, TNM stage 2 (disorder)"),
    ("422968005", "Non-small cell carcinoma of lung, TNM stage 3 (disorder)"),
    ("423121009", "Non-small cell carcinoma of lung, TNM stage 4 (disorder)"),
    # lung_cancer.json, "SCLC II", "SCLC III", "SCLC IV"
    ("67821000119109", "Primary small cell malignant neoplasm of lung, TNM stage 2 (disorder)"),
    ("67831000119107", "Primary small cell malignant neoplasm of lung, TNM stage 3 (disorder)"),
    ("67841000119103", "Primary small cell malignant neoplasm of lung, TNM stage 4 (disorder)"),
    # colorectal_cancer.json, "Colorectal_Cancer_Stage_I"
    ("93761005", "Primary malignant neoplasm of colon"),
]


def _synthea_patient_with_cancer(code: str, display: str, rate_ml_h: int) -> bytes:
    """The Synthea-shaped transaction of the corpus (70 kg, 2 × 700 mL of a 10 % IVIG on
    2025-03-10/11) with a cancer Condition as Synthea writes it recorded a month before, and the
    administrations' rate set to ``rate_ml_h``."""
    bundle: dict[str, Any] = json.loads((DATA / "synthea-transaction-urn-uuid.json").read_text())
    (patient,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    (encounter,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    cancer = {
        "fullUrl": CONDITION_URL,
        "resource": {
            "resourceType": "Condition",
            "id": CONDITION_URL.removeprefix("urn:uuid:"),
            "clinicalStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                        "code": "active",
                    }
                ]
            },
            "verificationStatus": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                        "code": "confirmed",
                    }
                ]
            },
            "code": {
                "coding": [{"system": "http://snomed.info/sct", "code": code, "display": display}],
                "text": display,
            },
            "subject": {"reference": patient["fullUrl"]},
            "encounter": {"reference": encounter["fullUrl"]},
            "onsetDateTime": "2025-02-07T10:12:44-05:00",
            "recordedDate": "2025-02-07T10:12:44-05:00",
        },
        "request": {"method": "POST", "url": "Condition"},
    }
    bundle["entry"].append(cancer)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "MedicationAdministration":
            entry["resource"]["dosage"]["rateQuantity"]["value"] = rate_ml_h
    return orjson.dumps(bundle)


@pytest.mark.parametrize(("code", "display"), SYNTHEA_CANCERS)
def test_a_synthea_cancer_is_the_malignancy_risk_factor_offline(code: str, display: str) -> None:
    # 150 mL/h × 100 mg/mL / (60 × 70 kg) = 3.571 mg/kg/min: within 4, above 3.3.
    result = evaluate_bundle_bytes(
        _synthea_patient_with_cancer(code, display, 150), "cancer.json", Settings()
    )
    assert [i.diagnostics for i in result.issues if "classified" in i.diagnostics] == []
    condition = "Condition/" + CONDITION_URL.removeprefix("urn:uuid:")
    assert [(e.kind, e.source) for e in result.data.evidence] == [
        (RiskFactorKind.MALIGNANCY, condition)
    ]
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert [
        (f.administration_source.split("/")[0], round(float(f.rate_mg_kg_min), 3))
        for f in thrombosis.rate_findings
    ] == [("MedicationAdministration", 3.571)] * 2
    assert {f.limit.limit_mg_kg_min for f in thrombosis.rate_findings} == {Decimal("3.3")}


@pytest.mark.parametrize(("code", "display"), SYNTHEA_CANCERS)
def test_a_resolved_synthea_cancer_is_no_risk_factor(code: str, display: str) -> None:
    """Synthea ends a cancer in remission (ConditionEnd: clinicalStatus resolved, abatement):
    a malignancy up to its abatement (clinical spec §5.1: active malignancy), not at the
    infusions of 2025-03-10/11 after it, so their limit stays 4 and 3.571 is within it."""
    bundle = json.loads(_synthea_patient_with_cancer(code, display, 150))
    (cancer,) = [e["resource"] for e in bundle["entry"] if e["fullUrl"] == CONDITION_URL]
    cancer["clinicalStatus"]["coding"][0]["code"] = "resolved"
    cancer["abatementDateTime"] = "2025-02-28T09:00:00-05:00"
    result = evaluate_bundle_bytes(orjson.dumps(bundle), "cancer.json", Settings())
    assert [i.diagnostics for i in result.issues if "classified" in i.diagnostics] == []
    condition = "Condition/" + CONDITION_URL.removeprefix("urn:uuid:")
    assert [(e.kind, e.source, e.start, e.end) for e in result.data.evidence] == [
        (RiskFactorKind.MALIGNANCY, condition, date(2025, 2, 7), date(2025, 2, 28))
    ]
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("4")
    assert list(thrombosis.rate_findings) == []
