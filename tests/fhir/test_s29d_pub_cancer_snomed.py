"""Cancers in published FHIR data coded with SNOMED CT concepts the shipped `risk-malignancy`
expansion did not list, session 29 "d".

`risk-malignancy` is SNOMED CT is-a 363346000 "Malignant neoplastic disease" with a shipped
expansion of confirmed members; a descendant it does not list is "could not be classified"
without a terminology server (clinical spec §6) and shows no risk factor. Published data code
cancers with concepts it did not list:

- HL7 FHIR R4 example `condition-example-f002-lung` (tests/data/published/r4): an active
  "NSCLC - Non-small cell lung cancer", SNOMED CT 254637007, onset 2011-05-05;
- Synthea's lung cancer module, as in the published Synthea patient 129c6ac7
  (tests/data/published/synthea): 254637007 and 424132000 "Non-small cell carcinoma of lung,
  TNM stage 1", both active; its colorectal and prostate cancer modules: 363406005, 109838007,
  94260004, 314994000; 67811000119102 (small cell, TNM stage 1).

Each is a member of the VSAC value set "Malignant Neoplasms" (2.16.840.1.113883.3.464.1003.1194,
NCQA, version 20220927), as published in repository cqframework/ecqm-content-qicore-2025
(profiles/TERMINOLOGY.md [S29d-VSAC]): an active one is an active malignancy (§5.1), the
thrombosis risk factor that lowers the maximum rate to 3.3 mg/kg/min (§5.2). Synthea's
126906006 "Neoplasm of prostate" and 92691004 "Carcinoma in situ of prostate" are not in that
value set (not malignant, or not invasive) and stay unclassified.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_file
from fhirtis.settings import Settings
from tests.fhir.builders import SCT, condition, patient
from tests.fhir.reading import extract, unclassified

PUBLISHED = Path(__file__).parents[1] / "data" / "published"


def test_the_hl7_r4_lung_cancer_example_is_an_active_malignancy() -> None:
    example = json.loads((PUBLISHED / "r4" / "condition-example-f002-lung.json").read_text())
    example["subject"] = {"reference": "Patient/p1"}  # as published, retargeted to the Bundle's
    data = extract(patient(), example)
    assert unclassified(data) == []
    assert [(e.kind, e.source, e.start) for e in data.evidence] == [
        (RiskFactorKind.MALIGNANCY, "Condition/f002", date(2011, 5, 5))
    ]


def test_the_synthea_lung_cancers_are_active_malignancies() -> None:
    result = evaluate_bundle_file(
        PUBLISHED / "synthea" / "patient-129c6ac7-conditions-devices.json", Settings()
    )
    malignancy = {e.source for e in result.data.evidence if e.kind is RiskFactorKind.MALIGNANCY}
    assert {
        "Condition/0c46bc9f-a5e2-193f-9d7c-cb66c9cd5ef6",  # 254637007, active
        "Condition/864227c1-ef70-0af7-711a-32e2d6bdbf1d",  # 424132000, active
    } <= malignancy
    said = " ".join(i.diagnostics for i in result.issues)
    assert "254637007" not in said and "424132000" not in said


@pytest.mark.parametrize(
    "code",
    [
        "254637007",  # Non-small cell lung cancer (disorder)
        "424132000",  # Non-small cell carcinoma of lung, TNM stage 1 (disorder)
        "67811000119102",  # Primary small cell malignant neoplasm of lung, TNM stage 1
        "363406005",  # Malignant neoplasm of colon (disorder)
        "109838007",  # Overlapping malignant neoplasm of colon (disorder)
        "94260004",  # Secondary malignant neoplasm of colon (disorder)
        "314994000",  # Metastasis from malignant tumor of prostate (disorder)
    ],
)
def test_synthea_cancer_codes_are_malignancies(code: str) -> None:
    data = extract(patient(), condition("c", SCT, code, "2024-05-01"))
    assert unclassified(data) == []
    assert [(e.kind, e.source) for e in data.evidence] == [
        (RiskFactorKind.MALIGNANCY, "Condition/c")
    ]


@pytest.mark.parametrize(
    "code",
    [
        "126906006",  # Neoplasm of prostate: not in the VSAC set (not said to be malignant)
        "92691004",  # Carcinoma in situ of prostate: in situ, not in the VSAC set
    ],
)
def test_synthea_prostate_neoplasm_codes_are_still_unclassified(code: str) -> None:
    data = extract(patient(), condition("c", SCT, code, "2024-05-01"))
    assert data.evidence == []
    assert len(unclassified(data)) == 1
