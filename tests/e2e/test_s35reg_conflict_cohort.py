"""``fhirtis cohort --patients … --write`` meets a version conflict from a writer of newer data.

``fhirtis run`` and ``$myositis-evaluate`` read the patient again and evaluate anew after a 412
(tests/e2e/test_s35wb_conflict_newer_data.py, R4 http.html#concurrency). A registry run that
reads its patients over REST (``--patients``, ``--patient-file``, the changed patients of a
``_since`` export) re-planned the evaluation it had made, of the older data: it put its Flag
back over the newer writer's and deleted the AdverseEvent of the DVT recorded meanwhile (a
lost update), and its ledger kept the older evaluation's summary. It now reads and evaluates
the patient again too, and records that evaluation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.registry import cohort
from fhirtis.registry.ledger import Ledger
from fhirtis.registry.options import CohortOptions
from fhirtis.settings import Settings
from tests.e2e.test_faults import Forwarding
from tests.e2e.test_run import load, search
from tests.e2e.test_s35wb_conflict_newer_data import OLDER, NewerWriterFirst, _writer
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer


def _cohort(base: str, transport: httpx.AsyncBaseTransport, tmp: Path) -> cohort.CohortResult:
    async def go() -> cohort.CohortResult:
        options = CohortOptions(ledger=tmp / "ledger.sqlite", work_dir=tmp / "w", write=True)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(FhirClientConfig(base_url=base), http=http) as client,
        ):
            return await cohort.run_patient_list(["p1"], Settings(), options, client)

    return asyncio.run(go())


def test_a_cohort_conflict_with_a_writer_of_newer_data_keeps_what_the_record_gives(
    fhir_server: FhirTestServer, fhir_base: str, tmp_path: Path
) -> None:
    load(fhir_base, responder())
    assert asyncio.run(_writer(fhir_base, ())).error is None
    load(fhir_base, responder(**OLDER))  # what the cohort reads: hypertension, no DVT yet

    transport = NewerWriterFirst(fhir_server, "full", (), Forwarding())
    result = _cohort(fhir_base, transport, tmp_path)
    assert transport.newer is not None and transport.newer.error is None
    assert not result.failed, result.failed

    # the DVT's AdverseEvent, written by the newer writer, is still there
    events = [e for e in search(fhir_base, "AdverseEvent") if "derived" in str(e.get("identifier"))]
    assert len(events) == 1, [e.get("id") for e in events]
    # the ledger holds the evaluation of the record as it is now
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        (summary,) = [orjson.loads(s) for s in ledger.summaries(result.run)]
    assert summary["thrombosis"]["associated_events"], summary["thrombosis"]
    # and what is stored is what the record gives: a run now writes nothing
    again = asyncio.run(_writer(fhir_base, ()))
    assert again.error is None and again.status.value == "unchanged", again.written
