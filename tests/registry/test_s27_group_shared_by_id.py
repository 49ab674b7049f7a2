"""A Group export that names Medications (or Devices of no patient) it does not hold: they are
read over REST by id, as ``fhirtis run`` reads the ones a search did not ``_include``.

Bulk Data Access IG v2.0.0, export.md (HL7/bulk-data, input/pagecontent/export.md): a Group
export returns the resources of the Patient compartment; a Medication is in no patient's
compartment (R4 CompartmentDefinition patient), so a server may leave it out even when
``_type`` lists it, and a ``_since`` export holds only what changed ("Resources will be
included in the response if their state has changed after the supplied time"): an
administration changed since names a Medication unchanged since, which is not sent. The
patient's IVIG was then not counted (reported not-found) although the server holds the
Medication.
"""

from __future__ import annotations

import re
from pathlib import Path

import orjson
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.registry.group_export import export_group
from fhirtis.registry.ndjson_store import is_ndjson, open_ndjson
from fhirtis.registry.options import CohortOptions
from tests.io._s25_srv_fake import ivig_medication, statement
from tests.io._support import BASE, FakeTime
from tests.registry.test_s24_bulk_cohorts import _patients_file, _serve_export

MEDICATION = ivig_medication()


def _administration(ma_id: str, medication: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "MedicationAdministration",
            "id": ma_id,
            "status": "completed",
            "subject": {"reference": "Patient/p1"},
            "medicationReference": {"reference": medication, "display": "IVIG"},
            "effectiveDateTime": "2024-01-05T10:00:00Z",
        }
    )


def _resources(folder: Path) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    for path in folder.iterdir():
        if is_ndjson(path):
            with open_ndjson(path) as f:
                for line in f:
                    if line.strip():
                        r = orjson.loads(line)
                        found[f"{r['resourceType']}/{r['id']}"] = r
    return found


async def _export(httpx_mock: HTTPXMock, tmp_path: Path, files: dict[str, bytes]) -> object:
    _serve_export(httpx_mock, BASE, "g1", "2024-05-01T10:00:00Z", files)
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "work")
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=FakeTime().timing()) as fhir:
        return await export_group(fhir, "g1", options)


async def test_a_medication_the_export_lacks_is_read_by_id(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(url=f"{BASE}/metadata", json=statement(), is_optional=True)
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Medication?_id=med1") + r".*"),
        json={
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": MEDICATION, "search": {"mode": "match"}}],
        },
    )
    files = {
        "Patient.ndjson": _patients_file("p1"),
        "MedicationAdministration.ndjson": _administration("ma1", "Medication/med1") + b"\n",
    }
    export = await _export(httpx_mock, tmp_path, files)
    held = _resources(export.folder)  # type: ignore[attr-defined]
    assert held["Medication/med1"] == MEDICATION
    assert any("Medication" in note and "by id" in note for note in export.notes)  # type: ignore[attr-defined]


async def test_one_the_server_lacks_too_stays_missing_and_the_export_completes(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    httpx_mock.add_response(url=f"{BASE}/metadata", json=statement(), is_optional=True)
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Medication?_id=gone") + r".*"),
        json={"resourceType": "Bundle", "type": "searchset", "entry": []},
    )
    files = {
        "Patient.ndjson": _patients_file("p1"),
        "MedicationAdministration.ndjson": (
            _administration("ma1", "Medication/med1")
            + b"\n"
            + _administration("ma2", f"{BASE}/Medication/gone/_history/3")
            + b"\n"
        ),
        "Medication.ndjson": orjson.dumps(MEDICATION) + b"\n",
    }
    export = await _export(httpx_mock, tmp_path, files)
    held = _resources(export.folder)  # type: ignore[attr-defined]
    assert "Medication/gone" not in held
    assert held["Medication/med1"] == MEDICATION  # held by the export: not asked again
    asked = [str(r.url) for r in httpx_mock.get_requests() if "/Medication?" in str(r.url)]
    assert len(asked) == 1 and "med1" not in asked[0]
