"""Conclusions fhirtis no longer draws are withdrawn (clinical spec §7, "changed inputs update in
place"; README, "a re-run converges"): each run finds all of fhirtis's own earlier output for the
patient (one search per derived type, by its identifier system) and every stored resource whose
identifier the new derivation does not produce is marked ``entered-in-error`` (Observation,
Flag, DetectedIssue) or deleted (AdverseEvent, which has no status in R4; where the server
refuses delete it is left and reported as not withdrawn). The run's Provenance names what it
withdrew, a dry run lists it, the next run writes nothing, and a conclusion drawn again is
updated back (never a second copy). Nothing that is not fhirtis's is touched."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import pytest

from fhirtis.api.evaluate import result_bundle
from fhirtis.cli.render import run_record
from fhirtis.fhir.plan import Action
from fhirtis.io import FhirClient, FhirClientConfig, Refused
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
DERIVED_SYSTEM = "http://fhirtis.org/fhir/identifier/derived"
FHIRTIS_CODES = "http://fhirtis.org/fhir/CodeSystem/fhirtis"
DERIVED = ("Observation", "Flag", "DetectedIssue", "AdverseEvent")
STALE = "tis-stale-0000000000000000000000"  # an identifier fhirtis never derives for p1


class _RefuseDelete(httpx.AsyncBaseTransport):
    """Forwards to the server, but answers a DELETE of an AdverseEvent with 405."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE" and "/AdverseEvent/" in request.url.path:
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-supported"}],
            }
            return httpx.Response(405, json=outcome)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def run_once(
    base: str,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    write: bool = True,
    learn: tuple[Refused, ...] = (),
    **config: Any,
) -> PatientRun:
    """``run_patient`` of Patient/p1 on ``base`` through ``transport``, with what the client
    has learnt of the server (``learn``) and the client ``config`` given."""

    async def go() -> PatientRun:
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(FhirClientConfig(base_url=base, **config), http=http) as client,
        ):
            if learn:
                await client.capabilities()
                for refused in learn:
                    client.learn(refused)
            return await run_patient(client, "p1", Settings(), write=write)

    return asyncio.run(go())


def _run(
    base: str, *, write: bool = True, learn: tuple[Refused, ...] = (), refuse_delete: bool = False
) -> PatientRun:
    transport = _RefuseDelete() if refuse_delete else None
    # paged: every page is read
    return run_once(base, transport=transport, write=write, learn=learn, page_size=5)


def _stored(server: FhirTestServer, profile: str) -> dict[str, tuple[str, str | None]]:
    """Every stored derived-type resource: ``Type/id`` → (fhirtis identifier or "", status),
    read on the full profile, then back to ``profile``."""
    server.set_profile("full")
    out: dict[str, tuple[str, str | None]] = {}
    for rtype in DERIVED:
        for r in search(server.base_url, rtype):
            idents = r.get("identifier", [])
            ours = [
                i["value"]
                for i in (idents if isinstance(idents, list) else [idents])
                if i.get("system") == DERIVED_SYSTEM
            ]
            out[f"{rtype}/{r['id']}"] = (ours[0] if ours else "", r.get("status"))
    server.set_profile(profile)
    return out


def _observation(rid: str, system: str, value: str) -> Json:
    return {
        "resourceType": "Observation",
        "id": rid,
        "identifier": [{"system": system, "value": value}],
        "status": "final",
        "code": {"coding": [{"system": FHIRTIS_CODES, "code": "tis"}]},
        "subject": {"reference": "Patient/p1"},
        "valueQuantity": {"value": 1},
    }


def _mark_dvt(base: str, server: FhirTestServer, profile: str, code: str) -> None:
    """Mark the DVT Condition ``entered-in-error`` (or ``confirmed`` again)."""
    server.set_profile("full")
    dvt = httpx.get(f"{base}/Condition/dvt").json()
    dvt["verificationStatus"] = {
        "coding": [
            {
                "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                "code": code,
            }
        ]
    }
    if code == "entered-in-error":
        dvt.pop("clinicalStatus", None)
    else:
        dvt["clinicalStatus"] = {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active",
                }
            ]
        }
    httpx.put(f"{base}/Condition/dvt", json=dvt).raise_for_status()
    server.set_profile(profile)


def _live(stored: dict[str, tuple[str, str | None]]) -> Counter[str]:
    return Counter(i for i, s in stored.values() if i and s != "entered-in-error")


# profile → refusals learned before each run (batch: no transaction, so one batch of writes)
WITHDRAW_CASES: dict[str, tuple[str, tuple[Refused, ...]]] = {
    "full": ("full", ()),
    "batch": ("full", (Refused("transaction"),)),
    "epic-like": ("epic-like", ()),  # Observation: no identifier search, patient + code
    "oracle-like": ("oracle-like", ()),  # singles, no identifier search, no Flag/DI/AE
    "no-transaction": ("no-transaction", ()),  # singles
}


