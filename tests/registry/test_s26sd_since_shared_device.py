"""A ``_since`` Group export holding a changed Device of no patient is followed by a full one,
as one holding a changed Medication is.

Sources: Bulk Data Access IG v2.0.0, export.md (repository HL7/bulk-data,
input/pagecontent/export.md): with ``_since``, "Resources will be included in the response if
their state has changed after the supplied time"; a Group export returns the Patient
compartment, and a Device is in it only through ``Device.patient`` (R4 CompartmentDefinition
patient: Device ``patient``). The R4 DeviceUseStatement example
(http://hl7.org/fhir/R4/deviceusestatement-example.json.html) names ``Device/example``, a Device
with no ``patient``: changed (e.g. now coded as a central venous catheter), it names none of
the patients whose DeviceUseStatements use it, so they would not be in the ``_since`` export and
would keep results computed from the old Device.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from pytest_httpx import HTTPXMock

from tests.registry.test_s24_bulk_cohorts import _export_since, _kickoffs, _patients_file


def _device(patient: str | None) -> bytes:
    device: dict[str, object] = {
        "resourceType": "Device",
        "id": "cvc-1",
        "meta": {"lastUpdated": "2024-04-20T08:00:00Z"},
        "type": {"coding": [{"system": "http://snomed.info/sct", "code": "52124006"}]},
    }
    if patient is not None:
        device["patient"] = {"reference": patient}
    return orjson.dumps(device)


@pytest.mark.parametrize(
    ("patient", "whole"),
    [(None, True), ("Patient/p1", False)],
    ids=["device-of-no-patient", "device-of-a-patient"],
)
async def test_a_device_of_no_patient_changed_since_exports_the_whole_group(
    httpx_mock: HTTPXMock, tmp_path: Path, patient: str | None, whole: bool
) -> None:
    """A Device of no patient changed since the last export makes the export a whole one; a
    changed Device of a patient does not (its patient is in the export and is read whole)."""
    files = {"Device.ndjson": _device(patient)}
    if patient is not None:
        files["Patient.ndjson"] = _patients_file("p1")
    whole_files = {"Patient.ndjson": _patients_file("p1"), "Device.ndjson": _device(patient)}
    export = await _export_since(httpx_mock, tmp_path, files, whole_files if whole else None)
    kickoffs = _kickoffs(httpx_mock)
    assert "_since=2024-04-01T00:00:00Z" in kickoffs[0]
    assert export.incremental is not whole
    assert len(kickoffs) == (2 if whole else 1)
    if whole:
        assert "_since" not in kickoffs[1]
        assert export.transaction_time == "2024-05-01T10:00:05Z"
