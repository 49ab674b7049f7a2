"""Polymyositis and the choice of criteria (clinical spec §2.3).

The adult ACR/EULAR criteria are for adult dermatomyositis *and polymyositis*; the juvenile
ones for juvenile dermatomyositis, chosen by a JDM code or the age at dermatomyositis onset. A
patient whose problem list says polymyositis (Epic: SNOMED CT 31384009 beside ICD-10-CM M33.20)
and no dermatomyositis was scored with the adult criteria, rightly, but told "age at
dermatomyositis onset unknown (birth date or onset missing)" although birth date and onset
were both recorded: a note that asks for data the decision does not need."""

from __future__ import annotations

from typing import Any

import orjson

from fhirtis.clinical.policy import Population
from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import ICD, SCT, bundle, condition, patient

Json = dict[str, Any]


def _evaluate(*resources: Json) -> PatientResult:
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(bundle(*resources))), Settings()
    )


def _notes(result: PatientResult) -> list[str]:
    return [n.message for n in result.evaluation.population.notes]


def test_polymyositis_gets_the_adult_criteria_without_an_onset_note() -> None:
    pm = condition("pm", SCT, "31384009", "2024-03-01")
    pm["code"]["coding"].append({"system": ICD, "code": "M33.20"})
    result = _evaluate(patient(birth="1970-03-01"), pm)
    decision = result.evaluation.population
    assert (decision.population, decision.reason) == (Population.ADULT, "polymyositis")
    assert _notes(result) == []


def test_dermatomyositis_still_decides_by_its_onset_beside_polymyositis() -> None:
    # a child's dermatomyositis decides (juvenile) even with a polymyositis code beside it
    dm = condition("dm", SCT, "396230008", "2015-06-01")
    pm = condition("pm", SCT, "31384009", "2015-06-01")
    result = _evaluate(patient(birth="2005-03-01"), dm, pm)
    decision = result.evaluation.population
    assert (decision.population, decision.reason) == (Population.JUVENILE, "onset-age")


def test_without_any_myositis_diagnosis_the_onset_is_still_said_unknown() -> None:
    result = _evaluate(patient(birth="1970-03-01"))
    assert result.evaluation.population.reason == "adult-default"
    assert any("dermatomyositis onset unknown" in m for m in _notes(result))