@pytest.mark.parametrize("case", sorted(WITHDRAW_CASES))
def test_output_no_longer_derived_is_withdrawn(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile, learn = WITHDRAW_CASES[case]
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    # fhirtis's earlier output that it no longer derives, and somebody else's Observation with
    # fhirtis's code (another identifier system): only the first is fhirtis's to withdraw
    stale = _observation("stale", DERIVED_SYSTEM, STALE)
    foreign = _observation("foreign", "http://example.org/other", STALE)
    for r in (stale, foreign):
        httpx.put(f"{fhir_base}/Observation/{r['id']}", json=r).raise_for_status()
    fhir_server.set_profile(profile)

    dry = _run(fhir_base, write=False, learn=learn)
    assert dry.status is RunStatus.DRY_RUN
    assert ("Observation", STALE, Action.WITHDRAW) in dry.planned
    assert {"resourceType": "Observation", "identifier": STALE, "action": "withdraw"} in (
        run_record(dry)["plan"]
    )
    assert dry.plan is not None and dry.plan.summary["withdraw"] == 1
    assert _stored(fhir_server, profile)["Observation/stale"] == (STALE, "final")

    first = _run(fhir_base, learn=learn)
    assert first.status is RunStatus.WRITTEN, first.error
    stored = _stored(fhir_server, profile)
    assert stored["Observation/stale"] == (STALE, "entered-in-error")
    assert stored["Observation/foreign"] == ("", "final")
    derived = {d.identifier for d in first.result.derived} if first.result else set()
    assert set(_live(stored)) <= derived
    assert set(_live(stored).values()) == {1}
    # the run's Provenance names the withdrawn resource with what it created
    (provenance,) = search(fhir_base, "Provenance")
    assert "Observation/stale" in [t["reference"] for t in provenance["target"]]

    fhir_server.reset_stats()
    again = _run(fhir_base, learn=learn)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert not [a for _, _, a in again.planned if a is Action.WITHDRAW]  # withdrawn once
    assert fhir_server.stats()["committed_writes"] == 0
    assert _stored(fhir_server, profile) == stored


@pytest.mark.parametrize("profile", ["full", "no-transaction"])
def test_a_withdrawn_dvt_withdraws_its_conclusions_and_a_restored_one_brings_them_back(
    fhir_server: FhirTestServer, fhir_base: str, profile: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile(profile)
    first = _run(fhir_base)
    assert first.status is RunStatus.WRITTEN, first.error
    before = _stored(fhir_server, profile)
    assert any(ref.startswith("AdverseEvent/") for ref in before)

    _mark_dvt(fhir_base, fhir_server, profile, "entered-in-error")
    second = _run(fhir_base)
    assert second.status is RunStatus.WRITTEN, second.error
    assert second.result is not None
    derived = {d.identifier for d in second.result.derived}
    gone = {ref: ident for ref, (ident, _) in before.items() if ident and ident not in derived}
    assert any(ref.startswith("AdverseEvent/") for ref in gone)
    assert any(ref.startswith("DetectedIssue/") for ref in gone)
    after = _stored(fhir_server, profile)
    for ref in gone:
        if ref.startswith("AdverseEvent/"):
            assert ref not in after  # deleted: R4 AdverseEvent has no status
        else:
            assert after[ref][1] == "entered-in-error"
    assert set(_live(after)) == derived
    withdrawn = sorted((t, i) for t, i, a in second.planned if a is Action.WITHDRAW)
    assert withdrawn == sorted((ref.split("/")[0], ident) for ref, ident in gone.items())
    provenances = search(fhir_base, "Provenance")
    assert len(provenances) == 2
    named = {t["reference"] for p in provenances for t in p["target"]}
    assert set(gone) <= named

    fhir_server.reset_stats()
    third = _run(fhir_base)
    assert third.status is RunStatus.UNCHANGED, third.error
    assert fhir_server.stats()["committed_writes"] == 0

    # the DVT was right after all: its conclusions come back, updated in place where they are
    _mark_dvt(fhir_base, fhir_server, profile, "confirmed")
    fourth = _run(fhir_base)
    assert fourth.status is RunStatus.WRITTEN, fourth.error
    back = _stored(fhir_server, profile)
    assert _live(back) == _live(before)
    for ref in gone:
        if not ref.startswith("AdverseEvent/"):
            assert back[ref][1] == "final"  # the same resource, not a second copy
    assert len(back) == len(before)  # the deleted AdverseEvent made again, nothing else new
    fhir_server.reset_stats()
    assert _run(fhir_base).status is RunStatus.UNCHANGED
    assert fhir_server.stats()["committed_writes"] == 0


def test_an_adverse_event_the_server_will_not_delete_is_reported_not_withdrawn(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile("no-transaction")
    assert _run(fhir_base).status is RunStatus.WRITTEN
    events = [r for r in _stored(fhir_server, "no-transaction") if r.startswith("AdverseEvent/")]
    assert len(events) == 1

    _mark_dvt(fhir_base, fhir_server, "no-transaction", "entered-in-error")
    run = _run(fhir_base, refuse_delete=True)
    assert run.status is RunStatus.WRITTEN, run.error
    after = _stored(fhir_server, "no-transaction")
    assert events[0] in after  # left
    messages = [n.message() for n in run.not_written]
    assert any(m.startswith("AdverseEvent ") and "not withdrawn" in m for m in messages), messages
    issues = result_bundle(run, write=True)["entry"][0]["resource"]["issue"]
    assert any("not withdrawn" in i["diagnostics"] for i in issues)
    named = {t["reference"] for p in search(fhir_base, "Provenance") for t in p["target"]}
    assert events[0] in named  # named by the first run's Provenance only, as it made it

    # the next run writes nothing (and says again that it is not withdrawn)
    fhir_server.reset_stats()
    rerun = _run(fhir_base, refuse_delete=True)
    assert rerun.status is RunStatus.UNCHANGED, rerun.error
    assert fhir_server.stats()["committed_writes"] == 0
    assert any("not withdrawn" in n.message() for n in rerun.not_written)
