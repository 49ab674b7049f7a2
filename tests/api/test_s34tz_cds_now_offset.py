"""The CDS service's "now" is read on the calendar of the records' own offset.

Clinical spec §4 and §5.3: days are calendar dates as the record gives them. The CDS service
evaluates "as of" ``datetime.now(UTC)``, and the dosing weight now is the latest weight dated
on or before now's date. In Sydney (+10:00) at 09:00 on the 11th (23:00Z on the 10th), a
weight taken at 08:00+10:00 on the 11th, an hour before, was dated after "now" (the 10th): the
card used the weight of six weeks before, stale, or said none; and the PGA measured that
morning did not count for the inflammation risk factor (4 mg/kg/min instead of 3.3).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import orjson

from fhirtis.api.cds_hooks.service import evaluate
from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.bundle import PatientResources, read_patient_bundle
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, bundle, obs, patient

_NOW = datetime(2024, 5, 10, 23, 0, tzinfo=UTC)  # 09:00+10:00 on the 11th


def _resources() -> PatientResources:
    return read_patient_bundle(
        orjson.dumps(
            bundle(
                patient(),
                obs("w-old", "29463-7", 60, "kg", "2024-04-01T09:00:00+10:00", system=LOINC),
                obs("w-today", "29463-7", 62, "kg", "2024-05-11T08:00:00+10:00", system=LOINC),
                obs("pga-today", "pga", 8, "cm", "2024-05-11T08:30:00+10:00"),
            )
        )
    )


def test_a_weight_taken_an_hour_before_now_is_the_dosing_weight_now() -> None:
    result = evaluate(_resources(), Settings(), _NOW)
    assert result.weight.weight_source == "Observation/w-today"
    assert result.weight.kg == Decimal(62)
    assert not result.weight.stale
    assert result.now == _NOW  # the same instant
    assert result.now.date() == date(2024, 5, 11)  # on the records' calendar


def test_the_morning_pga_counts_for_the_risk_factors_now() -> None:
    result = evaluate(_resources(), Settings(), _NOW)
    thrombosis = result.evaluation.thrombosis
    assert [f.kind for f in thrombosis.current.factors] == [RiskFactorKind.INFLAMMATION]
    assert thrombosis.max_rate_now.limit_mg_kg_min == Decimal("3.3")
