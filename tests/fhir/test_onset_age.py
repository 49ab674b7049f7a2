"""Dermatomyositis onset given as an age (R4 Condition.onset[x] includes ``onsetAge``; the HL7
R4 example condition-example-f202-malignancy has ``onsetAge`` {52, years, UCUM ``a``}) decides
adult or juvenile criteria (spec §2.3: juvenile when "the age at dermatomyositis onset is < 18
years"). It was ignored: a child with DM from age 11 was scored with the adult criteria, and the
note saying the onset age was unknown was in no output."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest

from fhirtis.clinical.policy import Policy, Population
from fhirtis.clinical.population import decide_population
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import SCT, bundle, condition, patient

Json = dict[str, Any]
UCUM = "http://unitsofmeasure.org"


def _age(value: float, code: str = "a") -> Json:
    return {
        "value": value,
        "unit": {"a": "years", "mo": "months"}.get(code, code),
        "system": UCUM,
        "code": code,
    }


def _dm_with(**onset: Any) -> Json:
    dm = condition("dm", SCT, "396230008", None)
    dm.update(onset)
    return dm


def _evaluate(*resources: Json) -> Any:
    pr = read_patient_bundle(orjson.dumps(bundle(*resources)))
    result = evaluate_patient_resources(pr, Settings())
    return result, patient_summary(result.patient_ref, result.evaluation, result.issues)


@pytest.mark.parametrize(
    ("onset", "population"),
    [
        (_age(11), Population.JUVENILE),
        (_age(17.9), Population.JUVENILE),  # 17 completed years
        (_age(18), Population.ADULT),
        (_age(138, "mo"), Population.JUVENILE),  # 11.5 years
        (_age(216, "mo"), Population.ADULT),  # 18 years
    ],
)
def test_an_onset_age_decides_the_criteria(onset: Json, population: Population) -> None:
    result, _ = _evaluate(patient(birth="2012-05-01"), _dm_with(onsetAge=onset))
    decision = result.evaluation.population
    assert decision.population is population and decision.reason == "onset-age"


def test_an_onset_age_needs_no_birth_date() -> None:
    bare = {"resourceType": "Patient", "id": "p1"}
    result, _ = _evaluate(bare, _dm_with(onsetAge=_age(9)))
    assert result.evaluation.population.population is Population.JUVENILE


def test_the_earliest_onset_of_several_dm_conditions_decides() -> None:
    """One Condition dated (onset at 30 years old), another by age (onset at 12): the earlier
    onset, at 12, decides."""
    dated = condition("dm1", SCT, "396230008", "2000-06-01")
    by_age = _dm_with(onsetAge=_age(12))
    by_age["id"] = "dm2"
    result, _ = _evaluate(patient(birth="1970-03-01"), dated, by_age)
    assert result.evaluation.population.population is Population.JUVENILE


def test_an_onset_age_in_an_unknown_unit_is_said_and_adult_used() -> None:
    result, _ = _evaluate(
        patient(birth="2012-05-01"), _dm_with(onsetAge={"value": 11, "unit": "yrs old"})
    )
    assert result.evaluation.population.population is Population.ADULT
    said = [i for i in result.issues if i.expression and "onsetAge" in i.expression]
    assert said and said[0].severity == "warning"


def test_the_population_note_is_in_the_summary() -> None:
    """The reason the adult criteria were used for want of an onset age is in the output."""
    _, summary = _evaluate(patient(birth="2012-05-01"), condition("dm", SCT, "396230008", None))
    codes = [n["code"] for n in summary["notes"]]
    assert "onset-age-unknown" in codes


def test_decide_population_with_an_onset_age() -> None:
    policy = Policy()
    assert decide_population(policy, dm_onset_age=17).population is Population.JUVENILE
    assert decide_population(policy, dm_onset_age=18).population is Population.ADULT
    # with a dated onset too, the earlier onset decides
    both = decide_population(
        policy, birth_date=date(1970, 1, 1), dm_onset=date(2000, 1, 1), dm_onset_age=12
    )
    assert both.population is Population.JUVENILE
