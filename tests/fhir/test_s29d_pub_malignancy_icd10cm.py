"""ICD-10-CM's alphanumeric malignant categories, session 29 "d" (fixture and sources in
tests/data/s29d-pub/README.md).

ICD-10-CM codes Merkel cell carcinoma (C4A), malignant neuroendocrine tumours (C7A: malignant
carcinoid tumours, poorly differentiated neuroendocrine carcinoma) and secondary neuroendocrine
tumours (C7B) in three categories whose second character is a letter; WHO ICD-10 codes the same
tumours under their sites (C44, C18, C34 ...), which `risk-malignancy` already counts. An active
one is an active malignancy (clinical spec §5.1), a thrombosis risk factor: 3.3 mg/kg/min
(§5.2). Before, the numeric regex C00-C96 left them out: the Condition was reported "could not
be classified", no risk factor, limit 4 mg/kg/min. Dermatomyositis is itself associated with
cancer, neuroendocrine tumours included, so a problem list with one is not a rarity here.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fhirtis.clinical.facts import RiskFactorKind
from tests.fhir.builders import ICD, condition, patient
from tests.fhir.reading import extract, unclassified
from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s29d-pub"
NET = "Condition/eCondVendorNET.m7Tq2Ls9Xa3"


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    # the folder's fixtures are shared by the session's test files: each is named in one of them
    tests = sorted(Path(__file__).parent.glob("test_s29d_*.py"))
    check_fixture_folder(DATA, "".join(p.read_text() for p in tests))


def test_an_epic_problem_list_neuroendocrine_carcinoma_is_an_active_malignancy() -> None:
    result = evaluate_fixture(DATA / "epic-problem-list-neuroendocrine-c7a.json")
    assert [i for i in result.issues if i.resource == NET] == []
    evaluation = result.evaluation
    assert evaluation is not None
    thrombosis = evaluation.thrombosis
    assert [f.kind for f in thrombosis.risk_factors] == [RiskFactorKind.MALIGNANCY]
    assert [f.evidence for f in thrombosis.risk_factors] == [(NET,)]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    # 100 mL/h of a 10 % product on 70 kg: 100 x 100 / (60 x 70) = 2.381 mg/kg/min <= 3.3
    assert thrombosis.rate_findings == ()
    assert evaluation.exposure.cumulative_grams == 70


# ICD-10-CM titles: repository medtrack-io/icd_code, lib/codes/codes_c4a.ex, codes_c7a.ex,
# codes_c7b.ex (commit 688bfba0364fbe6e0e7276ef4c050ed435e35c63)
@pytest.mark.parametrize(
    "code",
    [
        "C4A.0",  # Merkel cell carcinoma of lip
        "C4A.9",  # Merkel cell carcinoma, unspecified
        "C4A.72",  # Merkel cell carcinoma of left lower limb, including hip
        "C7A.00",  # Malignant carcinoid tumor of unspecified site
        "C7A.010",  # Malignant carcinoid tumor of the duodenum
        "C7A.090",  # Malignant carcinoid tumor of the bronchus and lung
        "C7A.1",  # Malignant poorly differentiated neuroendocrine tumors
        "C7A.8",  # Other malignant neuroendocrine tumors
        "C7B.00",  # Secondary carcinoid tumors, unspecified site
        "C7B.02",  # Secondary carcinoid tumors of liver
        "C7B.1",  # Secondary Merkel cell carcinoma
        "C7B.8",  # Other secondary neuroendocrine tumors
    ],
)
def test_icd10cm_alphanumeric_malignant_categories_are_malignancies(code: str) -> None:
    data = extract(patient(), condition("c", ICD, code, "2024-05-01"))
    assert unclassified(data) == []
    assert [(e.kind, e.source) for e in data.evidence] == [
        (RiskFactorKind.MALIGNANCY, "Condition/c")
    ]


@pytest.mark.parametrize(
    "code",
    [
        "D3A.00",  # Benign carcinoid tumor of unspecified site: benign, not a malignancy
        "C97",  # WHO's multiple independent primaries: no ICD-10-CM code, left out as before
        "C7C.1",  # no such category
    ],
)
def test_codes_beside_them_are_not_malignancies(code: str) -> None:
    data = extract(patient(), condition("c", ICD, code, "2024-05-01"))
    assert data.evidence == []
