"""``fhirtis cohort --ndjson`` of an export taken after a patient merge. HAPI FHIR's and R5's
``Patient/$merge`` (build.fhir.org patient-operation-merge.html) leave the source Patient in the
server, inactive, with a ``link`` of type ``replaced-by`` naming the target, and move its data
to the target; Oracle Health's combined patient reads the same way (cerner/fhir.cerner.com,
patient.md "Patient Combine Example"). A system export holds that retired record too. R4
patient.html: the record holding such a link "must no longer be used". ``fhirtis run``, the
CDS service, ``$myositis-evaluate`` and ``fhirtis evaluate`` refuse it; the registry evaluated
it as one more patient with no data (no IVIG, no risk factor) and counted it evaluated."""

from __future__ import annotations

from pathlib import Path

import orjson
from typer.testing import CliRunner

from fhirtis.cli import app
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()


def append_merged_patient(folder: Path) -> str:
    """A retired record (``Patient/merged-source``, inactive, ``replaced-by`` the export's first
    patient) appended to the export's Patient file; the id of the patient that replaced it."""
    survivor = orjson.loads((folder / "Patient.ndjson").read_bytes().splitlines()[0])["id"]
    retired = {
        "resourceType": "Patient",
        "id": "merged-source",
        "active": False,
        "link": [{"other": {"reference": f"Patient/{survivor}"}, "type": "replaced-by"}],
    }
    with (folder / "Patient.ndjson").open("ab") as f:
        f.write(orjson.dumps(retired) + b"\n")
    return str(survivor)


def test_a_merged_patient_in_an_export_fails_naming_its_successor(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(make_cohort(2, seed=29), folder)
    survivor = append_merged_patient(folder)
    summaries = tmp_path / "summaries.ndjson"
    result = runner.invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(summaries)))
    assert result.exit_code == 1, result.output
    assert "failed 1" in result.output or "1 failed" in result.output, result.output
    assert f"replaced-by Patient/{survivor}" in result.output
    evaluated = [orjson.loads(line) for line in summaries.read_bytes().splitlines()]
    assert len(evaluated) == 2  # the two real patients, not the retired record
    assert all(s.get("patient") != "Patient/merged-source" for s in evaluated)
    assert "Traceback" not in result.output
