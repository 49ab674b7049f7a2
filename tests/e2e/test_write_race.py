"""The search-then-create race, run for real: a server without conditional create, and a second
writer of the same patient that creates everything between the first writer's search by
identifier and its first create. fhirtis's documented handling (``fhirtis.pipeline.write``):
after its creates it searches their identifiers again, keeps the copy with the lowest id and
deletes the others where the server allows delete, else reports the duplicates; each write that
changed something ends with exactly one Provenance; the next run changes nothing."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from fhirtis.api.evaluate import result_bundle
from fhirtis.cli.render import run_record
from fhirtis.io import FhirClient, FhirClientConfig, Refused
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
DERIVED_SYSTEM = "http://fhirtis.org/fhir/identifier/derived"


def _is_write(request: httpx.Request) -> bool:
    """A create, update or delete, or a Bundle with one (not a batch of searches)."""
    if request.method not in {"POST", "PUT", "DELETE"}:
        return False
    if request.method == "POST" and request.url.path.rstrip("/").endswith("/fhir"):
        body = orjson.loads(request.content)
        return any(e["request"]["method"] != "GET" for e in body.get("entry", []))
    return True


class SecondWriterFirst(httpx.AsyncBaseTransport):
    """Forwards to the server; before the first write it lets ``second`` (another writer of the
    same patient, with its own client) run to completion — the race, deterministically."""

    def __init__(self, second: Any) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.second = second
        self.second_run: PatientRun | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.second_run is None and _is_write(request):
            self.second_run = await self.second()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def _writer(base: str, http: httpx.AsyncClient | None = None) -> PatientRun:
    async with FhirClient(FhirClientConfig(base_url=base), http=http) as client:
        return await run_patient(client, "p1", Settings(), write=True)


async def _without_conditional_create(base: str) -> None:
    """The server's statement, plus: it has no conditional create of Observation (as if it
    had refused one), so fhirtis searches then creates."""
    async with FhirClient(FhirClientConfig(base_url=base)) as client:
        await client.capabilities()
        client.learn(Refused("conditional-create", "Observation"))


def _derived_copies(server: FhirTestServer, profile: str) -> Counter[str]:
    """How many stored copies each derived identifier has (every derived type), searched on
    the full profile (oracle-like has no identifier search), then back to ``profile``."""
    base = server.base_url
    server.set_profile("full")
    out: Counter[str] = Counter()
    for rtype in ("Observation", "Flag", "DetectedIssue", "AdverseEvent"):
        for r in search(base, rtype, identifier=f"{DERIVED_SYSTEM}|"):
            idents = r.get("identifier", [])
            for ident in idents if isinstance(idents, list) else [idents]:
                if ident.get("system") == DERIVED_SYSTEM:
                    out[f"{rtype} {ident['value']}"] += 1
    server.set_profile(profile)
    return out


# (profile, conditional create of Observation learned away, delete of Observation allowed)
CASES = {
    "oracle-like": ("oracle-like", False, False),  # singles; Observation delete refused (405)
    "no-transaction": ("no-transaction", True, True),  # singles, delete allowed
    "full": ("full", True, True),  # a batch of plain creates (no transaction without conditional)
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_writers_race_between_search_and_create(
    fhir_server: FhirTestServer, fhir_base: str, case: str
) -> None:
    profile, learn, delete_allowed = CASES[case]
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)

    async def race() -> tuple[PatientRun, PatientRun | None]:
        if learn:
            await _without_conditional_create(fhir_base)
        transport = SecondWriterFirst(lambda: _writer(fhir_base))
        async with httpx.AsyncClient(transport=transport) as http:
            first = await _writer(fhir_base, http)
        return first, transport.second_run

    first, second = asyncio.run(race())
    assert second is not None, "the second writer never ran: no write was sent"
    assert second.status is RunStatus.WRITTEN, second.error
    assert first.status is RunStatus.WRITTEN, first.error
    assert not second.duplicates  # it ran alone

    copies = _derived_copies(fhir_server, profile)
    raced = {k for k in copies if k.startswith("Observation ")}
    assert raced, "no derived Observation was written"
    if delete_allowed:
        assert set(copies.values()) == {1}, "a duplicate was left"
        assert not first.duplicates
    else:
        # Oracle-like refuses DELETE on Observation: every raced Observation has two copies,
        # and the run that found them says so, per resource (no patient data in the message).
        assert {copies[k] for k in raced} == {2}
        assert len(first.duplicates) == len(raced)
        assert all(any(d.startswith(f"{k}: 2 copies") for d in first.duplicates) for k in raced)
        assert all("the server refuses delete" in d for d in first.duplicates)
        assert run_record(first)["duplicates"] == first.duplicates  # fhirtis run --json
        issues = result_bundle(first, write=True)["entry"][0]["resource"]["issue"]
        dup_issues = [i for i in issues if i["code"] == "duplicate"]  # $myositis-evaluate
        assert [i["diagnostics"] for i in dup_issues] == first.duplicates
        assert {i["severity"] for i in dup_issues} == {"warning"}

    # Exactly one Provenance per write that changed something: two writers, two Provenances.
    provenances = search(fhir_base, "Provenance")
    assert len(provenances) == 2
    targets = [t["reference"] for p in provenances for t in p["target"]]
    assert len(targets) == len(set(targets)), "a resource named by both Provenances"

    # The next run converges: nothing left to write, nothing committed.
    fhir_server.reset_stats()
    third = asyncio.run(_writer(fhir_base))
    assert third.status is RunStatus.UNCHANGED, (third.status, third.error)
    assert fhir_server.stats()["committed_writes"] == 0
    assert _derived_copies(fhir_server, profile) == copies


def test_concurrent_writers_leave_no_duplicate(fhir_server: FhirTestServer, fhir_base: str) -> None:
    """Two writers started together (whatever the interleaving): no duplicate is left, and there
    are as many Provenances as writes that changed something."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")

    async def both() -> list[PatientRun]:
        await _without_conditional_create(fhir_base)
        return list(await asyncio.gather(_writer(fhir_base), _writer(fhir_base)))

    runs = asyncio.run(both())
    assert all(r.status in {RunStatus.WRITTEN, RunStatus.UNCHANGED} for r in runs), runs
    assert set(_derived_copies(fhir_server, "no-transaction").values()) == {1}
    written = sum(r.status is RunStatus.WRITTEN for r in runs)
    assert 1 <= written <= 2
    assert len(search(fhir_base, "Provenance")) == written


