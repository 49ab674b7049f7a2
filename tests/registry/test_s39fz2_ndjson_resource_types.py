"""An NDJSON line whose ``resourceType`` is no FHIR resource type is an input problem.

Found by mutating real-shaped Bundles and exports (s39): a line ``{"resourceType":
"OBSERVATION", …}`` or ``"observation"`` was stored under that type and grouped with its
patient, whom no evaluation reads it for: the measurement left the patient's result while the
run said "input problems 0". Such a line is no FHIR resource (R4 ``Resource.resourceType``):
an input problem named by file and byte, as a line with no id is. A real R4 type fhirtis does
not read (an Encounter) is still stored in silence.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry.ndjson_store import BadLineError, read_line
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()


@pytest.mark.parametrize("written", ["OBSERVATION", "observation", "Bogus", "Observationx"])
def test_a_line_of_no_resource_type_is_a_bad_line(written: str) -> None:
    line = orjson.dumps(
        {"resourceType": written, "id": "o1", "subject": {"reference": "Patient/p"}}
    )
    with pytest.raises(BadLineError) as raised:
        read_line(line)
    assert "no FHIR R4 resource type" in str(raised.value)
    assert written not in str(raised.value)


@pytest.mark.parametrize("rtype", ["Encounter", "Observation", "Citation"])
def test_a_line_of_a_real_type_is_read(rtype: str) -> None:
    _, key = read_line(orjson.dumps({"resourceType": rtype, "id": "x1"}))
    assert key == f"{rtype}/x1"


def test_cohort_reports_a_line_of_no_resource_type(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(iter(make_cohort(2, 7)), folder)
    path = folder / "Observation.ndjson"
    lines = path.read_bytes().splitlines()
    first = orjson.loads(lines[0])
    first["resourceType"] = "OBSERVATION"
    path.write_bytes(b"\n".join([orjson.dumps(first), *lines[1:]]) + b"\n")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 1, result.output
    assert "input problems 1" in result.output
    assert "Observation.ndjson byte 0" in result.output
    assert "no FHIR R4 resource type" in result.output
    assert "Traceback" not in result.output
    assert "evaluated 2" in result.output
