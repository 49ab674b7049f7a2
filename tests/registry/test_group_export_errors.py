"""A Group ``$export`` whose manifest lists error files (Bulk Data IG v2, export.html:
"error: array of message file items following the same structure as the output array", each
an NDJSON file of OperationOutcomes).

A resource the server failed to export is missing from the output: evaluating the cohort on
that data and recording the export's ``transactionTime`` (from which the next run asks only
``_since``) would lose it for good. Errors stop the run before anything is evaluated, and the
transaction time stays where it was; informational or warning outcomes do not.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.registry.errors import CohortError
from fhirtis.registry.group_export import GroupExport, export_group
from fhirtis.registry.ledger import Ledger
from fhirtis.registry.options import CohortOptions
from tests.io._support import BASE, FakeTime

STATUS_URL = f"{BASE}/bulkstatus/job-1"
PATIENT_FILE = f"{BASE}/bulkfiles/Patient.ndjson"
ERROR_FILE = f"{BASE}/bulkfiles/errors.ndjson"
SECRET = "Jane Smith 1970-01-01"  # what a server may put in diagnostics


def _outcome(severity: str, code: str) -> dict[str, Any]:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": SECRET}],
    }


def _serve(httpx_mock: HTTPXMock, outcomes: list[dict[str, Any]], delete_status: int = 202) -> None:
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Group/g1/$export") + r".*"),
        status_code=202,
        headers={"Content-Location": STATUS_URL},
    )
    manifest = {
        "transactionTime": "2024-05-01T10:00:00Z",
        "requiresAccessToken": True,
        "output": [{"type": "Patient", "url": PATIENT_FILE}],
        "error": [{"type": "OperationOutcome", "url": ERROR_FILE}],
    }
    httpx_mock.add_response(url=STATUS_URL, json=manifest)
    httpx_mock.add_response(
        url=PATIENT_FILE, content=orjson.dumps({"resourceType": "Patient", "id": "p1"}) + b"\n"
    )
    httpx_mock.add_response(
        url=ERROR_FILE, content=b"".join(orjson.dumps(o) + b"\n" for o in outcomes)
    )
    httpx_mock.add_response(method="DELETE", url=STATUS_URL, status_code=delete_status)


async def _export(tmp_path: Path) -> tuple[Path, bool]:
    export = await _group_export(tmp_path)
    return export.folder, export.incremental


async def _group_export(tmp_path: Path) -> GroupExport:
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "work")
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=FakeTime().timing()) as fhir:
        return await export_group(fhir, "g1", options)


def _deleted(httpx_mock: HTTPXMock) -> list[str]:
    return [str(r.url) for r in httpx_mock.get_requests() if r.method == "DELETE"]


def _transaction_time(tmp_path: Path) -> str | None:
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        return ledger.get_value("bulk_transaction_time")


async def test_export_errors_stop_the_run_and_keep_the_transaction_time(
    httpx_mock: HTTPXMock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _serve(httpx_mock, [_outcome("error", "processing"), _outcome("information", "informational")])
    with pytest.raises(CohortError) as raised:
        await _export(tmp_path)
    message = str(raised.value)
    assert "1 error" in message and "processing" in message, message
    assert SECRET not in message and SECRET not in caplog.text
    assert _transaction_time(tmp_path) is None  # the next run exports the same data again
    assert _deleted(httpx_mock) == [STATUS_URL]


async def test_export_warnings_alone_do_not_stop_the_run(
    httpx_mock: HTTPXMock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _serve(httpx_mock, [_outcome("warning", "not-supported")])
    export = await _group_export(tmp_path)
    assert not export.incremental
    assert [p.name.split(".")[0] for p in sorted(export.folder.glob("*.ndjson"))] == ["Patient"]
    assert export.transaction_time == "2024-05-01T10:00:00Z"
    assert _transaction_time(tmp_path) is None  # recorded by the run, once it completes
    assert SECRET not in caplog.text
    # Oracle Health: "After the appropriate ndjson files are downloaded, the delete request
    # should be called to clean up" (fhir.cerner.com, millennium/bulk-data/group-export.md)
    assert _deleted(httpx_mock) == [STATUS_URL]


async def test_a_refused_delete_does_not_fail_the_export(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    _serve(httpx_mock, [], delete_status=405)
    export = await _group_export(tmp_path)
    assert export.transaction_time == "2024-05-01T10:00:00Z"


async def test_a_since_export_with_deleted_resources_exports_the_whole_group_again(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    """IG v2: a ``_since`` export may list ``deleted`` files (Bundles of DELETE entries naming
    ``Type/id`` only). Which patient lost the resource is not said, so evaluating only the
    patients in ``output`` would leave a stale score; the whole Group is exported instead."""
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.set_value("bulk_transaction_time", "2024-04-01T00:00:00Z")
    kickoff = re.escape(f"{BASE}/Group/g1/$export")
    httpx_mock.add_response(
        url=re.compile(kickoff + r"\?.*_since=.*"),
        status_code=202,
        headers={"Content-Location": STATUS_URL},
    )
    httpx_mock.add_response(
        url=STATUS_URL,
        json={
            "transactionTime": "2024-05-01T10:00:00Z",
            "requiresAccessToken": True,
            "output": [],
            "error": [],
            "deleted": [{"type": "Bundle", "url": f"{BASE}/bulkfiles/deleted.ndjson"}],
        },
    )
    full_status = f"{BASE}/bulkstatus/job-2"
    httpx_mock.add_response(
        url=re.compile(kickoff + r"\?(?!.*_since).*"),
        status_code=202,
        headers={"Content-Location": full_status},
    )
    httpx_mock.add_response(
        url=full_status,
        json={
            "transactionTime": "2024-05-01T10:00:05Z",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": PATIENT_FILE}],
            "error": [],
        },
    )
    httpx_mock.add_response(
        url=PATIENT_FILE, content=orjson.dumps({"resourceType": "Patient", "id": "p1"}) + b"\n"
    )
    httpx_mock.add_response(method="DELETE", url=STATUS_URL, status_code=202)
    httpx_mock.add_response(method="DELETE", url=full_status, status_code=202)
    export = await _group_export(tmp_path)
    assert not export.incremental  # every exported patient is evaluated
    assert _deleted(httpx_mock) == [STATUS_URL, full_status]  # both jobs' files released
    assert len(list(export.folder.glob("*.ndjson"))) == 1
    assert export.transaction_time == "2024-05-01T10:00:05Z"  # the full export's


async def test_a_failed_rest_read_of_a_refused_type_stops_the_run(
    httpx_mock: HTTPXMock, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The export refuses MedicationAdministration (named in its OperationOutcome), so it is
    read per patient over REST; that read fails for good (HTTP 500 after the retries): the
    patient's IVIG record would be missing, so the run stops with a plain message, evaluates
    nothing and keeps the transaction time where it was."""
    kickoff = re.escape(f"{BASE}/Group/g1/$export")
    refusal = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": "not-supported",
                "diagnostics": "MedicationAdministration is not supported in _type",
            }
        ],
    }
    httpx_mock.add_response(
        url=re.compile(kickoff + r"\?_type=[^&]*MedicationAdministration.*"),
        status_code=400,
        json=refusal,
    )
    _serve(httpx_mock, [])
    httpx_mock.add_response(url=re.compile(re.escape(f"{BASE}/metadata")), status_code=404)
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/MedicationAdministration?") + r".*"),
        status_code=500,
        is_reusable=True,
        is_optional=True,  # searched one by one, or in a batch (below), as the server allows
    )
    httpx_mock.add_response(
        url=re.compile(re.escape(BASE) + r"/?$"), status_code=500, is_reusable=True
    )
    with pytest.raises(CohortError) as raised:
        await _export(tmp_path)
    message = str(raised.value)
    assert "Patient/p1" in message and "MedicationAdministration" in message, message
    assert "nothing was evaluated" in message
    assert _transaction_time(tmp_path) is None
