"""A Bulk output file that starts with a UTF-8 byte order mark, in a ``_since`` Group export.

fhirtis reads such a file (``_bulk_protocol.parse_line`` drops a BOM on line 1, as the NDJSON
folder reader does: files written by .NET's ``Encoding.UTF8`` and Windows tools carry one), but
``download_to`` wrote the line to the work folder as received, BOM included. A ``_since``
export's Medication file is read again there to find a Medication changed since the last
export (it names no patient, so its patients must be exported whole): ``orjson`` refused the
BOM and its ``JSONDecodeError`` stopped ``fhirtis cohort --group`` with a traceback, on every
run, since the ledger's ``_since`` stays where it was. The downloaded file now holds the line
as read, without the BOM.
"""

from __future__ import annotations

from pathlib import Path

from pytest_httpx import HTTPXMock

from fhirtis.io import BulkExportClient, FhirClient, FhirClientConfig, Manifest
from tests.io._support import BASE
from tests.registry.test_s24_bulk_cohorts import (
    _export_since,
    _kickoffs,
    _medication,
    _patients_file,
)

BOM = b"\xef\xbb\xbf"
CHANGED = "2024-04-20T08:00:00Z"  # after the last export's time below


async def test_a_downloaded_file_is_written_without_the_bom(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    url = f"{BASE}/bulkfiles/Patient.ndjson"
    httpx_mock.add_response(url=url, content=BOM + _patients_file("p1", "p2"))
    manifest = Manifest.from_json(
        {
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": url}],
        }
    )
    async with FhirClient(FhirClientConfig(base_url=BASE)) as fhir:
        (path,) = await BulkExportClient(fhir).download_to(manifest, tmp_path)
    assert path.read_bytes() == _patients_file("p1", "p2")


async def test_a_since_export_whose_medication_file_starts_with_a_bom_is_read(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    export = await _export_since(
        httpx_mock,
        tmp_path,
        {"Medication.ndjson": BOM + _medication(CHANGED) + b"\r\n"},
        {"Patient.ndjson": _patients_file("p1"), "Medication.ndjson": _medication(CHANGED)},
    )
    # the changed Medication was seen: the whole Group is exported
    kickoffs = _kickoffs(httpx_mock)
    assert len(kickoffs) == 2 and "_since" not in kickoffs[1]
    assert not export.incremental
    assert export.problems == ()
