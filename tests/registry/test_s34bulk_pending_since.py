"""``fhirtis cohort --group ... --since T`` while an export a stopped run started is pending.

A run that stops while the server exports keeps the export's status URL so that the next run
polls the same export (a new kick-off throws the server's work away, and Oracle Health allows
one export a client and tenant at a time: a second kick-off is answered ``429 throttled``,
fhir.cerner.com millennium/bulk-data/group-export.md). A run given ``--since`` did not resume
that export, nor release it: it kicked off another one, which Oracle Health refuses while the
first runs, and the first export (patient data, on the server for 30 days) was forgotten
without the ``DELETE`` the IG and Oracle Health ask of a client that no longer wants it
(Bulk Data IG v2 export.html, "Delete a Bulk Data Request"; Oracle Health: "use the delete
request to clean up the data from your request").

Now an explicit ``--since`` resumes the pending export when it asked for the same ``_since``,
and otherwise releases it (``DELETE`` of its status URL) before the new kick-off.
"""

from __future__ import annotations

import re
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
    _kickoffs,
    _patients_file,
)

OLD = f"{BASE}/bulk-export/jobs/old-1"
NEW = f"{BASE}/bulk-export/jobs/new-1"
SINCE = "2024-04-01T00:00:00Z"


async def _stop_while_exporting(
    httpx_mock: HTTPXMock, options: CohortOptions, since: str | None = None
) -> None:
    """A run whose polling budget ends while the server still exports (Oracle Health answers
    ``202``, ``X-Progress: in-progress``, ``Retry-After: 600``): its export stays pending."""
    _kick_off_to(httpx_mock, OLD)
    httpx_mock.add_response(
        url=OLD,
        status_code=202,
        headers={"X-Progress": "in-progress", "Retry-After": "600"},
        is_reusable=True,
    )
    options.since = since
    short = FhirClientConfig(base_url=BASE, bulk_budget_seconds=60)
    with pytest.raises(CohortError, match="not complete"):
        await cohort.run_cohort(Settings(), options, short, group="g1")
    assert _kickoff_count(httpx_mock) == 1
    httpx_mock.reset()


def _serve_complete_export(httpx_mock: HTTPXMock, status_url: str) -> None:
    """The export at ``status_url`` complete (one Patient file), released after its download,
    and the Group a ``_since`` run reads for its members."""
    httpx_mock.add_response(
        url=status_url,
        json={
            "transactionTime": "2024-05-02T10:00:00Z",
            "requiresAccessToken": True,
            "output": [{"type": "Patient", "url": f"{BASE}/bulkfiles/Patient.ndjson"}],
            "error": [],
        },
    )
    httpx_mock.add_response(url=f"{BASE}/bulkfiles/Patient.ndjson", content=_patients_file("p1"))
    httpx_mock.add_response(method="DELETE", url=status_url, status_code=202)
    httpx_mock.add_response(
        url=f"{BASE}/Group/g1", json={"resourceType": "Group", "id": "g1", "type": "person"}
    )


def _serve_new_export(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Group/g1/$export") + r".*"),
        status_code=202,
        headers={"Content-Location": NEW},
    )
    _serve_complete_export(httpx_mock, NEW)


@pytest.fixture
def options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CohortOptions:
    """A cohort's options whose evaluation of the downloaded files is a clean run."""
    monkeypatch.setattr(cohort, "run_ndjson", _clean_run)
    monkeypatch.setattr(cohort, "run_patient_list", _clean_run)
    return CohortOptions(ledger=tmp_path / "ledger.sqlite", work_dir=tmp_path / "w")


async def test_a_since_run_releases_the_pending_export_before_starting_its_own(
    httpx_mock: HTTPXMock, options: CohortOptions
) -> None:
    await _stop_while_exporting(httpx_mock, options)

    httpx_mock.add_response(method="DELETE", url=OLD, status_code=202)
    _serve_new_export(httpx_mock)
    options.since = SINCE
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")

    sent = [(r.method, str(r.url)) for r in httpx_mock.get_requests()]
    assert ("DELETE", OLD) in sent, "the export the stopped run started was never released"
    kickoff = next(i for i, (_, url) in enumerate(sent) if "$export" in url)
    assert sent.index(("DELETE", OLD)) < kickoff  # released before the new one is asked for
    assert f"_since={SINCE}" in _kickoffs(httpx_mock)[0]

    # and forgotten: the run after neither polls nor deletes it again
    httpx_mock.reset()
    _serve_new_export(httpx_mock)
    options.since = SINCE
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    assert all(str(r.url) != OLD for r in httpx_mock.get_requests())


async def test_a_since_run_resumes_the_pending_export_of_the_same_since(
    httpx_mock: HTTPXMock, options: CohortOptions
) -> None:
    """The same command run again (``--since`` the same instant) polls the export it started:
    a second kick-off would be refused (Oracle Health) or throw the server's work away."""
    await _stop_while_exporting(httpx_mock, options, since=SINCE)

    _serve_complete_export(httpx_mock, OLD)
    options.since = SINCE
    await cohort.run_cohort(Settings(), options, FhirClientConfig(base_url=BASE), group="g1")
    assert _kickoff_count(httpx_mock) == 0  # the same export, polled again
