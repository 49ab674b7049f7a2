"""Poorly controlled inflammation is judged on the PGA *at the latest assessment* (clinical spec
§5.1: "pga ≥ 7 cm at the latest assessment [choice]"; §2.5: an assessment is anchored on a PGA or
an MMT-8, and takes each other measure nearest its date within ±7 days).

Before, it was the latest VAS PGA on or before the date, however old: a PGA of 8 cm three months
back made inflammation a risk factor (maximum 3.3 mg/kg/min) though the latest assessment, an
MMT-8 visit with no PGA within 7 days, cannot tell whether inflammation is controlled now. By the
specification the factor is then not assessable (said so, as for any factor the data does not
allow), and the limit rests on the factors found.

End to end from FHIR Bundles (tests/fhir/builders.py shapes; found by the s31 audit)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.pipeline.offline import evaluate_bundle_bytes
from fhirtis.settings import Settings
from tests.fhir.builders import (
    LOINC,
    SCT,
    administration,
    bundle,
    condition,
    medication,
    obs,
    patient,
    qty,
)

Json = dict[str, Any]


def _thrombosis(*measures: Json) -> Any:
    b = bundle(
        patient(birth="1980-06-15"),
        condition("dm", SCT, "396230008", "2023-06-01"),
        medication(),
        obs("w0", "29463-7", 70, "kg", "2024-01-01", system=LOINC),
        obs("h0", "8302-2", 175, "cm", "2024-01-01", system=LOINC),
        administration(
            "a0",
            "2024-01-08T09:00:00+01:00",
            "2024-01-08T11:30:00+01:00",
            dose=qty(350, "mL"),
            rate=qty(150, "mL/h"),  # 3.57 mg/kg/min: above 3.3, within 4
        ),
        *measures,
    )
    result = evaluate_bundle_bytes(json.dumps(b).encode(), "s31f.json", Settings())
    return result.evaluation.thrombosis


def test_an_old_pga_does_not_stand_for_a_later_assessment_without_one() -> None:
    t = _thrombosis(
        obs("pga", "pga", 8, "cm", "2023-10-01"),
        obs("mmt", "mmt8-150", 100, "{score}", "2024-01-05"),
    )
    assert RiskFactorKind.INFLAMMATION not in {f.kind for f in t.risk_factors}
    assert RiskFactorKind.INFLAMMATION in {u.kind for u in t.current.unassessed}
    assert t.max_rate_now.limit_mg_kg_min == 4
    assert t.rate_findings == ()  # 3.57 mg/kg/min is within 4


def test_the_pga_of_the_latest_assessment_counts() -> None:
    """Controls: a PGA at the latest assessment (its own day, or within 7 days of its MMT-8)
    is the one judged, as before."""
    for pga_day in ("2024-01-05", "2023-12-29"):  # same day; 7 days before the MMT-8
        t = _thrombosis(
            obs("pga", "pga", 8, "cm", pga_day),
            obs("mmt", "mmt8-150", 100, "{score}", "2024-01-05"),
        )
        assert RiskFactorKind.INFLAMMATION in {f.kind for f in t.risk_factors}, pga_day
        assert t.max_rate_now.limit_mg_kg_min == Decimal("3.3")
        assert len(t.rate_findings) == 1


def test_a_pga_only_history_is_judged_as_before() -> None:
    """Control: with no later MMT-8, the latest PGA is the latest assessment's, however old."""
    t = _thrombosis(obs("pga", "pga", 8, "cm", "2023-10-01"))
    assert RiskFactorKind.INFLAMMATION in {f.kind for f in t.risk_factors}
