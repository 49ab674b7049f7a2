"""The evaluation's time ("as of": the latest record) counts a date-only Observation to the end
of its day, as it counts every other date-only record (a Condition's onset, a use's start).

A date-only Observation (a PGA, a weight, a BMI recorded as ``2024-05-10``) counted at
midnight UTC of its day, so a weight taken at 20:00-05:00 on the 9th (01:00Z on the 10th) was
"later" and became the evaluation's time: the current risk factors (the tee-risk Flag, its
``period.start``, the maximum rate now) were judged on the 9th, without the 10th's PGA of 8 cm
(poorly controlled inflammation, clinical spec §5.1: "pga ≥ 7 cm at the latest assessment"),
and the Flag said 4 mg/kg/min where 3.3 applies. A date-only Condition on the 10th counted to
the end of the 10th all along.
"""

from __future__ import annotations

from datetime import date

import orjson

from fhirtis.clinical.facts import RiskFactorKind
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, SCT, bundle, condition, obs, patient


def _evaluate(*resources: dict[str, object]) -> PatientResult:
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(patient(), *resources))), Settings()
    )


_EVENING_WEIGHT = obs("w9", "29463-7", 70, "kg", "2024-05-09T20:00:00-05:00", system=LOINC)


def test_a_date_only_pga_of_the_next_day_is_the_latest_record() -> None:
    result = _evaluate(_EVENING_WEIGHT, obs("pga10", "pga", 8, "cm", "2024-05-10"))
    thrombosis = result.evaluation.thrombosis
    assert thrombosis.current.at.day == date(2024, 5, 10)
    kinds = [f.kind for f in thrombosis.current.factors]
    assert kinds == [RiskFactorKind.INFLAMMATION]
    assert str(thrombosis.max_rate_now.limit_mg_kg_min) == "3.3"
    [flag] = [d.resource for d in result.derived if d.resource["resourceType"] == "Flag"]
    assert flag["period"]["start"].startswith("2024-05-10")


def test_a_date_only_observation_counts_as_a_date_only_condition_does() -> None:
    pga = _evaluate(_EVENING_WEIGHT, obs("pga10", "pga", 3, "cm", "2024-05-10"))
    assert pga.evaluation.as_of.date() == date(2024, 5, 10)
    # the same day's end whichever kind of record carries it
    weight = _evaluate(_EVENING_WEIGHT, obs("w10", "29463-7", 71, "kg", "2024-05-10", system=LOINC))
    assert weight.evaluation.as_of == pga.evaluation.as_of


def test_a_date_only_day_ends_on_the_records_calendar() -> None:
    # Sydney: a weight of the 11th, date only, and a PGA of 8 cm at 08:00+10:00 on the 12th
    # (22:00Z on the 11th). Counted to the 11th's end in UTC (09:59+10:00 on the 12th) it would
    # come after the PGA: "as of" the 11th, without the latest PGA (4 mg/kg/min)
    result = _evaluate(
        obs("pga12", "pga", 8, "cm", "2024-05-12T08:00:00+10:00"),
        obs("w11", "29463-7", 70, "kg", "2024-05-11", system=LOINC),
    )
    thrombosis = result.evaluation.thrombosis
    assert result.evaluation.as_of.isoformat() == "2024-05-12T08:00:00+10:00"
    assert [f.kind for f in thrombosis.current.factors] == [RiskFactorKind.INFLAMMATION]
    assert str(thrombosis.max_rate_now.limit_mg_kg_min) == "3.3"


def test_a_later_date_only_day_ends_in_the_offset_of_the_timed_records() -> None:
    result = _evaluate(
        obs("pga11", "pga", 3, "cm", "2024-05-11T08:00:00+10:00"),
        obs("w12", "29463-7", 70, "kg", "2024-05-12", system=LOINC),
    )
    assert result.evaluation.as_of.isoformat() == "2024-05-12T23:59:59.999999+10:00"


def test_a_date_only_condition_day_ends_on_the_records_calendar() -> None:
    # as above with a hypertension recorded on the 11th, date only (a Condition counted to the
    # end of its day in UTC all along): the tee-risk Flag named only the hypertension
    result = _evaluate(
        obs("pga12", "pga", 8, "cm", "2024-05-12T08:00:00+10:00"),
        condition("ht", SCT, "38341003", "2024-05-11"),
    )
    assert result.evaluation.as_of.isoformat() == "2024-05-12T08:00:00+10:00"
    kinds = {f.kind for f in result.evaluation.thrombosis.current.factors}
    assert kinds == {RiskFactorKind.CARDIOVASCULAR, RiskFactorKind.INFLAMMATION}
