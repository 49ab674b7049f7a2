"""What a write's answer means, on the Medplum-based test server with faults injected.

- A write answered 2xx whose body is an OperationOutcome with an ``error`` or ``fatal`` issue
  did not do what was asked. Redox's FHIR API answers a request that the EHR behind it failed
  with "a 200 OK status from Redox, but the body of the response contains" the errors, in the
  ``issue`` array "for Redox FHIR API responses" (docs.redoxengine.com, "Responding to queries",
  partial error). R4 http.html: a successful update answers the resource (or nothing, or an
  OperationOutcome of hints with ``Prefer: return=OperationOutcome``); an OperationOutcome's
  ``error``/``fatal`` severity is "the issue caused the action to fail" (R4 valueset
  issue-severity). Such a write is a failure: never reported written, never named by a
  Provenance; the next run writes it.
- A DELETE whose first answer was lost (a gateway's 504; DELETE is idempotent, so it is sent
  again) and that is then answered 404/410: R4 http.html (delete) says a delete of a resource
  already deleted may be answered 404 as well as 200/204. The resource fhirtis found moments
  before is gone, most likely by the first try: the withdrawal is reported made and the run's
  Provenance names it, as a resent create's "exists" is named.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from fhirtis.fhir.plan import Action
from fhirtis.io import FhirClient, FhirClientConfig, Refused
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.e2e.test_write_outcome import _Hooked, _said
from tests.e2e.test_write_withdraw import (
    DERIVED,
    DERIVED_SYSTEM,
    _mark_dvt,
    _stored,
    run_once,
)
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer
from tests.io._support import REDOX_FAILED

Json = dict[str, Any]


def _run(base: str, transport: httpx.AsyncBaseTransport | None = None) -> PatientRun:
    async def go() -> PatientRun:
        config = FhirClientConfig(
            base_url=base,
            retry_budget_seconds=5,
            retry_backoff_base_seconds=0.01,
            retry_backoff_max_seconds=0.02,
        )
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(config, http=http) as client,
        ):
            return await run_patient(client, "p1", Settings(), write=True)

    return asyncio.run(go())


def _derived_type(request: httpx.Request) -> str | None:
    parts = request.url.path.rstrip("/").split("/")
    for rtype in DERIVED:
        if rtype in parts[-2:]:
            return rtype
    return None


def _named(base: str) -> list[str]:
    """Every reference any Provenance on the server names (with repeats)."""
    return [t["reference"] for p in search(base, "Provenance") for t in p.get("target", [])]


def _a_stored_observation(base: str) -> Json:
    (first, *_) = search(base, "Observation", identifier=f"{DERIVED_SYSTEM}|")
    return first


def test_an_update_answered_200_with_an_error_outcome_is_not_written(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")  # single requests: If-Match PUTs
    assert _run(fhir_base).status is RunStatus.WRITTEN
    stored = _a_stored_observation(fhir_base)
    ref = f"Observation/{stored['id']}"
    changed = {**stored, "status": "preliminary"}  # fhirtis will update it back to final
    changed.pop("meta", None)
    httpx.put(f"{fhir_base}/{ref}", json=changed).raise_for_status()
    assert _named(fhir_base).count(ref) == 1  # the first run's Provenance

    def redox_fails_updates(request: httpx.Request) -> httpx.Response | None:
        if request.method == "PUT" and _derived_type(request):
            return httpx.Response(200, json=REDOX_FAILED)  # nothing stored
        return None

    run = _run(fhir_base, _Hooked(before=redox_fails_updates))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "exception" in run.error
    assert ref not in {w.reference for w in run.written}
    assert not _said(run, "updated")
    assert _named(fhir_base).count(ref) == 1  # no Provenance names the update never made
    assert httpx.get(f"{fhir_base}/{ref}").json()["status"] == "preliminary"

    again = _run(fhir_base)
    assert again.status is RunStatus.WRITTEN, again.error
    assert (Action.UPDATE, ref) in {(w.action, w.reference) for w in again.written}
    assert _named(fhir_base).count(ref) == 2
    assert httpx.get(f"{fhir_base}/{ref}").json()["status"] == "final"


def _fail_third_create(answer: Json, status: int = 200) -> _Hooked:
    creates = {"n": 0}

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and _derived_type(request):
            creates["n"] += 1
            if creates["n"] == 3:
                return httpx.Response(status, json=answer)  # nothing stored
        return None

    return _Hooked(before=hook)


def _check_create_failed(fhir_server: FhirTestServer, fhir_base: str, profile: str) -> None:
    run = _run(fhir_base, _fail_third_create(REDOX_FAILED))
    assert run.status is RunStatus.FAILED, run.status
    assert run.error is not None and "exception" in run.error
    stored = {ref: ident for ref, (ident, _) in _stored(fhir_server, profile).items() if ident}
    assert len(stored) == 2
    assert {w.reference for w in run.written} == set(stored)
    assert sorted(_named(fhir_base)) == sorted(stored)  # what was made, named once

    again = _run(fhir_base)
    assert again.status is RunStatus.WRITTEN, again.error
    after = {ref: ident for ref, (ident, _) in _stored(fhir_server, profile).items() if ident}
    assert len(set(after.values())) == len(after)  # no copies
    assert not again.duplicates
    named = _named(fhir_base)
    assert sorted(named) == sorted(after)  # each named once, nothing left unnamed


def test_a_conditional_create_answered_200_with_an_error_outcome_fails(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """A conditional create answered 200 means "found"; 200 with an error outcome is neither
    found nor made."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")
    _check_create_failed(fhir_server, fhir_base, "no-transaction")


