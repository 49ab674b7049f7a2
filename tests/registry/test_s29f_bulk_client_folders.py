"""``fhirtis cohort --ndjson`` on a Bulk Data export as the IG's reference client saves it
(sweep s29f). smart-on-fhir/bulk-data-client (``src/lib/BulkDataClient.ts``) writes the
manifest's ``output`` files into the destination folder, its ``error`` files (NDJSON
OperationOutcomes: what the server failed to export) into ``error/``, its ``deleted`` files
(transaction Bundles of DELETEs, listed only for a ``_since`` export: Bulk Data IG, "Response -
Output Manifest") into ``deleted/``, and with ``saveManifest`` the manifest as ``manifest.json``.
Fixtures: ``tests/data/s29f-bulk-client`` (README there)."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from fhirtis.cli import app
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()
FIXTURES = Path(__file__).parents[1] / "data" / "s29f-bulk-client"
ERROR_FILE = FIXTURES / "error" / "1.OperationOutcome.ndjson"


def _export(tmp_path: Path, patients: int = 3) -> Path:
    folder = tmp_path / "downloads"
    write_ndjson(make_cohort(patients, seed=29), folder)
    return folder


def _summaries(path: Path) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("where", ["error/1.OperationOutcome.ndjson", "err_file_1.ndjson"])
def test_an_export_error_file_is_an_input_problem_not_passed_over(
    tmp_path: Path, where: str
) -> None:
    """The server said, in an error file, that it could not export some data (the IG's example
    OperationOutcome: error, ``processing``, "An internal timeout has occurred"). Saved in
    ``error/`` (the reference client) or beside the output (a client that keeps the file
    names of the manifest's URLs, ``err_file_1.ndjson`` in the IG's example manifest), it was
    ignored: every patient evaluated, "input problems 0", exit 0, as if the export were whole.
    The run still evaluates the patients it has, lists the server's error as an input problem
    (its code, not its text, which may name a patient) and exits 1, as for lines it lost; the
    informational outcome beside it is no problem."""
    folder = _export(tmp_path)
    target = folder / where
    target.parent.mkdir(exist_ok=True)
    shutil.copy(ERROR_FILE, target)
    summaries = tmp_path / "summaries.ndjson"
    result = runner.invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(summaries)))
    assert result.exit_code == 1, result.output
    assert "input problems 1" in result.output
    problems = [line for line in result.output.splitlines() if "input problem:" in line]
    assert len(problems) == 1
    assert where in problems[0]
    assert "error" in problems[0] and "processing" in problems[0]
    assert "timeout" not in result.output  # the server's text is not repeated
    assert len(_summaries(summaries)) == 3  # the patients it has are evaluated
    assert "Traceback" not in result.output


def test_an_informational_outcome_alone_is_no_problem(tmp_path: Path) -> None:
    """IG v2.0.0 (change log): the error files may hold OperationOutcomes that are informational
    only; nothing was lost, the run is clean. They are no patient's data either."""
    folder = _export(tmp_path)
    info = ERROR_FILE.read_bytes().splitlines()[1]
    (folder / "error").mkdir()
    (folder / "error" / "1.OperationOutcome.ndjson").write_bytes(info + b"\n")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 0, result.output
    assert "3 patients" in result.output
    assert "input problems 0" in result.output


def test_a_since_export_with_deleted_files_is_refused(tmp_path: Path) -> None:
    """A ``deleted/`` folder is the mark of a ``_since`` export (the IG lists deletions only
    then): its output holds only the resources changed since, so each patient in it would be
    evaluated on a fragment of the record (an IVIG course missing, a TIS without its
    baseline) and, with ``--write``, fhirtis's earlier conclusions withdrawn. It was run as a
    whole export, exit 0. It is a usage error before anything is evaluated (exit 2)."""
    folder = _export(tmp_path)
    shutil.copytree(FIXTURES / "deleted", folder / "deleted")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 2, result.output
    assert "_since" in result.output and "deleted" in result.output
    assert "patients:" not in result.output
    assert not (tmp_path / "ledger.sqlite").exists()


def test_a_saved_manifest_of_a_since_export_is_refused(tmp_path: Path) -> None:
    """The same export without deletions: the manifest the client saved (``saveManifest``)
    names the kick-off it answers, ``_since`` included."""
    folder = _export(tmp_path)
    shutil.copy(FIXTURES / "manifest-since.json", folder / "manifest.json")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 2, result.output
    assert "_since" in result.output
    assert not (tmp_path / "ledger.sqlite").exists()


def test_a_saved_manifest_of_a_whole_export_is_read_as_before(tmp_path: Path) -> None:
    """The manifest of a full export (no ``_since``) changes nothing: the run is clean."""
    folder = _export(tmp_path)
    manifest = orjson.loads((FIXTURES / "manifest-since.json").read_bytes())
    manifest["request"] = manifest["request"].partition("&_since=")[0]
    (folder / "manifest.json").write_bytes(orjson.dumps(manifest))
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 0, result.output
    assert "3 patients: evaluated 3" in result.output


