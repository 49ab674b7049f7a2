"""A HAPI FHIR JPA server's 409 Conflict answers, against the real engine.

HAPI (and Smile CDR, built on it) answers two things fhirtis meets with **409**, not 412:

- **a delete of a resource that another resource references** (referential integrity on delete,
  on by default): "HAPI-0550: Unable to delete AdverseEvent/x because at least one resource has
  a reference to this resource. First reference found was resource Provenance/y in path
  Provenance.target". A Provenance's target counts: hapifhir/hapi-fhir issue #7160 ("Unable to
  delete patient when referenced by Provenance"); the exception is
  ``ResourceVersionConflictException``, whose ``STATUS_CODE`` is 409 (hapi-fhir-base,
  ca/uhn/fhir/rest/server/exceptions/ResourceVersionConflictException.java). In a transaction
  the whole transaction fails with it.
- **an ``If-Match`` update of a version that is no longer current**: HAPI's UpdateMethodBinding
  turns ``If-Match`` into a versioned id and the DAO throws the same exception, "HAPI-0989:
  Trying to update Observation/x/_history/1 but this is not the current version" (409; R4
  http.html#concurrency says 412, STU3 said 409; microsoft/iomt-fhir PR #20: "The FHIR Server
  may respond with either a 409 Conflict or a 412 Precondition Failed").

fhirtis withdraws an AdverseEvent it no longer derives by deleting it (R4 AdverseEvent has no
status), and its own earlier Provenance names that AdverseEvent: on HAPI that delete is always
refused. The run must still write the rest, say the AdverseEvent was not withdrawn, and a
second run must write nothing. A 409 on an If-Match update is a concurrent change: re-read and
re-plan, as after a 412.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from fhirtis.io import Refused
from fhirtis.pipeline.server import PatientRun, RunStatus
from tests.e2e.test_faults import Forwarding
from tests.e2e.test_run import load, search
from tests.e2e.test_write_race import (
    DERIVED_SYSTEM,
    SecondWriterFirst,
    _without_conditional_create,
    _writer,
)
from tests.e2e.test_write_withdraw import _mark_dvt, _stored, run_once
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
TIS = "http://fhirtis.org/fhir/CodeSystem/fhirtis|tis"


def _conflict(diagnostics: str) -> httpx.Response:
    """HAPI's answer to a ResourceVersionConflictException (issue code ``processing``)."""
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing", "diagnostics": diagnostics}],
    }
    return httpx.Response(
        409, content=orjson.dumps(outcome), headers={"Content-Type": "application/fhir+json"}
    )


async def forward_entries(
    inner: httpx.AsyncBaseTransport, request: httpx.Request, body: Json, kept: list[Json]
) -> tuple[httpx.Response, Json]:
    """The batch ``body`` with only the entries ``kept`` sent on to the server behind
    ``inner``: its response and its parsed batch-response."""
    forward = httpx.Request(
        "POST",
        request.url,
        headers={"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"},
        content=orjson.dumps({**body, "entry": kept}),
    )
    response = await inner.handle_async_request(forward)
    return response, orjson.loads(await response.aread())


