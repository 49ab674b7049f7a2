"""A dermatomyositis diagnosis recorded without an onset: the age at onset is bounded by the date
it was recorded (clinical spec §2.3: juvenile when the age at dermatomyositis onset is < 18).

A condition has begun by the time it is recorded (R4 ``Condition.recordedDate``, "Date record
was first recorded"), so a diagnosis recorded at 9 years of age had its onset at 9 or younger:
the juvenile criteria, with no guess. Problem-list and encounter-diagnosis Conditions often carry
no onset[x] at all: the fixtures follow the published US Core 6.1.0 Encounter Diagnosis example
of the HL7 Transitions of Care IG (``BSJ-HeartDiseaseDiagnosis``: ``recordedDate``
"2019-06-08T14:15:00-04:00", the ``condition-assertedDate`` extension "2019-06", no onset[x]).
Before, a child so recorded was scored with the adult thresholds ("age at dermatomyositis onset
unknown (birth date or onset missing); adult criteria used"): the bundled juvenile example,
recorded so, read 62.5 "major" where the juvenile criteria give "moderate" (< 70)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from fhirtis.clinical.policy import Population
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import ICD, SCT, bundle, condition, patient

Json = dict[str, Any]
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bundles" / "juvenile.json"
ASSERTED = "http://hl7.org/fhir/StructureDefinition/condition-assertedDate"


def _encounter_diagnosis(cid: str, recorded: str | None, code: str = "396230008") -> Json:
    """A US Core Encounter Diagnosis shaped as BSJ-HeartDiseaseDiagnosis: no onset[x]."""
    extra: Json = {
        "clinicalStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        },
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "encounter-diagnosis",
                    }
                ]
            }
        ],
    }
    if recorded is not None:
        extra["recordedDate"] = recorded
        extra["extension"] = [{"url": ASSERTED, "valueDateTime": recorded[:7]}]
    return condition(cid, SCT, code, None, **extra)


def _evaluate(*resources: Json) -> PatientResult:
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )


def _note_codes(result: PatientResult) -> list[str]:
    return [n.code for n in result.evaluation.population.notes]


def test_a_child_whose_diagnosis_was_recorded_at_9_without_an_onset_is_juvenile() -> None:
    result = _evaluate(
        patient(birth="2014-06-20"), _encounter_diagnosis("dm", "2023-11-02T10:15:00-05:00")
    )
    decision = result.evaluation.population
    assert (decision.population, decision.reason) == (Population.JUVENILE, "onset-age")
    assert "onset-age-unknown" not in _note_codes(result)


def test_a_diagnosis_recorded_to_the_year_only_bounds_the_onset_by_its_last_day() -> None:
    # recorded "2023": at the latest on 2023-12-31, at 9 years of age → onset at 9 or younger
    result = _evaluate(patient(birth="2014-06-20"), _encounter_diagnosis("dm", "2023"))
    assert result.evaluation.population.population is Population.JUVENILE


def test_recorded_before_the_18th_birthday_is_juvenile_on_it_adult_default_after() -> None:
    # born 2006-03-15: 17 on 2024-03-14, 18 from 2024-03-15
    before = _evaluate(patient(birth="2006-03-15"), _encounter_diagnosis("dm", "2024-03-14"))
    assert before.evaluation.population.population is Population.JUVENILE
    on = _evaluate(patient(birth="2006-03-15"), _encounter_diagnosis("dm", "2024-03-15"))
    # recorded at 18: the onset may have been before or after 18 → unknown, said, as before
    assert on.evaluation.population.reason == "adult-default"
    assert "onset-age-unknown" in _note_codes(on)


def test_an_adult_recorded_without_an_onset_keeps_the_adult_default_and_its_note() -> None:
    result = _evaluate(patient(birth="1970-03-01"), _encounter_diagnosis("dm", "2020-05-01"))
    assert result.evaluation.population.reason == "adult-default"
    assert "onset-age-unknown" in _note_codes(result)


def test_without_a_birth_date_a_recorded_date_decides_nothing() -> None:
    no_birth = {"resourceType": "Patient", "id": "p1", "gender": "female"}
    result = _evaluate(no_birth, _encounter_diagnosis("dm", "2023-11-02"))
    assert result.evaluation.population.reason == "adult-default"


def test_the_earliest_onset_decides_a_dated_adult_onset_and_a_childhood_record() -> None:
    """A dermatomyositis re-coded at transfer to adult care (ICD-10-CM M33.10, onset dated at
    20) beside the paediatric record without an onset, recorded at 10: the earliest onset was
    at 10 or younger → juvenile (the earliest onset decides, as for onset age ranges)."""
    result = _evaluate(
        patient(birth="2000-01-10"),
        condition("adult-dm", ICD, "M33.10", "2020-02-01"),
        _encounter_diagnosis("child-dm", "2010-06-01"),
    )
    assert result.evaluation.population.population is Population.JUVENILE


def test_the_bundled_juvenile_example_recorded_without_its_onset_keeps_juvenile_scores() -> None:
    """examples/bundles/juvenile.json (born 2014, dermatomyositis recorded 2023-11-02) with its
    onsetDateTime removed, as a problem list without onset sends it: same juvenile categories
    (2024-05-01: TIS 62.5 is moderate for juvenile DM, major for adults)."""
    data = orjson.loads(EXAMPLE.read_bytes())
    for entry in data["entry"]:
        if entry["resource"]["resourceType"] == "Condition":
            entry["resource"].pop("onsetDateTime")
    result = evaluate_patient_resources(read_patient_bundle(orjson.dumps(data)), Settings())
    assert result.evaluation.population.population is Population.JUVENILE
    categories = {
        f.assessment.day.isoformat(): f.tis.category.value
        for f in result.evaluation.course.followups
        if f.tis.category is not None
    }
    assert categories["2024-05-01"] == "moderate"
