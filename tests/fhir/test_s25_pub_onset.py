"""Dermatomyositis onsets recorded as R4 allows but fhirtis did not read: ``onsetRange`` (an age
range: R4 Condition search parameter ``onset-age`` is "Onsets as age or age range",
``Condition.onset.as(Age) | Condition.onset.as(Range)``, http://hl7.org/fhir/R4/condition.html#search)
and ``onsetString`` (the R4 example ``condition-example2``: "approximately November 2012",
http://hl7.org/fhir/R4/condition-example2.json.html). The age at onset decides adult or juvenile
criteria (clinical spec §2.3). Before, both were passed over without a word: a child whose
onset was recorded as 10-12 years was scored with the adult criteria as "onset unknown"."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.clinical.policy import Population
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import SCT, UCUM, bundle, condition, patient

Json = dict[str, Any]


def _age(value: int, unit: str = "a") -> Json:
    return {
        "value": value,
        "unit": {"a": "years", "mo": "months"}[unit],
        "system": UCUM,
        "code": unit,
    }


def _dm(**onset: Any) -> Json:
    return condition("dm", SCT, "396230008", None, **onset)


def _evaluate(*resources: Json) -> PatientResult:
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )


def test_an_onset_age_range_below_18_gives_the_juvenile_criteria() -> None:
    """Born 1990-06-01, onset at 10 to 12 years: juvenile (any age in the range is < 18)."""
    result = _evaluate(
        patient(birth="1990-06-01"), _dm(onsetRange={"low": _age(10), "high": _age(12)})
    )
    decision = result.evaluation.population
    assert (decision.population, decision.reason) == (Population.JUVENILE, "onset-age")
    assert result.issues == []


def test_an_onset_age_range_in_months_is_read_in_completed_years() -> None:
    """18 to 30 months (UCUM ``mo``): 1 to 2 completed years, juvenile."""
    result = _evaluate(
        patient(birth="2015-01-15"),
        _dm(onsetRange={"low": _age(18, "mo"), "high": _age(30, "mo")}),
    )
    assert result.evaluation.population.population is Population.JUVENILE
    assert result.evaluation.population.reason == "onset-age"


def test_an_onset_age_range_of_adults_gives_the_adult_criteria_by_onset_age() -> None:
    result = _evaluate(
        patient(birth="1960-02-29"), _dm(onsetRange={"low": _age(40), "high": _age(45)})
    )
    decision = result.evaluation.population
    assert (decision.population, decision.reason) == (Population.ADULT, "onset-age")


def test_an_onset_age_range_across_18_leaves_the_age_at_onset_unknown_with_its_bounds() -> None:
    result = _evaluate(
        patient(birth="1990-06-01"), _dm(onsetRange={"low": _age(15), "high": _age(20)})
    )
    decision = result.evaluation.population
    assert (decision.population, decision.reason) == (Population.ADULT, "adult-default")
    assert any("15–20 years at onset" in n.message for n in decision.notes), decision.notes


def test_the_earliest_onset_decides_between_a_dated_onset_and_an_age_range() -> None:
    """One DM Condition dated at 40 years, another recorded at 8-9 years: juvenile."""
    result = _evaluate(
        patient(birth="1980-03-01"),
        condition("dm1", SCT, "396230008", "2020-05-01"),
        condition("dm2", SCT, "396230008", None, onsetRange={"low": _age(8), "high": _age(9)}),
    )
    assert result.evaluation.population.population is Population.JUVENILE


def test_an_onset_age_range_without_a_birth_date_is_reported() -> None:
    no_birth = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    result = _evaluate(no_birth, _dm(onsetRange={"low": _age(10), "high": _age(12)}))
    assert result.evaluation.population.reason == "adult-default"
    assert [(i.resource, i.expression) for i in result.issues if "onset" in i.diagnostics] == [
        ("Condition/dm", "Bundle.entry[1].resource.onsetRange")
    ]


def test_an_onset_age_range_without_a_high_end_is_reported_not_guessed() -> None:
    result = _evaluate(patient(birth="1990-06-01"), _dm(onsetRange={"low": _age(10)}))
    assert result.evaluation.population.reason == "adult-default"
    assert [i.resource for i in result.issues if "onsetRange" in (i.expression or "")] == [
        "Condition/dm"
    ]


def test_an_onset_recorded_as_text_is_reported() -> None:
    """R4 condition-example2's "approximately November 2012": fhirtis cannot read a date or
    an age from text, and says so at the element (the text itself is not echoed)."""
    result = _evaluate(patient(), _dm(onsetString="approximately November 2012"))
    assert result.evaluation.population.reason == "adult-default"
    issues = [i for i in result.issues if i.expression == "Bundle.entry[1].resource.onsetString"]
    assert [i.resource for i in issues] == ["Condition/dm"]
    assert all("November" not in i.diagnostics for i in issues)
