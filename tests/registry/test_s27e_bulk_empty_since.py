"""A ``_since`` Group export in which nothing changed, as servers answer it.

LinuxForHealth (IBM) FHIR server's completion manifest for an export that matched nothing had
no ``output`` at all: ``{"transactionTime", "request", "requiresAccessToken"}``
(LinuxForHealth/FHIR issue #2676); HAPI FHIR 6.10.3 answered such an export without the
required fields, ``output`` among them (hapifhir/hapi-fhir issue #5632). The Bulk Data IG
v2.0.0 (export.html, Response - Complete Status) asks for an empty array then. A ``_since``
export of a Group none of whose data changed is the everyday case of an incremental cohort
run: it is an export of nothing, read cleanly, and its transaction time becomes the next
``_since``; it is not a malformed answer that stops the run (and would stop every run until
something changed).
"""

from __future__ import annotations

import re
from pathlib import Path

from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.registry.group_export import export_group
from fhirtis.registry.options import CohortOptions
from tests.io._support import BASE, FakeTime


async def test_a_since_export_of_nothing_without_output_is_read_as_empty(
    httpx_mock: HTTPXMock, tmp_path: Path
) -> None:
    status = f"{BASE}/bulkstatus/nothing-changed"
    httpx_mock.add_response(
        url=re.compile(re.escape(f"{BASE}/Group/g1/$export") + r".*"),
        status_code=202,
        headers={"Content-Location": status},
    )
    httpx_mock.add_response(
        url=status,
        json={  # LinuxForHealth/FHIR#2676: no output when nothing was exported
            "transactionTime": "2024-05-02T10:00:00.000Z",
            "request": f"{BASE}/Group/g1/$export?_since=2024-05-01T10:00:00Z",
            "requiresAccessToken": False,
        },
    )
    httpx_mock.add_response(method="DELETE", url=status, status_code=202)
    options = CohortOptions(
        ledger=tmp_path / "ledger.sqlite",
        work_dir=tmp_path / "work",
        progress=False,
        since="2024-05-01T10:00:00Z",
    )
    async with FhirClient(FhirClientConfig(base_url=BASE), timing=FakeTime().timing()) as fhir:
        export = await export_group(fhir, "g1", options)

    kickoff = next(r for r in httpx_mock.get_requests() if "$export" in str(r.url))
    assert "_since=2024-05-01T10:00:00Z" in str(kickoff.url)
    assert export.incremental
    assert export.transaction_time == "2024-05-02T10:00:00.000Z"
    assert export.problems == ()
    assert sorted(p.name for p in export.folder.iterdir()) == []
    assert [r.method for r in httpx_mock.get_requests()] == ["GET", "GET", "DELETE"]
