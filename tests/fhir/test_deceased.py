"""A patient recorded deceased (R4 Patient.deceased[x]; Synthea's bulk samples have such
patients) was evaluated as if alive, silently: an active risk Flag "maximum rate now 3.3", and
administrations dated after the death counted without a word. The record is still evaluated
(a registry needs it), but the result says that the patient is deceased, and an administration
after the recorded death is reported as contradictory data (spec: never guess silently)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, administration, bundle, medication, obs, patient, qty

Json = dict[str, Any]


def _evaluate(person: Json) -> Any:
    doc = bundle(
        person,
        obs("w", "29463-7", 70, "kg", "2025-03-01T08:00:00Z", system=LOINC),
        medication(),
        administration("ma1", "2025-03-04T09:00:00Z", "2025-03-04T14:00:00Z", dose=qty(70, "g")),
        administration("ma2", "2025-03-10T09:00:00Z", "2025-03-10T14:00:00Z", dose=qty(70, "g")),
    )
    return evaluate_patient_resources(read_patient_bundle(orjson.dumps(doc)), Settings())


def _warnings(result: Any, text: str) -> list[Any]:
    return [i for i in result.issues if i.severity == "warning" and text in i.diagnostics]


def test_an_administration_after_the_recorded_death_is_reported() -> None:
    person = {**patient(), "deceasedDateTime": "2025-03-05T12:00:00Z"}
    result = _evaluate(person)
    assert result.evaluation.exposure.administration_count == 2  # the record, as it is
    (after,) = _warnings(result, "after the patient's recorded death")
    assert after.resource == "MedicationAdministration/ma2"
    assert _warnings(result, "recorded deceased")


@pytest.mark.parametrize(
    "deceased", [{"deceasedBoolean": True}, {"deceasedDateTime": "2025-06-01"}]
)
def test_a_deceased_patient_is_said(deceased: Json) -> None:
    result = _evaluate({**patient(), **deceased})
    (said,) = _warnings(result, "recorded deceased")
    assert said.resource == "Patient/p1"
    assert not _warnings(result, "after the patient's recorded death")


@pytest.mark.parametrize("alive", [{}, {"deceasedBoolean": False}])
def test_a_living_patient_is_not_said_deceased(alive: Json) -> None:
    result = _evaluate({**patient(), **alive})
    assert not _warnings(result, "deceased") and not _warnings(result, "death")
