"""``fhirtis cohort --write`` on a read the server said was only part of a patient's data.

``fhirtis run`` leaves earlier output it no longer draws as it is when the server answered the
patient's read in part (tests/e2e/test_s35pull_partial_read_withdraw.py: Epic's ``suppressed``
outcome, a search ending before its ``Bundle.total``). A registry run reads its patients the
same way (``cohort --patient``; the changed patients of a ``_since`` export; the types read over
REST beside a Bulk export) but settled them with no word of the partial read: the DVT's
AdverseEvent and the DetectedIssues judged against 3.3 mg/kg/min were withdrawn for a DVT the
server withheld (clinical spec §7: changed *inputs* update in place; preamble: never guess
silently)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.registry import cohort
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.e2e.test_faults import Forwarding, run_with
from tests.e2e.test_run import load
from tests.e2e.test_s35pull_partial_read_withdraw import HideDvt, _live
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer


def _cohort(base: str, transport: httpx.AsyncBaseTransport, tmp: Path) -> cohort.CohortResult:
    async def go() -> cohort.CohortResult:
        config = FhirClientConfig(base_url=base, retry_budget_seconds=5)
        options = CohortOptions(ledger=tmp / "ledger.sqlite", work_dir=tmp / "w", write=True)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(config, http=http) as client,
        ):
            return await cohort.run_patient_list(["p1"], Settings(), options, client)

    return asyncio.run(go())


def test_a_cohort_read_the_server_said_was_partial_withdraws_nothing(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    first = run_with(fhir_base, Forwarding())
    assert first.error is None
    events, issues = _live(fhir_base, "AdverseEvent"), _live(fhir_base, "DetectedIssue")
    assert len(events) == 1 and issues

    transport = HideDvt(outcome=True)
    result = _cohort(fhir_base, transport, tmp_path)
    assert transport.hidden
    assert not result.failed, result.failed
    assert _live(fhir_base, "AdverseEvent") == events
    assert _live(fhir_base, "DetectedIssue") == issues
