"""Answers shaped like real FHIR servers' (not the test server's), against the real engine.

A transport between fhirtis and the test server rewrites the answers the way vendors send them;
the run must give the same result and the same stored output as with the plain answers, and a
second run must commit nothing.

- **Searchsets** (Epic, Oracle Health, HAPI): an ``OperationOutcome`` entry with
  ``search.mode = outcome`` on every page (Epic's search warnings; R4 search.html#errors),
  no ``total`` (R4 Bundle.total 0..1), ``next`` links made opaque paging tokens relative to
  the base (``Observation?_getpages=…``, HAPI's shape), bodies gzip-compressed and typed
  ``application/json; charset=utf-8`` (R4 http.html#mime-type allows it).
- **Writes without bodies**: ``Prefer: return=minimal`` is the server's default for some
  (R4 http.html#ops: the server "may" return no body); Location (``…/_history/n``) and ETag only.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import httpx
import orjson

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.server import PatientRun, RunStatus, run_patient
from fhirtis.settings import Settings
from tests.e2e.test_faults import BundleRewriting, Forwarding
from tests.e2e.test_run import load, search
from tests.fhir.patients import responder
from tests.fhir_test_server import FhirTestServer

# Epic's 4101 (api.enablemyhealth.com/Errors): a warning that withholds nothing. One that
# withholds matches (``suppressed``) changes what the run may conclude: see
# tests/e2e/test_s24_search_outcomes.py and tests/e2e/test_s35pull_partial_read_withdraw.py
OUTCOME_ENTRY = {
    "resource": {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "warning",
                "code": "processing",
                "details": {"text": "Resource request returns no results."},
            }
        ],
    },
    "search": {"mode": "outcome"},
}


class VendorSearchsets(BundleRewriting):
    """Rewrites every searchset (alone or inside a batch response) as described above."""

    compress = True

    def __init__(self, base: str) -> None:
        super().__init__()
        self.base = base.rstrip("/")
        self.pages: dict[str, str] = {}  # opaque token -> the test server's next URL
        self.tokens = (f"tok{n}" for n in itertools.count())
        self.outcomes = 0

    def forwarded(self, request: httpx.Request) -> httpx.Request:
        token = request.url.params.get("_getpages")
        if token is None:
            return request
        return httpx.Request("GET", self.pages[token], headers=request.headers)

    def rewrite(self, bundle: dict[str, Any]) -> None:
        if bundle.get("type") == "searchset":
            bundle.pop("total", None)
            bundle.setdefault("entry", []).append(OUTCOME_ENTRY)
            self.outcomes += 1
            for link in bundle.get("link") or []:
                if link.get("relation") == "next":
                    token = next(self.tokens)
                    self.pages[token] = link["url"]
                    rtype = httpx.URL(link["url"]).path.rsplit("/", 1)[-1]
                    link["url"] = f"{rtype}?_getpages={token}"
                elif link.get("relation") != "self":
                    link["url"] = "urn:opaque"  # first/previous/last: fhirtis must not use them
        for entry in bundle.get("entry") or []:
            inner = entry.get("resource")
            if isinstance(inner, dict) and inner.get("resourceType") == "Bundle":
                self.rewrite(inner)


class MinimalWrites(Forwarding):
    """Answers every create and update with no body (Location and ETag kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.stripped = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        is_write = request.method in {"POST", "PUT"} and request.url.path.count("/") >= 2
        is_search = request.url.path.endswith("/_search")
        if is_write and not is_search and response.status_code in (200, 201):
            self.stripped += 1
            headers = {
                k: v
                for k, v in response.headers.items()
                if k.lower() not in {"content-length", "content-type", "content-encoding"}
            }
            return httpx.Response(response.status_code, headers=headers, content=b"")
        return httpx.Response(response.status_code, headers=response.headers, content=body)


def _run(base: str, transport: httpx.AsyncBaseTransport, page_size: int = 100) -> PatientRun:
    async def go() -> PatientRun:
        config = FhirClientConfig(base_url=base, page_size=page_size, retry_budget_seconds=5)
        async with (
            httpx.AsyncClient(transport=transport) as http,
            FhirClient(config, http=http) as client,
        ):
            return await run_patient(client, "p1", Settings(), write=True)

    return asyncio.run(go())


def _stored(base: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for rtype in ("Observation", "Flag", "DetectedIssue", "AdverseEvent"):
        out[rtype] = sorted(
            orjson.dumps(r.get("identifier"))
            for r in search(base, rtype)
            if "derived" in str(r.get("identifier"))
        )
    return out


def _provenance_targets(base: str) -> list[str]:
    return sorted(t["reference"] for p in search(base, "Provenance") for t in p["target"])


def test_vendor_searchsets_give_the_same_run(fhir_server: FhirTestServer, fhir_base: str) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    plain = _run(fhir_base, Forwarding())
    assert plain.status is RunStatus.WRITTEN, plain.error
    expected = _stored(fhir_base)
    fhir_server.reset()
    load(fhir_base, responder(dvt_after_cycle=2))
    transport = VendorSearchsets(fhir_base)
    shaped = _run(fhir_base, transport, page_size=3)  # small pages: many opaque next links
    assert shaped.status is RunStatus.WRITTEN, shaped.error
    assert transport.pages, "no page had a next link"
    assert transport.outcomes > len(transport.pages)
    assert plain.result is not None and shaped.result is not None
    assert shaped.result.evaluation == plain.result.evaluation
    assert [d.resource for d in shaped.result.derived] == [d.resource for d in plain.result.derived]
    # its outcome entries withhold nothing: no data, and nothing more to say
    assert shaped.result.issues == plain.result.issues
    assert _stored(fhir_base) == expected
    again = _run(fhir_base, VendorSearchsets(fhir_base), page_size=3)
    assert again.status is RunStatus.UNCHANGED, again.error


def test_writes_answered_without_a_body(fhir_server: FhirTestServer, fhir_base: str) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))  # one transaction, under the full profile
    fhir_server.set_profile("no-transaction")  # single requests: creates, updates, Provenance
    try:
        transport = MinimalWrites()
        first = _run(fhir_base, transport)
        assert first.status is RunStatus.WRITTEN, first.error
        assert transport.stripped > 0
        targets = _provenance_targets(fhir_base)
        assert targets and all(not t.startswith("urn:") for t in targets), targets
        assert _run(fhir_base, MinimalWrites()).status is RunStatus.UNCHANGED
    finally:
        fhir_server.set_profile("full")


