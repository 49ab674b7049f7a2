"""Faults mid-write against the real engine: re-running converges, never duplicates."""

from __future__ import annotations

import asyncio
import gzip
from collections import Counter
from collections.abc import Callable

import httpx
import orjson
import pytest

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_run import load, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

Hook = Callable[[httpx.Request, int], httpx.Response | None]


class Forwarding(httpx.AsyncBaseTransport):
    """Forwards every request to the real server (subclasses interfere with some)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class BundleRewriting(Forwarding):
    """Forwards every request to the real server (as :meth:`forwarded` makes it) and lets
    :meth:`rewrite` change each Bundle it answers (a searchset, a batch response), as a vendor's
    server would shape it; with ``compress``, the Bundle is sent gzip-compressed and typed
    ``application/json; charset=utf-8``."""

    compress = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(self.forwarded(request))
        body = await response.aread()
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
            return httpx.Response(response.status_code, headers=response.headers, content=body)
        self.rewrite(data)
        replaced = {"content-length", "content-encoding"}
        if self.compress:
            replaced.add("content-type")
        headers = {k: v for k, v in response.headers.items() if k.lower() not in replaced}
        content = orjson.dumps(data)
        if self.compress:
            headers["Content-Type"] = "application/json; charset=utf-8"
            headers["Content-Encoding"] = "gzip"
            content = gzip.compress(content)
        return httpx.Response(response.status_code, headers=headers, content=content)

    def forwarded(self, request: httpx.Request) -> httpx.Request:
        """The request sent to the real server for ``request`` (itself here)."""
        return request

    def rewrite(self, bundle: dict[str, object]) -> None:
        """Change ``bundle`` in place (nothing here)."""


class FaultyTransport(Forwarding):
    """Forwards to the real server; ``before``/``after`` may interfere with transactions."""

    def __init__(self, before: Hook | None = None, drop_after: bool = False) -> None:
        super().__init__()
        self.before = before
        self.drop_after = drop_after
        self.transactions = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_tx = request.method == "POST" and b'"transaction"' in request.content
        if is_tx:
            self.transactions += 1
            if self.before is not None:
                forged = self.before(request, self.transactions)
                if forged is not None:
                    return forged
        response = await self.inner.handle_async_request(request)
        if is_tx and self.drop_after and self.transactions == 1:
            await response.aread()
            raise httpx.ReadTimeout(
                "connection dropped after the request was sent", request=request
            )
        return response


def run_with(base: str, transport: httpx.AsyncBaseTransport, *, write: bool = True) -> PatientRun:
    async def go() -> PatientRun:
        config = FhirClientConfig(base_url=base, retry_budget_seconds=5)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(config, http=http) as client,
        ):
            return await run_patient(client, "p1", Settings(), write=write)

    return asyncio.run(go())


def _derived_counts(base: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for rtype in ("Observation", "Flag", "DetectedIssue", "AdverseEvent", "Provenance"):
        resources = search(base, rtype)
        out[rtype] = sum(
            1 for r in resources if rtype == "Provenance" or "derived" in str(r.get("identifier"))
        )
    return out


def test_connection_dropped_after_sending_converges(fhir_base: str) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    transport = FaultyTransport(drop_after=True)
    result = run_with(fhir_base, transport)
    # The transaction reached the server; the client only learnt that by re-reading.
    assert result.status is RunStatus.WRITTEN, result.error
    assert transport.transactions == 1
    counts = _derived_counts(fhir_base)
    assert counts["Provenance"] == 1
    clean = run_with(fhir_base, FaultyTransport())
    assert clean.status is RunStatus.UNCHANGED
    assert _derived_counts(fhir_base) == counts


def test_rejected_transaction_reports_incomplete_then_converges(fhir_base: str) -> None:
    load(fhir_base, responder())

    def reject(request: httpx.Request, n: int) -> httpx.Response | None:
        return httpx.Response(
            500,
            json={
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "exception"}],
            },
            request=request,
        )

    failed = run_with(fhir_base, FaultyTransport(before=reject))
    assert failed.status is RunStatus.FAILED
    assert failed.error is not None and "500" in failed.error
    assert _derived_counts(fhir_base)["Provenance"] == 0
    again = run_with(fhir_base, FaultyTransport())
    assert again.status is RunStatus.WRITTEN
    first_counts = _derived_counts(fhir_base)
    assert first_counts["Provenance"] == 1
    assert run_with(fhir_base, FaultyTransport()).status is RunStatus.UNCHANGED
    assert _derived_counts(fhir_base) == first_counts


def test_concurrent_change_412_replans(fhir_base: str, fhir_server: FhirTestServer) -> None:
    load(fhir_base, responder())
    assert run_with(fhir_base, FaultyTransport()).status is RunStatus.WRITTEN
    pga3 = httpx.get(f"{fhir_base}/Observation/pga3").json()
    pga3["valueQuantity"]["value"] = 1
    httpx.put(f"{fhir_base}/Observation/pga3", json=pga3).raise_for_status()

    def meddle(request: httpx.Request, n: int) -> httpx.Response | None:
        if n == 1:  # someone else updates a derived TIS between our read and our write
            tis = search(
                fhir_base, "Observation", code="http://fhirtis.org/fhir/CodeSystem/fhirtis|tis"
            )
            target = max(tis, key=lambda o: o["effectivePeriod"]["end"])
            target["note"] = [{"text": "edited by someone else"}]
            httpx.put(f"{fhir_base}/Observation/{target['id']}", json=target).raise_for_status()
        return None

    transport = FaultyTransport(before=meddle)
    result = run_with(fhir_base, transport)
    assert result.status is RunStatus.WRITTEN, result.error
    assert transport.transactions == 2  # 412 on the first, re-planned, then written
    tis = search(fhir_base, "Observation", code="http://fhirtis.org/fhir/CodeSystem/fhirtis|tis")
    assert len(tis) == 3
    assert max(tis, key=lambda o: o["effectivePeriod"]["end"])["valueQuantity"]["value"] == 65


class DropFirstAnswer(Forwarding):
    """Forwards to the real server; the answer to the first request ``matches`` picks is lost
    after the server has processed it (a dropped connection)."""

    def __init__(self, matches: Callable[[httpx.Request], bool]) -> None:
        super().__init__()
        self.matches = matches
        self.dropped: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if not self.dropped and self.matches(request):
            await response.aread()
            self.dropped.append(f"{request.method} {request.url.path}")
            raise httpx.ReadTimeout(
                "connection dropped after the request was sent", request=request
            )
        return response


def _provenance_targets(base: str) -> Counter[str]:
    """How many Provenances name each target."""
    return Counter(t["reference"] for p in search(base, "Provenance") for t in p.get("target", []))


def _derived_observations(base: str) -> set[str]:
    return {
        f"Observation/{o['id']}"
        for o in search(base, "Observation")
        if "derived" in str(o.get("identifier"))
    }


@pytest.mark.parametrize("profile", ["oracle-like", "no-transaction"])
def test_a_create_whose_answer_was_lost_is_still_named_by_a_provenance(
    fhir_base: str, fhir_server: FhirTestServer, profile: str
) -> None:
    """Single requests; the first create's answer is lost. Plain creates (oracle-like: no
    conditional create): the re-plan finds it made (unchanged now). Conditional creates
    (no-transaction): the retry is answered 200 "exists". Either way the run's Provenance names
    it with the rest, so no derived resource is left without one."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile(profile)
    transport = DropFirstAnswer(
        lambda r: r.method == "POST" and r.url.path.endswith("/Observation")
    )
    result = run_with(fhir_base, transport)
    assert transport.dropped, "the fault was not injected"
    assert result.status is RunStatus.WRITTEN, result.error
    fhir_server.set_profile("full")
    derived = _derived_observations(fhir_base)
    assert derived and derived <= set(_provenance_targets(fhir_base))


