"""A transaction Bundle may name its Patient by a conditional reference (R4 http.html,
"Conditional References": ``Patient?identifier=system|value`` in a transaction, resolved to the
one match). Each resource so referencing the Bundle's Patient was excluded as "subject is
another patient" (0 cycles); one that matches no Patient of the Bundle must still be refused."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
import pytest

from fhirtis.fhir.bundle import read_patient_bundle
from fhirtis.pipeline.offline import evaluate_patient_resources
from fhirtis.settings import Settings
from tests.fhir.builders import LOINC, administration, medication, obs, patient, qty

Json = dict[str, Any]
SYNTHEA = "https://github.com/synthetichealth/synthea"


def _transaction(subject: str, identifier: Json | None) -> bytes:
    person = patient()
    if identifier is not None:
        person["identifier"] = [{"system": "http://hospital.example/mrn", "value": "other"}]
        person["identifier"].append(identifier)
    resources = [
        person,
        obs("w", "29463-7", 70, "kg", "2024-03-01T08:00:00Z", system=LOINC),
        medication(),
        administration("ma1", "2024-03-04T09:00:00Z", "2024-03-04T14:00:00Z", dose=qty(70, "g")),
    ]
    for r in resources[1:]:
        for key in ("subject", "patient"):
            if key in r:
                r[key] = {"reference": subject}
    entries = [
        {
            "fullUrl": f"urn:uuid:00000000-0000-0000-0000-00000000000{i}",
            "resource": r,
            "request": {"method": "POST", "url": r["resourceType"]},
        }
        for i, r in enumerate(resources)
    ]
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def _evaluate(blob: bytes) -> Any:
    return evaluate_patient_resources(read_patient_bundle(blob), Settings())


@pytest.mark.parametrize(
    "subject",
    [
        f"Patient?identifier={SYNTHEA}|abc-123",
        f"Patient?identifier={quote(f'{SYNTHEA}|abc-123', safe='')}",  # URL-encoded
        "Patient?identifier=abc-123",  # a value without its system matches any system
    ],
)
def test_a_conditional_reference_to_the_bundles_patient_is_that_patient(subject: str) -> None:
    result = _evaluate(_transaction(subject, {"system": SYNTHEA, "value": "abc-123"}))
    assert result.evaluation.exposure.administration_count == 1
    assert result.evaluation.exposure.cumulative_grams_known == 70
    assert not [i for i in result.issues if i.severity in {"error", "fatal"}]


@pytest.mark.parametrize(
    ("subject", "says"),
    [
        (f"Patient?identifier={SYNTHEA}|someone-else", "matches no Patient"),
        ("Patient?identifier=http://other.example|abc-123", "matches no Patient"),
        ("Patient?name=Smith", "cannot be resolved"),
    ],
)
def test_a_conditional_reference_that_names_no_patient_here_is_refused(
    subject: str, says: str
) -> None:
    result = _evaluate(_transaction(subject, {"system": SYNTHEA, "value": "abc-123"}))
    assert result.evaluation.exposure.administration_count == 0
    refused = [
        i for i in result.issues if i.severity == "error" and "subject" in (i.expression or "")
    ]
    assert refused and all(says in i.diagnostics for i in refused)
    # the message names no identifier (patient data)
    assert all("abc-123" not in i.diagnostics and "Smith" not in i.diagnostics for i in refused)
