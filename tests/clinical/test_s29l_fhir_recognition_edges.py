"""Clinical spec §4: IVIG named only in text, any case; status rules (s29 audit)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import PatientResult, evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, SCT, administration, bundle, condition, obs, patient, qty

Json = dict[str, Any]


def _evaluate(*resources: Json) -> PatientResult:
    dm = condition("dm", SCT, "396230008", "2023-06-01")
    w = obs("w", "29463-7", 70, "kg", "2024-01-08", system=LOINC)
    raw = json.dumps(bundle(patient(), dm, w, *resources))
    return evaluate_patient_resources(read_patient_bundle(raw), Settings())


def _cycles(text: str, status: str = "completed") -> int:
    a = administration("a", "2024-01-09T09:00:00Z", "2024-01-09T13:00:00Z", dose=qty(35, "g"))
    del a["medicationReference"]
    a["medicationCodeableConcept"] = {"text": text}
    a["status"] = status
    a["dosage"]["route"] = {"coding": [{"system": "http://snomed.info/sct", "code": "47625008"}]}
    r = _evaluate(a)
    return sum(
        1
        for d in r.derived
        for c in (d.resource.get("code") or {}).get("coding") or []
        if c.get("code") == "ivig-cycle-dose"
    )


@pytest.mark.parametrize(
    "text",
    ["IGIV 10%", "igiv", "Immune Globulin Intravenous (Human)", "IMMUNOGLOBULIN G, HUMAN", "ivig"],
)
def test_text_only_names_any_case_are_ivig(text: str) -> None:
    assert _cycles(text) == 1


@pytest.mark.parametrize(
    ("status", "counted"),
    [
        ("completed", 1),
        ("in-progress", 1),
        ("stopped", 1),
        ("not-done", 0),
        ("entered-in-error", 0),
        ("on-hold", 0),
        ("unknown", 0),
    ],
)
def test_statuses_counted(status: str, counted: int) -> None:
    assert _cycles("IVIG", status) == counted