@pytest.mark.parametrize("with_id", [True, False])
def test_a_deleted_file_saved_beside_the_output_is_an_input_problem(
    tmp_path: Path, with_id: bool
) -> None:
    """A client that saves every file of the manifest in one folder by its URL's name
    (``del_file_1.ndjson`` in the IG's example manifest): the deletion Bundle was taken for a
    resource of no patient and passed over, the ``_since`` export run as a whole one, exit 0;
    without an id (as smart-on-fhir/bulk-data-server writes it, ``transforms/
    dbRowTranslator.ts``) it was "not a FHIR resource". It cannot be refused before the lines
    are read; it is listed as an input problem saying what it means (exit 1)."""
    folder = _export(tmp_path)
    bundle = orjson.loads((FIXTURES / "deleted" / "1.Bundle.ndjson").read_bytes())
    if not with_id:
        del bundle["id"], bundle["meta"]
    (folder / "del_file_1.ndjson").write_bytes(orjson.dumps(bundle) + b"\n")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 1, result.output
    problems = [line for line in result.output.splitlines() if "input problem:" in line]
    assert len(problems) == 1
    assert "del_file_1.ndjson" in problems[0] and "_since" in problems[0]


def test_organize_output_by_patient_headers_are_no_input_problem(tmp_path: Path) -> None:
    """Bulk Data IG 3.0.0 ``organizeOutputBy=Patient`` (the reference server supports it): each
    patient's block opens with a ``Parameters`` header naming the Patient, without an ``id``.
    Every header was an input problem ("not a FHIR resource: KeyError"), so a whole, conforming
    export exited 1 with one false problem per patient. The headers are the export's framing,
    not data: the run is clean and every patient is evaluated."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    shutil.copy(FIXTURES / "organized-by-patient.ndjson", folder / "1.output.ndjson")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 0, result.output
    assert "2 patients: evaluated 2" in result.output
    assert "input problems 0" in result.output


def test_a_line_without_an_id_is_still_an_input_problem(tmp_path: Path) -> None:
    """Only the header is framing: a Parameters that is not one, and an Observation without an
    id, are still input problems (nothing a patient's data may hide behind)."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    lines = (FIXTURES / "organized-by-patient.ndjson").read_bytes().splitlines()
    other = b'{"resourceType":"Parameters","parameter":[{"name":"note","valueString":"x"}]}'
    no_id = orjson.dumps(
        {"resourceType": "Observation", "status": "final", "subject": {"reference": "Patient/x"}}
    )
    (folder / "1.output.ndjson").write_bytes(b"\n".join([*lines, other, no_id]) + b"\n")
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 1, result.output
    assert "input problems 2" in result.output


def _subset(path: Path, keep: tuple[str, ...]) -> None:
    """The file as smart-on-fhir/bulk-data-server writes it for ``_elements``
    (``transforms/dbRowTranslator.ts``): the listed and mandatory elements only, tagged
    SUBSETTED (v3-ObservationValue)."""
    out = []
    for line in path.read_bytes().splitlines():
        resource = orjson.loads(line)
        kept = {k: v for k, v in resource.items() if k in keep}
        tag = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"}
        kept.setdefault("meta", {}).setdefault("tag", []).append({**tag, "code": "SUBSETTED"})
        out.append(orjson.dumps(kept))
    path.write_bytes(b"\n".join(out) + b"\n")


def test_subsetted_resources_are_an_input_problem(tmp_path: Path) -> None:
    """An export made with ``_elements`` (Bulk Data IG; the reference server honours it and
    tags each resource SUBSETTED, as R4 search.html asks): MedicationAdministrations without
    their ``dosage``. Every patient's IVIG grams and infusion rates became unknown, with
    "input problems 0" and exit 0. The resources are still read (what they hold counts), and
    the run says, once per file range, that they are subsetted (exit 1)."""
    folder = _export(tmp_path)
    keep = ("resourceType", "id", "meta", "status", "subject", "medicationReference")
    _subset(folder / "MedicationAdministration.ndjson", (*keep, "effectivePeriod"))
    summaries = tmp_path / "summaries.ndjson"
    result = runner.invoke(app, ndjson_args(folder, tmp_path, "--summaries", str(summaries)))
    assert result.exit_code == 1, result.output
    assert "3 patients: evaluated 3" in result.output
    problems = [line for line in result.output.splitlines() if "input problem:" in line]
    assert len(problems) == 1
    assert "MedicationAdministration.ndjson" in problems[0]
    assert "SUBSETTED" in problems[0] and "_elements" in problems[0]
    assert len(_summaries(summaries)) == 3