def test_a_plain_create_answered_200_with_an_error_outcome_fails(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """Search-then-create (Oracle Health: no conditional create): a 200 of a plain create
    counts as made, but not one whose body says the create failed."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("oracle-like")
    _check_create_failed(fhir_server, fhir_base, "oracle-like")


@pytest.mark.parametrize("gone", [404, 410])
def test_a_resent_delete_answered_gone_is_the_withdrawal_its_first_try_made(
    fhir_server: FhirTestServer, fhir_base: str, gone: int
) -> None:
    """The first DELETE is made and its answer lost (504); the resent one is answered ``gone``
    as FHIR Works on AWS (404: awslabs/fhir-works-on-aws-deployment#714) and fhirbase (410:
    fhirbase/fhirbase-plv8#143) answer a delete of a deleted resource (the test server, as
    Medplum since medplum/medplum#4396, answers 200)."""
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile("no-transaction")
    assert _run(fhir_base).status is RunStatus.WRITTEN
    (event,) = [r for r in _stored(fhir_server, "no-transaction") if r.startswith("AdverseEvent/")]
    _mark_dvt(fhir_base, fhir_server, "no-transaction", "entered-in-error")
    deletes: list[int] = []

    def lose_first_delete(
        request: httpx.Request, response: httpx.Response
    ) -> httpx.Response | None:
        if request.method == "DELETE" and _derived_type(request) == "AdverseEvent":
            deletes.append(response.status_code)
            assert response.is_success  # the first deletes it; the test server's repeat: 200
            if len(deletes) == 1:
                return httpx.Response(504, text="gateway timeout")
            outcome = {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "not-found"}],
            }
            return httpx.Response(gone, json=outcome)
        return None

    run = _run(fhir_base, _Hooked(after=lose_first_delete))
    assert len(deletes) == 2, deletes
    assert run.status is RunStatus.WRITTEN, run.error
    assert event not in _stored(fhir_server, "no-transaction")
    assert (Action.WITHDRAW, event) in {(w.action, w.reference) for w in run.written}
    assert event in _said_withdrawn(run)
    assert _named(fhir_base).count(event) == 2  # made by the first run, withdrawn by this one
    assert not [u for u in run.unconfirmed if u[0] == "AdverseEvent"]


def _said_withdrawn(run: PatientRun) -> set[str]:
    idents = _said(run, "withdrawn")
    return {w.reference for w in run.written if w.identifier in idents}