class HapiLike(Forwarding):
    """Forwards to the test server, answering as HAPI JPA does: a delete of a resource that a
    Provenance names → 409 (a transaction holding one → 409, nothing stored); a 412 → 409."""

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = httpx.URL(base.rstrip("/") + "/")
        self.conflicts: list[str] = []

    async def _referenced(self, ref: str) -> bool:
        query = httpx.QueryParams({"target": ref, "_count": "1"})
        request = httpx.Request("GET", self.base.join("Provenance").copy_with(params=query))
        response = await self.inner.handle_async_request(request)
        bundle = orjson.loads(await response.aread())
        return bool(bundle.get("entry"))

    def _ref(self, url: httpx.URL | str) -> str:
        path = httpx.URL(str(url)).path if "://" in str(url) else str(url)
        parts = path.strip("/").split("/")
        return "/".join(parts[-2:])

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            ref = self._ref(request.url)
            if await self._referenced(ref):
                self.conflicts.append(f"DELETE {ref}")
                return _conflict(
                    f"HAPI-0550: Unable to delete {ref} because at least one "
                    "resource has a reference to this resource."
                )
        if request.method == "POST" and request.url.path.rstrip("/") == self.base.path.rstrip("/"):
            body = orjson.loads(request.content)
            entries = body.get("entry") or []
            refused = [
                i
                for i, entry in enumerate(entries)
                if (entry.get("request") or {}).get("method") == "DELETE"
                and await self._referenced(self._ref(entry["request"]["url"]))
            ]
            if refused and body.get("type") == "transaction":
                self.conflicts.append("transaction DELETE")
                return _conflict("HAPI-0550: Unable to delete: referenced")
            if body.get("type") == "batch":
                return await self._batch(request, body, refused)
        response = await self.inner.handle_async_request(request)
        if response.status_code == 412:
            await response.aread()
            self.conflicts.append(f"{request.method} 412")
            return _conflict("HAPI-0989: Trying to update but this is not the current version")
        return response

    async def _batch(
        self, request: httpx.Request, body: Json, refused: list[int]
    ) -> httpx.Response:
        """A batch: the refused deletes answered 409 in place, the rest forwarded, each 412
        entry answered 409."""
        entries = body.get("entry") or []
        kept = [e for i, e in enumerate(entries) if i not in refused]
        response, answer = await forward_entries(self.inner, request, body, kept)
        answers = iter(answer.get("entry") or [])
        out: list[Json] = []
        conflict = {
            "status": "409 Conflict",
            "outcome": orjson.loads(_conflict("HAPI-0989 / HAPI-0550").content),
        }
        for i in range(len(entries)):
            if i in refused:
                self.conflicts.append("batch DELETE")
                out.append({"response": conflict})
                continue
            entry = next(answers)
            if str((entry.get("response") or {}).get("status", "")).startswith("412"):
                self.conflicts.append("batch 412")
                entry = {"response": conflict}
            out.append(entry)
        return httpx.Response(
            response.status_code,
            content=orjson.dumps({**answer, "entry": out}),
            headers={"Content-Type": "application/fhir+json"},
        )


