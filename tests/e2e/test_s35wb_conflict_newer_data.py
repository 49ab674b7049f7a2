"""A version conflict from a writer that evaluated newer data: never a lost update.

R4 http.html#concurrency: a client that updates with ``If-Match`` and is answered 412
Precondition Failed learns that someone else changed the resource since it read it; it must
re-read and apply its change to the current state. Medplum (whose REST router the test server
runs), Azure Health Data Services and Google Cloud Healthcare answer a stale ``If-Match`` 412;
HAPI FHIR JPA and Smile CDR answer 409 ("HAPI-0989: Trying to update ... but this is not the
current version"), which fhirtis reads as the same.

fhirtis's change is a function of the patient's data. Writer B (a ``fhirtis run --write``) reads
the patient, evaluates, reads its earlier output; meanwhile the record changes (a DVT is
recorded after an IVIG cycle) and writer A (``$myositis-evaluate write=true``, run for the new
data) writes what the new data gives: the tee-risk Flag with the thrombosis, the rate
DetectedIssues against the lower limit, the AdverseEvent of the temporally associated DVT.
B's first write is answered 412 (409 on HAPI). B re-read only its earlier output and
re-planned its own evaluation, of the older data, against it: it overwrote A's Flag and
DetectedIssues with conclusions the record no longer supports and deleted A's AdverseEvent
(no longer derived from B's data), until some later run put them back. After a conflict the
run now reads the patient again, evaluates anew and re-plans that: what is stored is what the
current record gives, and the next run writes nothing. A first-try 412 (not a resend after a
lost answer) is another writer's change, never taken for B's own write: B does not report A's
writes as its own, nor name them in a Provenance.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from fhirtis.io import FhirClient, FhirClientConfig, Refused
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_faults import Forwarding
from tests.e2e.test_run import load, search
from tests.e2e.test_s24_hapi_conflicts import HapiLike
from tests.e2e.test_write_race import _is_write
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

OLDER = {"hypertension": True}  # what writer B read
NEWER = {"hypertension": True, "dvt_after_cycle": 2}  # what the record holds when A runs


async def _writer(
    base: str, learn: tuple[Refused, ...], transport: httpx.AsyncBaseTransport | None = None
) -> PatientRun:
    async with (
        httpx.AsyncClient(transport=transport) as http,
        FhirClient(FhirClientConfig(base_url=base), http=http) as client,
    ):
        if learn:
            await client.capabilities()
            for refused in learn:
                client.learn(refused)
        return await run_patient(client, "p1", Settings(), write=True)


class NewerWriterFirst(httpx.AsyncBaseTransport):
    """Writer B's transport: before B's first write, the record gains a DVT and writer A (its
    own client) evaluates it and writes; then B's write goes on, through ``inner`` (the test
    server, or HAPI-like answers)."""

    def __init__(
        self,
        server: FhirTestServer,
        profile: str,
        learn: tuple[Refused, ...],
        inner: httpx.AsyncBaseTransport,
    ) -> None:
        self.server, self.profile, self.learn, self.inner = server, profile, learn, inner
        self.newer: PatientRun | None = None

    def _record_changes(self) -> None:
        self.server.set_profile("full")
        load(self.server.base_url, responder(**NEWER))
        self.server.set_profile(self.profile)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.newer is None and _is_write(request):
            await asyncio.to_thread(self._record_changes)
            self.newer = await _writer(self.server.base_url, self.learn)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


# case → (test-server profile, what the clients learnt first, HAPI's 409 for 412)
CASES: dict[str, tuple[str, tuple[Refused, ...], bool]] = {
    "transaction": ("full", (), False),
    "batch": ("full", (Refused("transaction"),), False),
    "single requests": ("no-transaction", (), False),
    "transaction, HAPI 409": ("full", (), True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_conflict_with_a_writer_of_newer_data_keeps_what_the_record_gives(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile, learn, hapi = CASES[case]
    load(fhir_base, responder())
    fhir_server.set_profile(profile)
    assert asyncio.run(_writer(fhir_base, learn)).status is RunStatus.WRITTEN
    fhir_server.set_profile("full")
    load(fhir_base, responder(**OLDER))  # what B reads: hypertension, no DVT yet
    fhir_server.set_profile(profile)

    inner: httpx.AsyncBaseTransport = HapiLike(fhir_base) if hapi else Forwarding()
    transport = NewerWriterFirst(fhir_server, profile, learn, inner)
    stale = asyncio.run(_writer(fhir_base, learn, transport))
    newer = transport.newer
    assert newer is not None and newer.status is RunStatus.WRITTEN, newer and newer.error
    # written, or unchanged where the conflict stored nothing of B's and the new evaluation
    # is what A stored
    assert stale.status in (RunStatus.WRITTEN, RunStatus.UNCHANGED), stale.error
    # B neither claims A's writes as its own nor names them in a Provenance of its own: a
    # first-try 412 means nothing of B's write was stored
    theirs = {w.reference for w in newer.written}
    assert not {w.reference for w in stale.written} & theirs, stale.written
    assert stale.result is not None
    # B's result is of the record as it is now: the DVT's AdverseEvent is derived
    assert any(d.resource_type == "AdverseEvent" for d in stale.result.derived)

    fhir_server.set_profile("full")
    events = search(fhir_base, "AdverseEvent")
    assert len(events) == 1, [e.get("id") for e in events]
    fhir_server.set_profile(profile)
    # what is stored is what the current record gives: a run now writes nothing
    again = asyncio.run(_writer(fhir_base, learn, HapiLike(fhir_base) if hapi else None))
    assert again.status is RunStatus.UNCHANGED, (again.error, again.written)