class _BatchEntryFails(httpx.AsyncBaseTransport):
    """Forwards to the server; in the first batch of writes, the third create is not sent on
    and its answer is ``200 OK`` with an error ``response.outcome``, as a gateway relaying an
    EHR's failure per entry would (R4 Bundle.entry.response.outcome)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.done = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        bundle = json.loads(body) if request.method == "POST" and body else {}
        entries = bundle.get("entry", []) if bundle.get("type") == "batch" else []
        posts = [i for i, e in enumerate(entries) if e["request"]["method"] == "POST"]
        if self.done or len(posts) < 3:
            return await self.inner.handle_async_request(request)
        self.done = True
        dropped = posts[2]
        sent = {**bundle, "entry": [e for i, e in enumerate(entries) if i != dropped]}
        forwarded = httpx.Request(
            "POST", request.url, headers={"Content-Type": "application/fhir+json"}, json=sent
        )
        response = await self.inner.handle_async_request(forwarded)
        answer = json.loads(await response.aread())
        failed = {"response": {"status": "200 OK", "outcome": REDOX_FAILED}}
        answer["entry"].insert(dropped, failed)
        return httpx.Response(200, json=answer)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_batch_entry_answered_200_with_an_error_outcome_fails(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    learn = (Refused("transaction"),)  # one batch of writes
    run = run_once(fhir_base, transport=_BatchEntryFails(), learn=learn)
    assert run.status is RunStatus.FAILED, run.status
    stored = {ref: ident for ref, (ident, _) in _stored(fhir_server, "full").items() if ident}
    assert {w.reference for w in run.written} == set(stored)
    assert len(stored) == len(run.planned) - 1
    assert sorted(_named(fhir_base)) == sorted(stored)  # the batch's Provenance: what it made

    again = run_once(fhir_base, learn=learn)
    assert again.status is RunStatus.WRITTEN, again.error
    after = {ref: ident for ref, (ident, _) in _stored(fhir_server, "full").items() if ident}
    assert len(after) == len(stored) + 1 and len(set(after.values())) == len(after)
    assert sorted(_named(fhir_base)) == sorted(after)


def _lose_first_provenance(made: bool) -> _Hooked:
    """The first Provenance POST times out: after the server made it (``made``), or before."""
    posts = {"n": 0}

    def is_provenance(request: httpx.Request) -> bool:
        return request.method == "POST" and request.url.path.rstrip("/").endswith("/Provenance")

    def before(request: httpx.Request) -> httpx.Response | None:
        if is_provenance(request):
            posts["n"] += 1
            if posts["n"] == 1 and not made:
                raise httpx.ReadTimeout("lost", request=request)
        return None

    def after(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if is_provenance(request) and posts["n"] == 1 and made:
            raise httpx.ReadTimeout("lost", request=request)
        return None

    return _Hooked(before=before, after=after)


# profile → refusals learnt first: single requests (no-transaction, oracle-like), one batch
PROVENANCE_CASES: dict[str, tuple[str, tuple[Refused, ...]]] = {
    "no-transaction": ("no-transaction", ()),
    "oracle-like": ("oracle-like", ()),
    "batch": ("full", (Refused("transaction"),)),
}


@pytest.mark.parametrize("case", sorted(PROVENANCE_CASES))
@pytest.mark.parametrize("made", [True, False], ids=["made", "not-made"])
def test_a_provenance_whose_answer_was_lost_names_what_was_written_once(
    fhir_server: FhirTestServer, fhir_base: str, case: str, made: bool
) -> None:
    """R4 Provenance: each write names what it wrote; a POST of the Provenance whose answer is
    lost (a timeout) is checked by its targets before the run ends: posted again only where no
    Provenance names them, so never twice and never none (what was written was left unnamed
    until a later run)."""
    profile, learn = PROVENANCE_CASES[case]
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    run = run_once(fhir_base, transport=_lose_first_provenance(made), learn=learn)
    assert run.status is RunStatus.WRITTEN, run.error
    stored = {ref for ref, (ident, _) in _stored(fhir_server, profile).items() if ident}
    assert {w.reference for w in run.written} == stored
    assert sorted(_named(fhir_base)) == sorted(stored)  # each named once


def test_a_transaction_answered_200_with_an_error_outcome_fails_saying_so(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """R4 http.html: a transaction's answer is a transaction-response Bundle; Redox's 200 with
    the EHR's errors instead made nothing. The run fails naming the outcome's issue codes (it
    said only "did not return a Bundle"), and nothing is said written."""
    load(fhir_base, responder(dvt_after_cycle=2))

    def redox_fails_bundles(request: httpx.Request) -> httpx.Response | None:
        at_base = request.method == "POST" and request.url.path.rstrip("/").endswith("/fhir")
        if at_base and json.loads(request.content).get("type") == "transaction":
            return httpx.Response(200, json=REDOX_FAILED)  # nothing stored
        return None

    run = _run(fhir_base, _Hooked(before=redox_fails_bundles))
    assert run.status is RunStatus.FAILED
    assert run.error is not None and "(exception)" in run.error, run.error
    assert not run.written
    assert not _named(fhir_base)


def _lose_first(kind: str) -> _Hooked:
    """The first withdrawal request of ``kind`` ("batch", "transaction": such a Bundle holding
    a withdrawal; "put": an If-Match PUT of a DetectedIssue) is made, and its answer is lost: a
    ReadTimeout for a Bundle (never re-sent), a gateway's 504 for the PUT (re-sent, then
    answered 412: the version it names is no longer current). A transaction's Provenance is
    made with it."""
    lost = {"n": 0}

    def after(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if lost["n"]:
            return None
        if kind in ("batch", "transaction") and request.method == "POST" and request.content:
            bundle = json.loads(request.content)
            methods = {e["request"]["method"] for e in bundle.get("entry", [])}
            if bundle.get("type") == kind and methods & {"PUT", "DELETE"}:
                lost["n"] += 1
                raise httpx.ReadTimeout("lost", request=request)
        if kind == "put" and request.method == "PUT" and _derived_type(request) == "DetectedIssue":
            assert json.loads(request.content)["status"] == "entered-in-error"
            lost["n"] += 1
            return httpx.Response(504, text="gateway timeout")
        return None

    return _Hooked(after=after)


# kind → (profile, refusals learnt first)
LOST_WITHDRAWALS: dict[str, tuple[str, tuple[Refused, ...]]] = {
    "batch": ("full", (Refused("transaction"),)),
    "put": ("no-transaction", ()),
    "transaction": ("full", ()),
}


@pytest.mark.parametrize("kind", sorted(LOST_WITHDRAWALS))
def test_a_withdrawal_whose_answer_was_lost_is_reported_and_named(
    fhir_server: FhirTestServer, fhir_base: str, kind: str
) -> None:
    """The withdrawals are made, their answer lost; the re-plan no longer sees them (a retired
    copy is not planned again, a deleted one is gone), so they were neither reported withdrawn
    nor named by any Provenance. They are, as lost creates and updates found made are."""
    profile, learn = LOST_WITHDRAWALS[kind]
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile(profile)
    assert run_once(fhir_base, learn=learn).status is RunStatus.WRITTEN
    before = _stored(fhir_server, profile)
    _mark_dvt(fhir_base, fhir_server, profile, "entered-in-error")

    run = run_once(
        fhir_base,
        transport=_lose_first(kind),
        learn=learn,
        retry_backoff_base_seconds=0.01,
        retry_backoff_max_seconds=0.02,
    )
    assert run.status is RunStatus.WRITTEN, run.error
    after = _stored(fhir_server, profile)
    gone = {
        ref
        for ref, (ident, _) in before.items()
        if ident and (ref not in after or after[ref][1] == "entered-in-error")
    }
    assert any(r.startswith("DetectedIssue/") for r in gone)
    withdrawn = {w.reference for w in run.written if w.action is Action.WITHDRAW}
    assert withdrawn == gone
    named = _named(fhir_base)
    assert all(named.count(ref) == 2 for ref in gone), [(r, named.count(r)) for r in gone]


@pytest.mark.parametrize("made", [True, False], ids=["made", "not-made"])
def test_a_lost_provenance_naming_earlier_output_is_checked_not_a_failure(
    fhir_server: FhirTestServer, fhir_base: str, made: bool
) -> None:
    """A run whose Provenance failed (500) leaves its output unnamed; the next run has nothing
    else to write and posts a Provenance naming it. That POST's answer is lost: the run failed
    (504) though nothing had failed. Its targets are checked as after any lost Provenance."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")

    def provenance_fails(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/Provenance"):
            return httpx.Response(500, json={"resourceType": "OperationOutcome", "issue": []})
        return None

    first = _run(fhir_base, _Hooked(before=provenance_fails))
    assert first.status is RunStatus.FAILED
    assert not _named(fhir_base)
    stored = {ref for ref, (ident, _) in _stored(fhir_server, "no-transaction").items() if ident}

    run = _run(fhir_base, _lose_first_provenance(made))
    assert run.status is RunStatus.WRITTEN, run.error
    assert sorted(_named(fhir_base)) == sorted(stored)  # each named once


@pytest.mark.parametrize("made", [True, False], ids=["made", "not-made"])
def test_a_lost_provenance_of_withdrawals_names_them_once(
    fhir_server: FhirTestServer, fhir_base: str, made: bool
) -> None:
    """Withdrawn resources are in no later plan (retired, or deleted), so what a lost
    Provenance named is checked by its own targets, not only by the plan's."""
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile("no-transaction")
    assert _run(fhir_base).status is RunStatus.WRITTEN
    before = _stored(fhir_server, "no-transaction")
    _mark_dvt(fhir_base, fhir_server, "no-transaction", "entered-in-error")

    run = _run(fhir_base, _lose_first_provenance(made))
    assert run.status is RunStatus.WRITTEN, run.error
    withdrawn = {w.reference for w in run.written if w.action is Action.WITHDRAW}
    assert any(r.startswith("AdverseEvent/") for r in withdrawn)
    assert withdrawn <= set(before)
    named = _named(fhir_base)
    assert all(named.count(ref) == 2 for ref in withdrawn), [(r, named.count(r)) for r in withdrawn]
    assert len(search(fhir_base, "Provenance")) == 2
