"""``fhirtis cohort --ndjson`` on a folder that holds the export client's own log (sweep s36).

smart-on-fhir's Bulk Data tools write a Bulk Export log beside the data they download:
``log.ndjson``, one JSON object per line with ``exportId``, ``timestamp``, ``eventId``
(``kickoff``, ``status_complete``, ``manifest_complete``, ``export_complete``, …) and
``eventDetail``, no ``resourceType`` (smart-on-fhir/smart-fetch ``BulkExportLogWriter``,
"destination/ … Patient.000.ndjson, log.ndjson"). The published sample exports
smart-on-fhir/sample-bulk-fhir-datasets (branches ``10-patients``, ``100-patients``,
``1000-patients``) ship that file beside ``Patient.000.ndjson`` and the rest; the lines below are
its ``10-patients/log.ndjson``. fhirtis read every line as a resource and reported each as an
input problem ("not a FHIR resource: KeyError", a Python exception's name), and the run exited 1
as though data had been lost: the export was whole."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from fhirtis.cli import app
from fhirtis.registry.ndjson_store import NdjsonStore, read_export_line
from tests.registry.cohort_cli import ndjson_args
from tests.synthetic import make_cohort, write_ndjson

runner = CliRunner()

# smart-on-fhir/sample-bulk-fhir-datasets, branch 10-patients, log.ndjson (verbatim)
LOG = b"""\
{"exportId": "export-10", "timestamp": "2024-08-06T14:11:57.560606-04:00", "eventId": "kickoff", "eventDetail": {"exportUrl": "https://example.com/fhir/Group/sample-10/$export"}}
{"exportId": "export-10", "timestamp": "2024-08-06T14:12:57.779320-04:00", "eventId": "status_complete", "eventDetail": {"transactionTime": "2024-08-06T18:12:57Z"}}
{"exportId": "export-10", "timestamp": "2024-08-06T14:12:57.779320-04:00", "eventId": "manifest_complete", "eventDetail": {"transactionTime": "2024-08-06T18:12:57Z", "totalOutputFileCount": 0, "totalDeletedFileCount": 0, "totalErrorFileCount": 0, "totalManifests": 0}}
{"exportId": "export-10", "timestamp": "2024-08-06T14:12:58.124336-04:00", "eventId": "export_complete", "eventDetail": {"files": 0, "resources": 0, "bytes": 0, "attachments": null, "duration": 563}}
"""  # noqa: E501


def test_the_export_log_beside_the_data_is_no_input_problem(tmp_path: Path) -> None:
    folder = tmp_path / "export"
    write_ndjson(make_cohort(3, seed=36), folder)
    (folder / "log.ndjson").write_bytes(LOG)
    result = runner.invoke(app, ndjson_args(folder, tmp_path))
    assert result.exit_code == 0, result.output
    assert "3 patients" in result.output
    assert "input problems 0" in result.output
    assert "KeyError" not in result.output


def test_each_log_event_is_passed_over() -> None:
    for line in LOG.splitlines():
        assert read_export_line(line) is None


def test_a_line_without_resource_type_is_still_a_problem_in_plain_words() -> None:
    """Not a log event (no ``eventId``), no resource either: still an input problem, said
    without a Python exception's name."""
    read = read_export_line(b'{"id": "p1", "name": "x"}')
    assert isinstance(read, str)
    assert "KeyError" not in read
    assert "resourceType" in read


def test_the_store_of_an_incremental_export_passes_the_log_over(tmp_path: Path) -> None:
    """The work folder's store (a ``_since`` Group export) reads the same folder the same way."""
    store = NdjsonStore(tmp_path / "store.sqlite")
    try:
        store.load_lines("log.ndjson", LOG.splitlines())
        store.load_lines("Patient.ndjson", [b'{"resourceType": "Patient"}'])
        assert store.problems() == [("Patient.ndjson", 1, "not a FHIR resource: no id")]
    finally:
        store.close()
