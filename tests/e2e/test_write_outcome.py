"""What a writing run reports is what the server confirmed, not the plan: after a write that
failed part-way (``$myositis-evaluate`` said "created" for every planned resource when two were
stored), on a server that lacks a derived type (it said "Flag …: created" and then "Flag …: not
written"), and after a re-plan (it reported only the last attempt, so what the first attempt
created read "unchanged"). ``PatientRun.written`` holds each confirmed create, update and
withdrawal; a planned write the server did not confirm is said to be so."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fhirtis.api.evaluate import result_bundle
from fhirtis.cli.render import run_record
from fhirtis.fhir.plan import Action
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.api.test_evaluate_api import service
from tests.e2e.test_run import load, search
from tests.e2e.test_write_withdraw import DERIVED, DERIVED_SYSTEM
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Json = dict[str, Any]
WRITE = {"resourceType": "Parameters", "parameter": [{"name": "write", "valueBoolean": True}]}


def _is_derived_create(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path.rstrip("/").split("/")[-1] in DERIVED


class _Hooked(httpx.AsyncBaseTransport):
    """Forwards to the server; ``before`` may answer a request itself, ``after`` may replace
    the server's answer (or raise, the answer lost)."""

    def __init__(
        self,
        before: Callable[[httpx.Request], httpx.Response | None] | None = None,
        after: Callable[[httpx.Request, httpx.Response], httpx.Response | None] | None = None,
    ) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.before, self.after = before, after

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        if self.before is not None and (answer := self.before(request)) is not None:
            return answer
        response = await self.inner.handle_async_request(request)
        await response.aread()
        if self.after is not None and (replaced := self.after(request, response)) is not None:
            return replaced
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _run(base: str, transport: httpx.AsyncBaseTransport | None = None) -> PatientRun:
    async def go() -> PatientRun:
        config = FhirClientConfig(base_url=base, retry_budget_seconds=5)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(config, http=http) as client,
        ):
            return await run_patient(client, "p1", Settings(), write=True)

    return asyncio.run(go())


def _stored_identifiers(server: FhirTestServer, profile: str) -> dict[str, str]:
    """fhirtis identifier → ``Type/id`` of every stored derived resource."""
    server.set_profile("full")
    out: dict[str, str] = {}
    for rtype in DERIVED:
        for r in search(server.base_url, rtype, identifier=f"{DERIVED_SYSTEM}|"):
            idents = r["identifier"] if isinstance(r["identifier"], list) else [r["identifier"]]
            (ident,) = [i["value"] for i in idents if i["system"] == DERIVED_SYSTEM]
            out[ident] = f"{rtype}/{r['id']}"
    server.set_profile(profile)
    return out


def _said(run: PatientRun, word: str) -> set[str]:
    """The identifiers the HTTP answer says ``word`` of ("Type identifier: word")."""
    issues = result_bundle(run, write=True)["entry"][0]["resource"]["issue"]
    out = set()
    for issue in issues:
        text = issue.get("diagnostics", "")
        head, _, tail = text.partition(": ")
        if tail == word and " " in head:
            out.add(head.split(" ", 1)[1])
    return out


@pytest.mark.parametrize("profile", ["no-transaction", "oracle-like"])
def test_a_write_that_failed_part_way_reports_what_was_stored(
    fhir_server: FhirTestServer, fhir_base: str, profile: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    creates = {"n": 0}

    def third_fails(request: httpx.Request) -> httpx.Response | None:
        if _is_derived_create(request):
            creates["n"] += 1
            if creates["n"] == 3:
                outcome = {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "exception"}],
                }
                return httpx.Response(500, json=outcome)
        return None

    run = _run(fhir_base, _Hooked(before=third_fails))
    assert run.status is RunStatus.FAILED
    stored = _stored_identifiers(fhir_server, profile)
    assert len(stored) == 2
    assert {w.identifier for w in run.written} == set(stored)
    assert {w.reference for w in run.written} == set(stored.values())
    assert {w.action for w in run.written} == {Action.CREATE}
    assert _said(run, "created") == set(stored)  # not every planned create
    unconfirmed = {i for _, i, a in run.planned if a is Action.CREATE} - set(stored)
    not_written = {n.identifier for n in run.not_written}
    assert _said(run, "not created (not confirmed by the server)") == unconfirmed - not_written
    record = run_record(run)  # fhirtis run --json
    assert sorted(w["identifier"] for w in record["written"]) == sorted(stored)
    assert {w["action"] for w in record["written"]} == {"created"}


def test_a_type_the_server_lacks_is_never_said_created(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("oracle-like")

    async def go() -> httpx.Response:
        async with service(fhir_base) as api:
            return await api.post(
                "/Patient/p1/$myositis-evaluate", headers={"Authorization": "Bearer t"}, json=WRITE
            )

    answer = asyncio.run(go())
    assert answer.status_code == 200
    texts = [i.get("diagnostics", "") for i in answer.json()["entry"][0]["resource"]["issue"]]
    lacking = ("Flag ", "DetectedIssue ", "AdverseEvent ")
    assert [t for t in texts if t.startswith(lacking) and "not written" in t]
    assert not [t for t in texts if t.startswith(lacking) and t.endswith(": created")]
    stored = _stored_identifiers(fhir_server, "oracle-like")
    created = [t for t in texts if t.endswith(": created")]
    assert len(created) == len(stored) > 0


def test_what_an_attempt_before_a_replan_wrote_is_reported(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """The third create is committed, then its answer is lost: the run re-reads, re-plans
    (what the first attempt made is unchanged now) and writes the rest; it made them all."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("oracle-like")
    creates = {"n": 0}

    def lose_third(request: httpx.Request, response: httpx.Response) -> httpx.Response | None:
        if _is_derived_create(request):
            creates["n"] += 1
            if creates["n"] == 3:
                raise httpx.ReadTimeout("lost", request=request)
        return None

    run = _run(fhir_base, _Hooked(after=lose_third))
    assert run.status is RunStatus.WRITTEN, run.error
    stored = _stored_identifiers(fhir_server, "oracle-like")
    assert {w.identifier for w in run.written} == set(stored)
    assert _said(run, "created") == set(stored)
    assert not _said(run, "unchanged")
