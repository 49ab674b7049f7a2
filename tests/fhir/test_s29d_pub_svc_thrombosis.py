"""Deep venous thromboses coded in ICD-10-CM that `tee-deep-vein-thrombosis` left out, session 29
"d" (fixture and sources in tests/data/s29d-pub/README.md): the superior vena cava (I82.210) and
the tibial veins' thrombophlebitis (I80.231-I80.239).

`tee-deep-vein-thrombosis` holds the vena cava (its description; SNOMED CT 83938003 "Thrombosis of
vena cava", 195437003 "Embolism and thrombosis of the vena cava"; WHO ICD-10 I82.2 "Embolism and
thrombosis of vena cava") and, of ICD-10-CM I82.2x, the acute inferior vena cava (I82.220) and
other thoracic veins (I82.290), but not I82.210 "Acute embolism and thrombosis of superior vena
cava": the same clot was a TEE when a German or IPS sender coded it I82.2 and "could not be
classified" when a US one coded it I82.210. A superior vena cava thrombosis is the thrombosis of
a central line or port, which IVIG patients often have. Now it is an event (clinical spec §5.3):
associated with the cycle it follows, an AdverseEvent, and from its onset a history of
thrombosis (limit 3.3 mg/kg/min, §5.2). The chronic code (I82.211) stays out, as every chronic
thrombosis does (I82.x1x chronic codes are not events).

Likewise the ValueSet holds the femoral, iliac, popliteal and other deep vessels' thrombophlebitis
(I80.1x, I80.20x-I80.22x, I80.29x), WHO I80.2 ("other deep vessels of lower extremities") and the
acute tibial vein thrombosis (I82.44x), but not I80.23x, thrombophlebitis of the tibial vein,
which ICD-10-CM lists between the popliteal (I80.22x) and the other deep vessels (I80.29x).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from fhirtis.clinical.facts import TeeKind
from tests.fhir.builders import ICD, condition, patient
from tests.fhir.reading import extract, unclassified
from tests.fhir.test_published_examples import check_fixture_folder, evaluate_fixture

DATA = Path(__file__).parents[1] / "data" / "s29d-pub"
SVC = "Condition/eCondVendorSVC.r2Hd5Nq8Yt3"


def test_every_fixture_is_tested_listed_and_valid_r4() -> None:
    # the folder's fixtures are shared by the session's test files: each is named in one of them
    tests = sorted(Path(__file__).parent.glob("test_s29d_*.py"))
    check_fixture_folder(DATA, "".join(p.read_text() for p in tests))


def test_an_epic_superior_vena_cava_thrombosis_after_ivig_is_an_associated_event() -> None:
    result = evaluate_fixture(DATA / "epic-encounter-diagnosis-svc-thrombosis-i82-210.json")
    assert [i for i in result.issues if i.resource == SVC] == []
    evaluation = result.evaluation
    assert evaluation is not None
    thrombosis = evaluation.thrombosis
    [associated] = thrombosis.associated_events
    assert associated.event.kind is TeeKind.DVT
    assert associated.event.source == SVC
    assert associated.event.coding == (ICD, "I82.210")
    assert associated.cycle_indexes == (1,)  # the first (and only) cycle
    assert len(associated.suspects) == 2  # both infusions of the cycle started before it
    # 2025-10-10T09:00Z is more than 24 h after the last infusion's end (10-08T17:30Z)
    assert associated.early is False
    assert [f.kind.value for f in thrombosis.risk_factors] == ["thrombosis-history"]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
    assert any(
        d.resource["resourceType"] == "AdverseEvent"
        and d.resource["event"]["coding"][0]["code"] == "I82.210"
        for d in result.derived
    )


def test_icd10cm_acute_superior_vena_cava_thrombosis_is_a_deep_vein_thrombosis() -> None:
    data = extract(patient(), condition("c", ICD, "I82.210", "2024-05-01"))
    assert unclassified(data) == []
    assert [(e.kind, e.source) for e in data.events] == [(TeeKind.DVT, "Condition/c")]


@pytest.mark.parametrize(
    "code",
    [
        "I82.211",  # Chronic embolism and thrombosis of superior vena cava: no event
        "I82.221",  # Chronic embolism and thrombosis of inferior vena cava: no event
    ],
)
def test_chronic_vena_cava_thrombosis_is_still_no_event(code: str) -> None:
    data = extract(patient(), condition("c", ICD, code, "2024-05-01"))
    assert data.events == []


@pytest.mark.parametrize(
    "code",
    [
        "I80.231",  # Phlebitis and thrombophlebitis of right tibial vein
        "I80.232",  # Phlebitis and thrombophlebitis of left tibial vein
        "I80.233",  # Phlebitis and thrombophlebitis of tibial vein, bilateral
        "I80.239",  # Phlebitis and thrombophlebitis of unspecified tibial vein
    ],
)
def test_icd10cm_tibial_vein_thrombophlebitis_is_a_deep_vein_thrombosis(code: str) -> None:
    data = extract(patient(), condition("c", ICD, code, "2024-05-01"))
    assert unclassified(data) == []
    assert [(e.kind, e.source) for e in data.events] == [(TeeKind.DVT, "Condition/c")]
