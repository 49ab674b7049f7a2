"""A resource of a type whose subject is required (a Condition, a MedicationAdministration)
whose subject reference names no Patient is an input problem in an NDJSON export.

Found by mutating real-shaped Bulk exports (s39 fz2): a dermatomyositis Condition whose
``subject.reference`` was ``Medication/nowhere``, ``Group/g1`` or `` Patient/p1 `` (spaces
around it) was filed as a resource of no patient (as a Medication is), so no patient read it:
the diagnosis left the patient (population reason and, for a juvenile-onset patient, the
population and its assessments changed) while the run said "input problems 0" and exited 0.
The offline Bundle path excludes the same Condition with an error ("subject is another
patient"). Such a line is now an input problem named by file and byte (README, Registries),
as a subject that is no Reference already was (s33fuzz2). An Observation's subject is optional
(R4 0..1) and may name a Group or a Device: such an Observation stays no patient's.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry.ndjson_store import BadLineError, patient_of
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()


@pytest.mark.parametrize("rtype", ["Condition", "MedicationAdministration", "Procedure"])
@pytest.mark.parametrize("ref", ["Medication/nowhere", "Group/g1", " Patient/p1 "])
def test_a_required_subject_that_names_no_patient_is_a_bad_line(rtype: str, ref: str) -> None:
    resource = {"resourceType": rtype, "id": "x1", "subject": {"reference": ref}}
    with pytest.raises(BadLineError) as raised:
        patient_of(resource)
    assert "cannot be grouped with its patient" in str(raised.value)
    assert "p1" not in str(raised.value) and "nowhere" not in str(raised.value)


@pytest.mark.parametrize("ref", ["Group/g1", "Device/d1"])
def test_an_observation_of_no_patient_stays_shared(ref: str) -> None:
    assert (
        patient_of({"resourceType": "Observation", "id": "o1", "subject": {"reference": ref}})
        is None
    )


def test_a_medication_stays_shared() -> None:
    assert patient_of({"resourceType": "Medication", "id": "m1"}) is None


def test_cohort_reports_a_condition_of_no_patient(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(iter(make_cohort(3, 11)), folder)
    path = folder / "Condition.ndjson"
    lines = path.read_bytes().splitlines()
    first = orjson.loads(lines[0])
    first["subject"]["reference"] = "Medication/nowhere"
    path.write_bytes(b"\n".join([orjson.dumps(first), *lines[1:]]) + b"\n")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 1, result.output
    assert "input problems 1" in result.output
    assert "Condition.ndjson byte 0" in result.output
    assert "cannot be grouped with its patient" in result.output
    assert "evaluated 3" in result.output
