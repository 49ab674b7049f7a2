"""An update (or a withdrawal) of a derived resource whose Provenance failed is named by the next
run (clinical spec §7: "Every write carries a Provenance"; R4 Provenance.target "usually version
specific").

In single requests and batches (not atomic with their Provenance), the writes can be stored and
the Provenance POST after them fail. The next run looked for Provenance naming its stored output
by ``Provenance?target=Type/id`` and counted *any* Provenance naming ``Type/id``, such as the one
of the resource's create by an earlier run, as naming every version of it: the updated version
stayed without a Provenance on every later run. Now a Provenance names the version current when
the server stored it (``meta.lastUpdated`` of both, the server's clock) or the version it names
(``Type/id/_history/v``): the next run writes the one missing Provenance, and the run after it
writes nothing.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import httpx
import pytest

from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.fhir.plan import Action
from fhirtis.fhir.primitives import instant_or_none
from fhirtis.io import FhirClient, FhirClientConfig, Refused
from fhirtis.io._capabilities import CACHE
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.pipeline.settle import _TRANSACTION_SPAN, _covers
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.e2e.test_write_withdraw import _mark_dvt
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
DERIVED = ("Observation", "Flag", "DetectedIssue", "AdverseEvent")
OO = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "exception"}]}
# write mode → (test-server profile, what the client learns before each run)
MODES: dict[str, tuple[str, tuple[Refused, ...]]] = {
    "single": ("no-transaction", ()),
    "batch": ("full", (Refused("transaction"),)),
}


class _ProvenanceFails(httpx.AsyncBaseTransport):
    """Forwards to the server, except that every ``POST Provenance`` fails with 500 (after the
    writes it was to name were stored) while ``failing``."""

    def __init__(self, failing: bool) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.failing = failing
        self.failed = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.failing and request.method == "POST" and request.url.path.endswith("/Provenance"):
            self.failed += 1
            return httpx.Response(500, json=OO, request=request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _run(base: str, learn: tuple[Refused, ...], *, provenance_fails: bool = False) -> PatientRun:
    transport = _ProvenanceFails(provenance_fails)

    async def go() -> PatientRun:
        CACHE.forget()
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(FhirClientConfig(base_url=base, page_size=50), http=http) as client,
        ):
            if learn:
                await client.capabilities()
                for refused in learn:
                    client.learn(refused)
            return await run_patient(client, "p1", Settings(), write=True)

    run = asyncio.run(go())
    assert transport.failed > 0 or not provenance_fails
    return run


def _unnamed(base: str) -> list[str]:
    """Every stored version of fhirtis's output (live or withdrawn) that no Provenance stored no
    earlier names (the server's own view, read on its full profile)."""
    current: dict[str, Json] = {}
    for rtype in DERIVED:
        for r in search(base, rtype):
            idents = r.get("identifier", [])
            if any(
                i.get("system") == IDENTIFIER_SYSTEM
                for i in (idents if isinstance(idents, list) else [idents])
            ):
                current[f"{rtype}/{r['id']}"] = r["meta"]
    latest: dict[str, str] = {}
    for prov in search(base, "Provenance"):
        for t in prov["target"]:
            ref = t["reference"].split("/_history/")[0]
            latest[ref] = max(latest.get(ref, ""), prov["meta"]["lastUpdated"])
    return sorted(
        f"{ref}/_history/{meta['versionId']}"
        for ref, meta in current.items()
        if latest.get(ref, "") < meta["lastUpdated"]
    )


def _provenances(base: str) -> list[Json]:
    return sorted(search(base, "Provenance"), key=lambda p: str(p["meta"]["lastUpdated"]))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_an_update_whose_provenance_failed_is_named_by_the_next_run(
    fhir_server: FhirTestServer, fhir_base: str, mode: str
) -> None:
    profile, learn = MODES[mode]
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    first = _run(fhir_base, learn)
    assert first.status is RunStatus.WRITTEN, first.error
    assert _unnamed(fhir_base) == []

    # a source edited: two Observations are updated, and their Provenance fails
    fhir_server.set_profile("full")
    pga3 = httpx.get(f"{fhir_base}/Observation/pga3").json()
    pga3["valueQuantity"]["value"] = 1
    httpx.put(f"{fhir_base}/Observation/pga3", json=pga3).raise_for_status()
    fhir_server.set_profile(profile)
    second = _run(fhir_base, learn, provenance_fails=True)
    assert second.status is RunStatus.FAILED
    updated = sorted(w.reference for w in second.written if w.action is Action.UPDATE)
    assert len(updated) == 2, second.written
    fhir_server.set_profile("full")
    assert len(_unnamed(fhir_base)) == 2  # the updated versions: no Provenance names them
    assert len(_provenances(fhir_base)) == 1
    fhir_server.set_profile(profile)

    # the next run writes the one missing Provenance, naming just them
    fhir_server.reset_stats()
    third = _run(fhir_base, learn)
    assert third.status is RunStatus.WRITTEN, third.error
    assert fhir_server.stats()["committed_writes"] == 1
    fhir_server.set_profile("full")
    provenances = _provenances(fhir_base)
    assert len(provenances) == 2
    assert sorted(t["reference"] for t in provenances[-1]["target"]) == updated
    assert _unnamed(fhir_base) == []
    fhir_server.set_profile(profile)

    # and the run after it writes nothing
    fhir_server.reset_stats()
    fourth = _run(fhir_base, learn)
    assert fourth.status is RunStatus.UNCHANGED, fourth.error
    assert fhir_server.stats()["committed_writes"] == 0


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_withdrawal_whose_provenance_failed_is_named_by_the_next_run(
    fhir_server: FhirTestServer, fhir_base: str, mode: str
) -> None:
    profile, learn = MODES[mode]
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile(profile)
    assert _run(fhir_base, learn).status is RunStatus.WRITTEN

    # the DVT entered in error: its conclusions are withdrawn (the DetectedIssue marked
    # entered-in-error, the AdverseEvent deleted), and the Provenance fails
    _mark_dvt(fhir_base, fhir_server, profile, "entered-in-error")
    second = _run(fhir_base, learn, provenance_fails=True)
    assert second.status is RunStatus.FAILED
    withdrawn = [w for w in second.written if w.action is Action.WITHDRAW]
    assert any(w.resource_type == "DetectedIssue" for w in withdrawn), second.written
    assert any(w.resource_type == "AdverseEvent" for w in withdrawn), second.written
    fhir_server.set_profile("full")
    assert _unnamed(fhir_base) != []
    fhir_server.set_profile(profile)

    fhir_server.reset_stats()
    third = _run(fhir_base, learn)
    assert third.status is RunStatus.WRITTEN, third.error
    assert fhir_server.stats()["committed_writes"] == 1
    fhir_server.set_profile("full")
    named = {t["reference"] for t in _provenances(fhir_base)[-1]["target"]}
    # what the failed run changed and is still stored (a deleted AdverseEvent is gone)
    assert named == {w.reference for w in second.written if w.resource_type != "AdverseEvent"}
    assert _unnamed(fhir_base) == []
    fhir_server.set_profile(profile)

    fhir_server.reset_stats()
    assert _run(fhir_base, learn).status is RunStatus.UNCHANGED
    assert fhir_server.stats()["committed_writes"] == 0


@pytest.mark.parametrize("profile", ["full", "no-transaction"])
def test_an_update_with_its_provenance_is_not_named_again(
    fhir_server: FhirTestServer, fhir_base: str, profile: str
) -> None:
    """A transaction (the Provenance stored with the update) and single requests (the
    Provenance after it): the run after an update writes nothing."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    assert _run(fhir_base, ()).status is RunStatus.WRITTEN
    fhir_server.set_profile("full")
    pga3 = httpx.get(f"{fhir_base}/Observation/pga3").json()
    pga3["valueQuantity"]["value"] = 1
    httpx.put(f"{fhir_base}/Observation/pga3", json=pga3).raise_for_status()
    fhir_server.set_profile(profile)
    assert _run(fhir_base, ()).status is RunStatus.WRITTEN
    fhir_server.reset_stats()
    assert _run(fhir_base, ()).status is RunStatus.UNCHANGED
    assert fhir_server.stats()["committed_writes"] == 0


ZERO = timedelta(0)
FLAG = {"resourceType": "Flag", "id": "f", "meta": {"versionId": "3"}}
AT_V3 = "2026-12-07T09:00:00.500Z"


@pytest.mark.parametrize(
    ("reference", "stored_at", "meta", "covers", "span"),
    [
        ("Flag/f", "2026-12-07T09:00:01Z", {"lastUpdated": AT_V3}, True, ZERO),  # after
        ("Flag/f", AT_V3, {"lastUpdated": AT_V3}, True, ZERO),  # same instant (one transaction)
        ("Flag/f", "2026-12-07T09:00:00.499Z", {"lastUpdated": AT_V3}, False, ZERO),  # before
        ("Flag/f", "2026-12-07T10:00:00+01:00", {"lastUpdated": AT_V3}, False, ZERO),  # zones
        ("Flag/f", None, {"lastUpdated": AT_V3}, True, ZERO),  # no time on the Provenance
        ("Flag/f", "2026-12-07T09:00:00Z", {}, True, ZERO),  # no time on the target
        ("Flag/f/_history/3", "2026-12-07T08:00:00Z", {"lastUpdated": AT_V3}, True, ZERO),
        ("Flag/f/_history/2", "2026-12-07T10:00:00Z", {"lastUpdated": AT_V3}, False, ZERO),
        ("http://x/fhir/Flag/f/_history/3", None, {}, True, ZERO),
        # a transaction's Provenance, stamped before the updates stored with it
        ("Flag/f", "2026-12-07T09:00:00.400Z", {"lastUpdated": AT_V3}, True, _TRANSACTION_SPAN),
        ("Flag/f", "2026-12-07T08:00:00Z", {"lastUpdated": AT_V3}, False, _TRANSACTION_SPAN),
    ],
)
def test_which_provenance_names_the_current_version(
    reference: str,
    stored_at: str | None,
    meta: Json,
    covers: bool,
    span: timedelta,
) -> None:
    target = {**FLAG, "meta": {**FLAG["meta"], **meta}}
    assert _covers(reference, instant_or_none(stored_at), target, span) is covers
