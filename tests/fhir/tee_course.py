"""A short IVIG course for the thromboembolic-event tests: a Patient weighing 70 kg, Octagam,
70 g given on 8 and 9 January 2024 (Europe, +01:00), and whatever event records a test adds,
evaluated as ``fhirtis evaluate`` evaluates a Bundle."""

from __future__ import annotations

import json
from typing import Any

import orjson

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.jsonout import dumps
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.pipeline.records import patient_summary
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, SCT, administration, bundle, medication, obs, patient, qty

Json = dict[str, Any]
ONSET = "2024-01-10T08:00:00+01:00"  # the day after the second infusion
DVT = "128053003"  # SNOMED CT deep venous thrombosis
PE = "59282003"  # SNOMED CT pulmonary embolism
CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"


def course(*resources: Json, infusions: int = 2) -> Json:
    """The course's Bundle (its first ``infusions`` administrations: 1 is the one on 8 January
    alone), with ``resources`` after it."""
    given = [
        administration(
            "ma1", "2024-01-08T09:00:00+01:00", "2024-01-08T15:00:00+01:00", dose=qty(70, "g")
        ),
        administration(
            "ma2", "2024-01-09T09:00:00+01:00", "2024-01-09T15:00:00+01:00", dose=qty(70, "g")
        ),
    ]
    return bundle(
        patient(),
        obs("w", "29463-7", 70, "kg", "2024-01-06T08:00:00Z", system=LOINC),
        medication(),
        *given[:infusions],
        *resources,
    )


def evaluate_course(*resources: Json, infusions: int = 2) -> PatientResult:
    """The course with ``resources``, evaluated with the default settings."""
    return evaluate_patient_resources(
        read_patient_bundle(orjson.dumps(course(*resources, infusions=infusions))), Settings()
    )


def derived_adverse_events(result: PatientResult) -> list[Json]:
    """The AdverseEvents the evaluation derives."""
    return [d.resource for d in result.derived if d.resource["resourceType"] == "AdverseEvent"]


def summary_record(result: PatientResult) -> Json:
    """The evaluation's summary record, as ``--summaries`` writes it (JSON)."""
    record: Json = json.loads(
        dumps(patient_summary(result.patient_ref, result.evaluation, result.issues))
    )
    return record


def in_category(category: str) -> Json:
    """A Condition's ``category`` element of the R4 condition-category code ``category``."""
    return {"category": [{"coding": [{"system": CATEGORY, "code": category}]}]}


def safety_report(
    aid: str = "ae1", date: str = "2024-01-10", code: str = DVT, **extra: Any
) -> Json:
    """Another system's safety report: an actual AdverseEvent of a SNOMED CT coded event."""
    return {
        "resourceType": "AdverseEvent",
        "id": aid,
        "actuality": "actual",
        "subject": {"reference": "Patient/p1"},
        "event": {"coding": [{"system": SCT, "code": code}], "text": "DVT"},
        "date": date,
        **extra,
    }
