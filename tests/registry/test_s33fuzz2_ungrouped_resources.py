"""A resource of a patient's type whose subject/patient is no Reference is an input problem.

Found by mutating real-shaped Bulk exports (s33): a MedicationAdministration whose ``subject``
was a string, a list, ``{"reference": 5}``, ``{"display": …}``, null or absent was grouped
as a resource of no patient (as a Medication is), so no patient read it: the IVIG it recorded
left the cycle and the cumulative dose (822.2 g became 767.4 g) while the run said "input
problems 0" and exited 0. The offline Bundle path counts that administration. A resource that
cannot be grouped with its patient is an input problem (README, Registries: exit 1, named by
file and byte), as a ``urn:uuid:`` subject already was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry.ndjson_store import BadLineError, patient_of
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()

BAD_SUBJECTS: list[Any] = [
    "Patient/p1",
    [{"reference": "Patient/p1"}],
    {"reference": 5},
    {"reference": None},
    {"display": "someone"},
    None,
]


@pytest.mark.parametrize(
    ("rtype", "subject"),
    [
        (rtype, subject)
        for rtype in ("MedicationAdministration", "Observation", "Condition")
        for subject in BAD_SUBJECTS
        # an Observation's subject is optional (R4 0..1): null is no subject, no patient's
        if not (rtype == "Observation" and subject is None)
    ],
)
def test_no_reference_is_a_bad_line(rtype: str, subject: Any) -> None:
    resource = {"resourceType": rtype, "id": "x1", "subject": subject}
    with pytest.raises(BadLineError) as raised:
        patient_of(resource)
    assert "cannot be grouped with its patient" in str(raised.value)
    assert "p1" not in str(raised.value) and "someone" not in str(raised.value)


def test_absent_subject_is_a_bad_line() -> None:
    with pytest.raises(BadLineError):
        patient_of({"resourceType": "MedicationAdministration", "id": "x1"})


@pytest.mark.parametrize(
    "resource",
    [
        {"resourceType": "Medication", "id": "m1"},
        {"resourceType": "Substance", "id": "s1"},
        {"resourceType": "Device", "id": "d1"},  # a Device may be no one's
        {"resourceType": "Device", "id": "d1", "patient": {"display": "ward stock"}},
        {"resourceType": "Observation", "id": "o1", "subject": {"reference": "Group/g1"}},
        # R4 Observation.subject is 0..1 (a device's, a location's in a system-level export)
        {"resourceType": "Observation", "id": "o2"},
    ],
)
def test_resources_of_no_patient_stay_shared(resource: dict[str, Any]) -> None:
    assert patient_of(resource) is None


def test_good_references_still_group() -> None:
    for ref in ("Patient/p1", "https://ehr.example/fhir/Patient/p1/_history/3"):
        resource = {"resourceType": "Observation", "id": "o1", "subject": {"reference": ref}}
        assert patient_of(resource) == "Patient/p1"


@pytest.mark.parametrize("subject", [{"reference": 5}, "as-string", None])
def test_cohort_reports_an_administration_it_cannot_group(tmp_path: Path, subject: Any) -> None:
    folder = tmp_path / "export"
    bundles = list(make_cohort(2, 7))
    write_ndjson(iter(bundles), folder)
    pid = bundles[0]["entry"][0]["resource"]["id"]
    path = folder / "MedicationAdministration.ndjson"
    lines = path.read_bytes().splitlines()
    first = orjson.loads(lines[0])
    assert first["subject"]["reference"] == f"Patient/{pid}"
    first["subject"] = f"Patient/{pid}" if subject == "as-string" else subject
    path.write_bytes(b"\n".join([orjson.dumps(first), *lines[1:]]) + b"\n")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 1, result.output
    assert "input problems 1" in result.output
    assert "MedicationAdministration.ndjson byte 0" in result.output
    assert "cannot be grouped with its patient" in result.output
    assert "Traceback" not in result.output
    assert "evaluated 2" in result.output  # the other lines and patients are read
