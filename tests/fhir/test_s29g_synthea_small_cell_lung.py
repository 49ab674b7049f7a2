"""Synthea's small cell lung cancer, SNOMED CT 254632001, without a terminology server
(session 29 "g").

Synthea's lung cancer module (repository synthetichealth/synthea,
`src/main/resources/modules/lung_cancer.json`, state "SCLC"; tests/data/README.md [SYN-LC])
records a small cell lung cancer as an active, confirmed Condition coded only SNOMED CT 254632001
"Small cell carcinoma of lung (disorder)", as in the published Synthea R4 patient
`R4/SYNTHEA/Sherman_McGlynn_8ef2ef98-48c5-427e-80d4-5e8f30ac8bf5.json` of repository
smart-on-fhir/generated-sample-data (commit 25ac8089f0464b8673c7669509dc0bb8f4883773; Condition
5117138e-…, `urn:uuid:` fullUrl and subject, `encounter`, `onsetDateTime`, `recordedDate`,
`request` POST Condition). 254632001 is a member of VSAC "Malignant Neoplasms"
2.16.840.1.113883.3.464.1003.1194 (profiles/TERMINOLOGY.md [S29d-VSAC]). An active one is an
active malignancy (clinical spec §5.1), the risk factor that lowers the maximum rate to
3.3 mg/kg/min (§5.2). The shipped `risk-malignancy` expansion left it out, so without a terminology
server it was "could not be classified", no risk factor, limit 4.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings

DATA = Path(__file__).parents[1] / "data"
CONDITION_URL = "urn:uuid:6a1e3c0e-5b7d-4c39-9f4e-2d1b8c7a9e01"


def _synthea_patient_with_sclc(rate_ml_h: int) -> bytes:
    """The Synthea-shaped transaction of the corpus (70 kg, 2 × 700 mL of a 10 % IVIG on
    2025-03-10/11) with the lung cancer module's small cell carcinoma recorded a month before,
    and the administrations' rate set to ``rate_ml_h``."""
    bundle: dict[str, Any] = json.loads((DATA / "synthea-transaction-urn-uuid.json").read_text())
    (patient,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient"]
    (encounter,) = [e for e in bundle["entry"] if e["resource"]["resourceType"] == "Encounter"]
    sclc = {
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
                "coding": [
                    {
                        "system": "http://snomed.info/sct",
                        "code": "254632001",
                        "display": "Small cell carcinoma of lung (disorder)",
                    }
                ],
                "text": "Small cell carcinoma of lung (disorder)",
            },
            "subject": {"reference": patient["fullUrl"]},
            "encounter": {"reference": encounter["fullUrl"]},
            "onsetDateTime": "2025-02-07T10:12:44-05:00",
            "recordedDate": "2025-02-07T10:12:44-05:00",
        },
        "request": {"method": "POST", "url": "Condition"},
    }
    bundle["entry"].append(sclc)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] == "MedicationAdministration":
            entry["resource"]["dosage"]["rateQuantity"]["value"] = rate_ml_h
    return orjson.dumps(bundle)


def test_a_synthea_small_cell_lung_cancer_is_the_malignancy_risk_factor_offline() -> None:
    # 150 mL/h × 100 mg/mL / (60 × 70 kg) = 3.571 mg/kg/min: within 4, above 3.3.
    result = evaluate_bundle_bytes(_synthea_patient_with_sclc(150), "sclc.json", Settings())
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