class IgnoresIfNoneExist(Forwarding):
    """A server that does not know ``If-None-Exist`` (an unknown header is ignored, RFC 9110
    §5.1) and whose answer to the first create is lost after it was stored (read timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.creates = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        conditional = request.method == "POST" and "if-none-exist" in request.headers
        if conditional:
            headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"if-none-exist"]
            request = httpx.Request("POST", request.url, headers=headers, content=request.content)
        response = await self.inner.handle_async_request(request)
        if conditional:
            self.creates += 1
            if self.creates == 1:
                await response.aread()
                raise httpx.ReadTimeout("answer lost after the create", request=request)
        return response


def test_a_resent_conditional_create_on_a_server_ignoring_it_leaves_no_duplicate(
    fhir_server: FhirTestServer, fhir_base: str
) -> None:
    """The resend of a conditional create (retried as idempotent) creates a second copy where
    the server ignored ``If-None-Exist``; the run finds and removes it as after a plain
    create."""
    load(fhir_base, responder(dvt_after_cycle=2))
    fhir_server.set_profile("no-transaction")  # single requests, conditional creates declared
    try:
        transport = IgnoresIfNoneExist()
        first = _run(fhir_base, transport)
        assert first.status is RunStatus.WRITTEN, first.error
        assert transport.creates >= 2  # the lost create was sent again
        for rtype, identifiers in _stored(fhir_base).items():
            assert len(identifiers) == len(set(identifiers)), (rtype, identifiers)
        assert _run(fhir_base, Forwarding()).status is RunStatus.UNCHANGED
    finally:
        fhir_server.set_profile("full")