def test_an_update_whose_answer_was_lost_is_still_named_by_a_provenance(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """Single requests: the If-Match update's answer is lost, its retry meets 412 (the update
    was made), the re-plan finds it unchanged: the run's Provenance still names it."""
    load(fhir_base, responder(dvt_after_cycle=2))
    assert run_with(fhir_base, FaultyTransport()).status is RunStatus.WRITTEN
    tis = search(fhir_base, "Observation", code="http://fhirtis.org/fhir/CodeSystem/fhirtis|tis")
    tis[0]["note"] = [{"text": "edited by someone else"}]
    httpx.put(f"{fhir_base}/Observation/{tis[0]['id']}", json=tis[0]).raise_for_status()
    edited = f"Observation/{tis[0]['id']}"
    assert _provenance_targets(fhir_base)[edited] == 1  # the first run's
    fhir_server.set_profile("no-transaction")
    transport = DropFirstAnswer(lambda r: r.method == "PUT" and r.url.path.endswith(edited))
    result = run_with(fhir_base, transport)
    assert transport.dropped, "the fault was not injected"
    assert result.status is RunStatus.WRITTEN, result.error
    fhir_server.set_profile("full")
    notes = httpx.get(f"{fhir_base}/{edited}").json().get("note", [])
    assert {"text": "edited by someone else"} not in notes  # fhirtis's content again
    assert _provenance_targets(fhir_base)[edited] == 2


class BatchRefusingFlags(Forwarding):
    """Forwards to the real server (its statement answering 404), but refuses transactions
    (405) and, inside a batch, every Flag create (its entry answered 405 not-supported, the
    others processed): a server whose batch takes some types and not others."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/metadata"):
            return httpx.Response(404, request=request)
        if request.method != "POST" or not request.url.path.rstrip("/").endswith("/fhir"):
            return await self.inner.handle_async_request(request)
        bundle = orjson.loads(request.content)
        if bundle.get("type") == "transaction":
            return httpx.Response(405, json=_NOT_SUPPORTED, request=request)
        entries = bundle.get("entry", [])
        refused = [
            i
            for i, e in enumerate(entries)
            if e["request"]["method"] == "POST" and e["request"]["url"] == "Flag"
        ]
        kept = {**bundle, "entry": [e for i, e in enumerate(entries) if i not in refused]}
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=orjson.dumps(kept)
        )
        forwarded.headers["Content-Length"] = str(len(forwarded.content))
        response = await self.inner.handle_async_request(forwarded)
        answered = orjson.loads(await response.aread())
        answers = iter(answered.get("entry", []))
        spliced = [
            {"response": {"status": "405", "outcome": _NOT_SUPPORTED}}
            if i in refused
            else next(answers)
            for i in range(len(entries))
        ]
        return httpx.Response(200, json={**answered, "entry": spliced}, request=request)


_NOT_SUPPORTED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-supported"}],
}


def test_what_a_batch_wrote_is_named_even_when_other_entries_were_refused(
    fhir_base: str,
) -> None:
    """One batch writes the Observations and is refused the Flag: the run learns the refusal
    and reports the Flag not written, and the Observations that batch wrote are named by a
    Provenance (they were left unnamed: the refusal was raised before the Provenance)."""
    load(fhir_base, responder(dvt_after_cycle=2))
    result = run_with(fhir_base, BatchRefusingFlags())
    assert result.status is RunStatus.WRITTEN, result.error
    assert {n.resource_type for n in result.not_written} == {"Flag"}
    derived = _derived_observations(fhir_base)
    assert derived and derived <= set(_provenance_targets(fhir_base))


class FailingProvenance(Forwarding):
    """Forwards to the real server, but every Provenance create gets a 500 (not a refusal)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/Provenance"):
            return httpx.Response(500, json=_NOT_SUPPORTED, request=request)
        return await self.inner.handle_async_request(request)


def test_a_rerun_names_stored_output_that_no_provenance_names(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """Every derived resource written, its Provenance lost (a 500; a kill would do the same):
    the next run, a plain ``fhirtis run`` as much as a registry's, finds everything unchanged,
    finds that no Provenance names it, and posts one that does; the run after writes nothing."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")
    failed = run_with(fhir_base, FailingProvenance())
    assert failed.status is RunStatus.FAILED
    fhir_server.set_profile("full")
    derived = _derived_observations(fhir_base)
    assert derived and not _provenance_targets(fhir_base)

    named = run_with(fhir_base, httpx.AsyncHTTPTransport())
    assert named.status is RunStatus.WRITTEN, named.error
    assert derived <= set(_provenance_targets(fhir_base))
    again = run_with(fhir_base, httpx.AsyncHTTPTransport())  # all named now: nothing written
    assert again.status is RunStatus.UNCHANGED
    assert len(search(fhir_base, "Provenance")) == 1


class ProvenanceSearchDown(Forwarding):
    """Forwards to the real server, but a search of Provenance never connects."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/Provenance"):
            raise httpx.ConnectError("unreachable", request=request)
        return await self.inner.handle_async_request(request)


def test_a_failed_provenance_check_leaves_the_run_as_it_was(fhir_base: str) -> None:
    """The check for unnamed output is best effort: a search that cannot be made is logged,
    and the patient's run goes on (nothing to write here: unchanged), never an exception."""
    load(fhir_base, responder(dvt_after_cycle=2))
    assert run_with(fhir_base, FaultyTransport()).status is RunStatus.WRITTEN

    async def rerun() -> PatientRun:
        config = FhirClientConfig(base_url=fhir_base, retry_max_attempts=1)
        async with (
            httpx.AsyncClient(transport=ProvenanceSearchDown()) as http,
            FhirClient(config, http=http) as client,
        ):
            return await run_patient(client, "p1", Settings(), write=True)

    assert asyncio.run(rerun()).status is RunStatus.UNCHANGED


class CreatedAnswered200(Forwarding):
    """Forwards to the real server, but answers a create's 201 as 200 (a server that says
    "OK" for a create: still a success, and the resource was made)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and response.status_code == 201:
            await response.aread()
            return httpx.Response(
                200, headers=response.headers, content=response.content, request=request
            )
        return response


def test_a_plain_create_answered_200_is_named_by_the_provenance(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """Single plain creates (oracle-like: no conditional create) answered 200, not 201: each
    made a resource, so the run's Provenance names every derived resource."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("oracle-like")
    result = run_with(fhir_base, CreatedAnswered200())
    assert result.status is RunStatus.WRITTEN, result.error
    fhir_server.set_profile("full")
    derived = _derived_observations(fhir_base)
    assert derived and derived <= set(_provenance_targets(fhir_base))


class BatchWithoutConditionalCreate(Forwarding):
    """Forwards to the real server, but its CapabilityStatement offers batch without transaction
    or conditional create, and every batch entry it creates is answered "200 OK"."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "GET" and request.url.path.endswith("/metadata"):
            statement = orjson.loads(await response.aread())
            for rest in statement.get("rest", []):
                rest["interaction"] = [
                    i for i in rest.get("interaction", []) if i.get("code") != "transaction"
                ]
                for resource in rest.get("resource", []):
                    resource["conditionalCreate"] = False
            return httpx.Response(200, json=statement, request=request)
        if request.method == "POST" and request.url.path.rstrip("/").endswith("/fhir"):
            answer = orjson.loads(await response.aread())
            for entry in answer.get("entry", []):
                if str(entry.get("response", {}).get("status", "")).startswith("201"):
                    entry["response"]["status"] = "200 OK"
            return httpx.Response(response.status_code, json=answer, request=request)
        return response


def test_a_batch_create_answered_200_is_named_by_the_provenance(fhir_base: str) -> None:
    """A batch of plain creates (no transaction, no conditional create) whose entries are
    answered 200, not 201: each made a resource, so the Provenance names every one."""
    load(fhir_base, responder(dvt_after_cycle=2))
    transport = BatchWithoutConditionalCreate()
    result = run_with(fhir_base, transport)
    assert result.status is RunStatus.WRITTEN, result.error
    derived = _derived_observations(fhir_base)
    assert derived and derived <= set(_provenance_targets(fhir_base))


class CreatedWithoutLocation(Forwarding):
    """Forwards to the real server, but drops the Location of every create's answer (R4 says a
    server SHALL send it; some gateways strip it); the body still holds the resource made."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and response.status_code == 201:
            body = await response.aread()
            headers = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in {"location", "content-location", "content-encoding"}
            }
            return httpx.Response(201, headers=headers, content=body, request=request)
        return response


def test_a_create_answered_without_location_is_named_by_the_id_it_answered(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    """Single plain creates answered without a Location: the Provenance names what each made by
    the id in the answer's body, never by the Bundle-local urn:uuid that no server resolves."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("oracle-like")
    result = run_with(fhir_base, CreatedWithoutLocation())
    assert result.status is RunStatus.WRITTEN, result.error
    fhir_server.set_profile("full")
    targets = set(_provenance_targets(fhir_base))
    assert not any(t.startswith("urn:") for t in targets)
    derived = _derived_observations(fhir_base)
    assert derived and derived <= targets
