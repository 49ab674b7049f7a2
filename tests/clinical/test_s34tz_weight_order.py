"""The latest body weight (and height, BMI) is chosen by the calendar date it was recorded on.

Clinical spec §4: the dosing weight is "the latest body weight (LOINC 29463-7) within 30 days
before the cycle starts", and its age counts in days. Every day rule of fhirtis reads a time's
calendar date as recorded (its own offset; a date-only value is its day), and a date-only value
is never placed at midnight (``FhirTime``). The weights were ordered by instant, a date-only
weight at midnight UTC: a weight taken at 20:00-05:00 on the 9th (01:00Z on the 10th) came
after one recorded on the 10th, date only, and was used for a cycle on the 10th (80 kg, 0.875
g/kg, a weight one day old) instead of the 10th's (70 kg, 1 g/kg, that day's). The BMI that
judges obesity (§5.1) preferred a recorded BMI over weight and height the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson

from fhirtis.clinical.facts import BodyWeight
from fhirtis.clinical.weight import PlausibleBody, dated, latest_on_or_before
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, administration, bundle, medication, obs, patient, qty


def _evaluate(*resources: dict[str, object]) -> PatientResult:
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(patient(), medication(), *resources))),
        Settings(),
    )


def _weight(oid: str, kg: int, when: str) -> dict[str, object]:
    return obs(oid, "29463-7", kg, "kg", when, system=LOINC)


_INFUSION = administration(
    "a1", "2024-05-10T09:00:00-05:00", "2024-05-10T13:00:00-05:00", dose=qty(70, "g")
)


def test_a_date_only_weight_on_a_later_day_is_later_than_an_evening_weight() -> None:
    result = _evaluate(
        _weight("w9", 80, "2024-05-09T20:00:00-05:00"), _weight("w10", 70, "2024-05-10"), _INFUSION
    )
    [cycle] = result.evaluation.exposure.cycles
    assert cycle.dosing_weight.weight_source == "Observation/w10"
    assert cycle.dosing_weight.kg == Decimal(70)
    assert cycle.dosing_weight.weight_age_days == 0
    assert cycle.g_per_kg == Decimal(1)


def test_a_weight_late_on_a_day_in_a_positive_offset_is_before_the_next_day() -> None:
    # 2024-05-10T01:00+14:00 is 11:00Z on the 9th; 2024-05-09T23:00-12:00 is 11:00Z on the 10th
    result = _evaluate(
        _weight("late9", 80, "2024-05-09T23:00:00-12:00"),
        _weight("early10", 70, "2024-05-10T01:00:00+14:00"),
        _INFUSION,
    )
    [cycle] = result.evaluation.exposure.cycles
    assert cycle.dosing_weight.weight_source == "Observation/early10"


def test_the_jump_rule_compares_with_the_weight_of_the_day_before() -> None:
    # in date order: 70 (8th), 72 (9th, evening -05:00), 90 (10th, date only): 90 is 25% off
    # the 9th's 72 kg, not more, and is plausible; by instant the 10th's came before the 9th's,
    # was compared with the 8th's 70 kg (28.6%) and excluded
    result = _evaluate(
        _weight("w8", 70, "2024-05-08"),
        _weight("w9", 72, "2024-05-09T20:00:00-05:00"),
        _weight("w10", 90, "2024-05-10"),
        _INFUSION,
    )
    [cycle] = result.evaluation.exposure.cycles
    assert cycle.dosing_weight.weight_source == "Observation/w10"
    assert not [n for n in cycle.notes if n.code == "weight-implausible"]


def test_latest_on_or_before_orders_by_recorded_date_first() -> None:
    evening = BodyWeight(
        "Observation/a", datetime.fromisoformat("2024-05-09T20:00:00-05:00"), Decimal(80)
    )
    day_only = BodyWeight("Observation/b", datetime(2024, 5, 10, tzinfo=UTC), Decimal(70))
    weights = dated([evening, day_only])
    assert latest_on_or_before(weights, datetime(2024, 5, 10).date()) is day_only
    body = PlausibleBody.of([evening, day_only], [], Settings().policy)
    assert latest_on_or_before(body.weights, datetime(2024, 5, 10).date()) is day_only


def test_a_recorded_bmi_of_a_later_day_is_preferred_to_an_evening_weight() -> None:
    # obesity (§5.1) on the 10th: the BMI recorded that day (32) is later than the weight of the
    # 9th's evening (-05:00) with which a BMI of 24.2 would be computed
    result = _evaluate(
        obs("h", "8302-2", 170, "cm", "2024-01-01", system=LOINC),
        _weight("w9", 70, "2024-05-09T20:00:00-05:00"),
        obs("bmi", "39156-5", 32, "kg/m2", "2024-05-10", system=LOINC),
    )
    current = result.evaluation.thrombosis.current
    assert [f.evidence for f in current.factors if f.kind.value == "obesity"] == [
        ("Observation/bmi",)
    ]