def _ignoring_if_none_exist(request: httpx.Request) -> httpx.Request:
    """``request``, its transaction's ``ifNoneExist`` left out: a server that ignores them."""
    if request.method == "POST" and request.url.path.rstrip("/").endswith("/fhir"):
        body = orjson.loads(request.content)
        if body.get("type") == "transaction":
            for entry in body["entry"]:
                entry["request"].pop("ifNoneExist", None)
            headers = {k: v for k, v in request.headers.items() if k.lower() != "content-length"}
            return httpx.Request("POST", request.url, headers=headers, content=orjson.dumps(body))
    return request


class IgnoresIfNoneExist(httpx.AsyncBaseTransport):
    """A server whose transactions ignore ``ifNoneExist``; with ``second``, another writer of
    the same patient runs to completion just before the first transaction (the race)."""

    def __init__(self, second: Any = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.second = second
        self.second_run: PatientRun | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        sent = _ignoring_if_none_exist(request)
        if self.second is not None and self.second_run is None and sent is not request:
            self.second_run = await self.second()
        return await self.inner.handle_async_request(sent)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.mark.parametrize("profile", ["full", "google-like"])
def test_a_transaction_on_a_server_ignoring_if_none_exist_leaves_no_duplicate(
    fhir_server: FhirTestServer, fhir_base: str, profile: str
) -> None:
    """The duplicate check runs after a transaction too: a server that ignores ``ifNoneExist``
    creates the raced resources twice; the extra copies (higher id) are deleted."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)

    async def second() -> PatientRun:
        async with httpx.AsyncClient(transport=IgnoresIfNoneExist()) as http:
            return await _writer(fhir_base, http)

    async def race() -> tuple[PatientRun, PatientRun | None]:
        transport = IgnoresIfNoneExist(second)
        async with httpx.AsyncClient(transport=transport) as http:
            first = await _writer(fhir_base, http)
        return first, transport.second_run

    first, other = asyncio.run(race())
    assert other is not None and other.status is RunStatus.WRITTEN, other
    assert first.status is RunStatus.WRITTEN, first.error
    copies = _derived_copies(fhir_server, profile)
    assert copies and set(copies.values()) == {1}, "a duplicate was left"

    fhir_server.reset_stats()
    third = asyncio.run(_writer(fhir_base))
    assert third.status is RunStatus.UNCHANGED, (third.status, third.error)
    assert fhir_server.stats()["committed_writes"] == 0
