"""An export that never completes is not polled by every later run forever.

HAPI FHIR answers the status of a cancelled or failed export job 202 for ever
(BulkDataExportProvider.exportPollStatus: every status but COMPLETE is "in progress"), as
Medplum's bulk data router does for a job whose status is not ``completed``. fhirtis keeps the
export a stopped run started and polls it again in the next run (a large Group takes hours):
such a job was polled by every later run, each waiting its whole budget and failing, with no
way out but ``--since``. A job polled again for a second run's whole budget is now released
(DELETE, Bulk Data IG v2 export.md "Delete a Bulk Data Request") and forgotten, the run says
so, and the next run starts a new export."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClientConfig
from fhirtis.registry import cohort
from fhirtis.registry.errors import CohortError
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.io._support import BASE
from tests.registry.test_s24_bulk_cohorts import (
    _clean_run,
    _kick_off_to,
    _kickoff_count,
    _serve_export,
)


async def test_an_export_still_unfinished_after_a_resumed_run_is_released_and_restarted(
    httpx_mock: HTTPXMock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    status = f"{BASE}/bulkstatus/stuck-1"
    _kick_off_to(httpx_mock, status)
    httpx_mock.add_response(
        url=status, status_code=202, headers={"Retry-After": "600"}, is_reusable=True
    )
    options = CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")
    short = FhirClientConfig(base_url=BASE, bulk_budget_seconds=60)
    with pytest.raises(CohortError, match="not complete"):
        await cohort.run_cohort(Settings(), options, short, group="g1")
    assert _kickoff_count(httpx_mock) == 1

    # the next run polls the same export; still 202 after its whole budget: released
    httpx_mock.reset()
    httpx_mock.add_response(
        url=status, status_code=202, headers={"Retry-After": "600"}, is_reusable=True
    )
    httpx_mock.add_response(method="DELETE", url=status, status_code=202)
    with pytest.raises(CohortError, match="released") as failed:
        await cohort.run_cohort(Settings(), options, short, group="g1")
    assert "next run starts a new export" in str(failed.value)
    assert _kickoff_count(httpx_mock) == 0
    assert [r.method for r in httpx_mock.get_requests() if r.method == "DELETE"] == ["DELETE"]

    # the run after starts a new export
    httpx_mock.reset()
    _serve_export(httpx_mock, BASE, "g1", "2024-05-02T10:00:00Z", {"Patient.ndjson": b""})
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    assert _kickoff_count(httpx_mock) == 1