# case → (test-server profile, what the client learnt first: a batch where no transaction)
CASES: dict[str, tuple[str, tuple[Refused, ...]]] = {
    "transaction": ("full", ()),
    "batch": ("full", (Refused("transaction"),)),
    "single requests": ("no-transaction", ()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_adverse_event_named_by_a_provenance_is_left_and_the_rest_written(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile, learn = CASES[case]
    load(fhir_base, responder(dvt_after_cycle=2, fast_admin=True))
    fhir_server.set_profile(profile)
    first = run_once(fhir_base, transport=HapiLike(fhir_base), learn=learn)
    assert first.status is RunStatus.WRITTEN, first.error
    before = _stored(fhir_server, profile)
    events = [r for r in before if r.startswith("AdverseEvent/")]
    assert len(events) == 1

    _mark_dvt(fhir_base, fhir_server, profile, "entered-in-error")
    transport = HapiLike(fhir_base)
    run = run_once(fhir_base, transport=transport, learn=learn)
    assert transport.conflicts, "the server never refused the delete"
    assert run.status is RunStatus.WRITTEN, run.error
    after = _stored(fhir_server, profile)
    assert events[0] in after  # left: the server keeps it
    # the other conclusions drawn from the DVT were withdrawn (rate DetectedIssues, TEE flag...)
    retired = [r for r, (_, s) in after.items() if s == "entered-in-error"]
    assert retired, after
    messages = [n.message() for n in run.not_written]
    assert any(m.startswith("AdverseEvent ") and "not withdrawn" in m for m in messages), messages
    withdrawn = {w.reference for w in run.written if w.action.value == "withdraw"}
    assert events[0] not in withdrawn

    fhir_server.reset_stats()
    rerun = run_once(fhir_base, transport=HapiLike(fhir_base), learn=learn)
    assert rerun.status is RunStatus.UNCHANGED, rerun.error
    assert fhir_server.stats()["committed_writes"] == 0
    assert any("not withdrawn" in n.message() for n in rerun.not_written)


class EditBeforeFirstWrite(HapiLike):
    """HAPI-like; before the first derived-resource write, someone else edits the latest TIS."""

    def __init__(self, base: str) -> None:
        super().__init__(base)
        self.edited = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        writes = request.method == "PUT" or (
            request.method == "POST"
            and (b'"transaction"' in request.content or b'"PUT"' in request.content)
        )
        if writes and not self.edited:
            self.edited = True
            base = str(self.base).rstrip("/")
            tis = search(base, "Observation", code=TIS)
            target = max(tis, key=lambda o: o["effectivePeriod"]["end"])
            target["note"] = [{"text": "edited by someone else"}]
            put = httpx.Request(
                "PUT",
                f"{base}/Observation/{target['id']}",
                content=orjson.dumps(target),
                headers={"Content-Type": "application/fhir+json"},
            )
            edit = await self.inner.handle_async_request(put)
            await edit.aread()
            assert edit.status_code == 200, edit.status_code
        return await super().handle_async_request(request)


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_if_match_conflict_answered_409_replans(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile, learn = CASES[case]
    load(fhir_base, responder())
    fhir_server.set_profile(profile)
    assert (
        run_once(fhir_base, transport=HapiLike(fhir_base), learn=learn).status is RunStatus.WRITTEN
    )
    fhir_server.set_profile("full")
    pga3 = httpx.get(f"{fhir_base}/Observation/pga3").json()
    pga3["valueQuantity"]["value"] = 1
    httpx.put(f"{fhir_base}/Observation/pga3", json=pga3).raise_for_status()
    fhir_server.set_profile(profile)

    transport = EditBeforeFirstWrite(fhir_base)
    result = run_once(fhir_base, transport=transport, learn=learn)
    assert any("412" in c for c in transport.conflicts), transport.conflicts
    assert result.status is RunStatus.WRITTEN, result.error
    fhir_server.set_profile("full")
    tis = search(fhir_base, "Observation", code=TIS)
    assert len(tis) == 3
    assert max(tis, key=lambda o: o["effectivePeriod"]["end"])["valueQuantity"]["value"] == 65
    fhir_server.set_profile(profile)
    assert (
        run_once(fhir_base, transport=HapiLike(fhir_base), learn=learn).status
        is RunStatus.UNCHANGED
    )


class RefusesEveryDelete(HapiLike):
    """HAPI-like, and every DELETE answered 409, as HAPI answers for a copy that another
    writer's Provenance names (every copy here, so the test does not hang on which of two
    random ids is the lower)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "DELETE":
            self.conflicts.append(f"DELETE {self._ref(request.url)}")
            return _conflict("HAPI-0550: Unable to delete: referenced")
        return await super().handle_async_request(request)


def test_a_raced_duplicate_the_server_will_not_delete_is_retired(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """The search-then-create race (tests/e2e/test_write_race.py) on a server that answers the
    delete of the extra copy 409: the copy is marked entered-in-error instead, and reported."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")

    async def race() -> tuple[PatientRun, PatientRun | None]:
        await _without_conditional_create(fhir_base)
        transport = SecondWriterFirst(lambda: _writer(fhir_base))
        transport.inner = RefusesEveryDelete(fhir_base)
        async with httpx.AsyncClient(transport=transport) as http:
            first = await _writer(fhir_base, http)
        return first, transport.second_run

    try:
        first, second = asyncio.run(race())
        assert second is not None and second.status is RunStatus.WRITTEN, second
        assert first.status is RunStatus.WRITTEN, first.error
        raced = [d for d in first.duplicates if d.startswith("Observation ")]
        assert raced, first.duplicates
        assert all("entered-in-error" in d and "409" in d for d in raced), raced
        fhir_server.set_profile("full")
        for rtype in ("Observation",):
            live: Counter[str] = Counter()
            for r in search(fhir_base, rtype, identifier=f"{DERIVED_SYSTEM}|"):
                if r.get("status") != "entered-in-error":
                    live.update(i["value"] for i in r["identifier"])
            assert set(live.values()) == {1}, live  # one live copy per identifier
        fhir_server.set_profile("no-transaction")
        fhir_server.reset_stats()
        third = run_once(fhir_base, transport=HapiLike(fhir_base))
        assert third.status is RunStatus.UNCHANGED, (third.status, third.error)
        assert fhir_server.stats()["committed_writes"] == 0
    finally:
        fhir_server.set_profile("full")


class AlwaysConflicting(Forwarding):
    """Answers every transaction 409 (a conflict that re-reading does not resolve)."""

    def __init__(self) -> None:
        super().__init__()
        self.transactions = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and b'"transaction"' in request.content:
            self.transactions += 1
            return _conflict("HAPI-0550: conflict")
        return await self.inner.handle_async_request(request)


def test_a_conflict_that_never_resolves_fails_the_run_and_says_why(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.reset_stats()
    transport = AlwaysConflicting()
    run = run_once(fhir_base, transport=transport)
    assert run.status is RunStatus.FAILED
    assert run.error_status == 409
    assert run.error is not None and "still conflicting" in run.error and "409" in run.error
    assert 1 < transport.transactions <= 10  # re-planned, a bounded number of times
    assert fhir_server.stats()["committed_writes"] == 0
