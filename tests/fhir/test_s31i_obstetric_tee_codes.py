"""Thromboembolic events coded in the obstetric chapter of ICD-10-CM (clinical spec §5.3: a DVT, a
pulmonary embolism or a cerebral venous sinus thrombosis is a TEE however the problem list codes
it). Dermatomyositis affects women of childbearing age, and an encounter diagnosis of a DVT in
pregnancy is coded O22.3x, not I82.4x ("Deep phlebothrombosis in pregnancy"; ICD-10-CM titles as
listed in repository medtrack-io/icd_code, commit 688bfba0364fbe6e0e7276ef4c050ed435e35c63,
lib/codes/codes_o22.ex, codes_o87.ex, codes_o88.ex; profiles/TERMINOLOGY.md). Before, such a
code was only reported as unclassified (its range is a review range): the event was neither an
AdverseEvent nor a history risk factor (audit s31e found O22.30 in a vendor-shaped problem
list)."""

from __future__ import annotations

import pytest

from fhirtis.clinical.facts import TeeKind
from tests.fhir.builders import condition, patient
from tests.fhir.reading import extract

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("O22.30", TeeKind.DVT),  # deep phlebothrombosis in pregnancy, unspecified trimester
        ("O22.31", TeeKind.DVT),
        ("O22.32", TeeKind.DVT),
        ("O22.33", TeeKind.DVT),
        ("O87.1", TeeKind.DVT),  # deep phlebothrombosis in the puerperium
        ("O22.50", TeeKind.CVST),  # cerebral venous thrombosis in pregnancy
        ("O22.53", TeeKind.CVST),
        ("O87.3", TeeKind.CVST),  # cerebral venous thrombosis in the puerperium
        ("O88.211", TeeKind.PE),  # thromboembolism in pregnancy (obstetric pulmonary embolism)
        ("O88.219", TeeKind.PE),
        ("O88.22", TeeKind.PE),  # in childbirth
        ("O88.23", TeeKind.PE),  # in the puerperium
    ],
)
def test_an_obstetric_thromboembolism_is_a_tee(code: str, kind: TeeKind) -> None:
    data = extract(patient(), condition("c1", ICD10CM, code, "2025-03-05"))
    assert [(e.kind, e.source) for e in data.events] == [(kind, "Condition/c1")]


@pytest.mark.parametrize(
    "code",
    [
        "O22.21",  # superficial thrombophlebitis in pregnancy: not a DVT
        "O87.0",  # superficial thrombophlebitis in the puerperium
        "O88.111",  # amniotic fluid embolism: not a thromboembolism
        "O88.011",  # air embolism
    ],
)
def test_other_obstetric_venous_codes_are_not_tees(code: str) -> None:
    data = extract(patient(), condition("c1", ICD10CM, code, "2025-03-05"))
    assert data.events == []
