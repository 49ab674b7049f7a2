"""A server that searches by ``POST [type]/_search`` only (Redox's FHIR API: "Redox supports the
POST method for searching", https://docs.redoxengine.com/basics/redox-fhir-api/understanding-fhir-search/;
every resource's search is documented as ``post/[type]/_search``): a GET search is refused 405.
The FHIR extension ``capabilitystatement-search-mode`` (on ``rest.resource``, GET | POST |
both: http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-mode) lets a server
say so. fhirtis reads such a server whole, by POST, and remembers it."""

from __future__ import annotations

import httpx
import orjson
import pytest

from fhirtis.fhir.plan import Action
from fhirtis.io._capabilities import CACHE
from fhirtis.pipeline.server import RunStatus
from tests.e2e.test_faults import Forwarding, run_with
from tests.e2e.test_run import load
from tests.fhir.patients import responder

SEARCH_MODE = "http://hl7.org/fhir/StructureDefinition/capabilitystatement-search-mode"
_NOT_ALLOWED = {
    "resourceType": "OperationOutcome",
    "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "use POST _search"}],
}


class PostSearchOnly(Forwarding):
    """Forwards to the real server, without batch or transaction, refusing every GET search
    (405) but the server's own paging links (followed by GET, as FHIR search paging is);
    ``declare``: the statement says ``search-mode POST`` on every resource."""

    def __init__(self, declare: bool) -> None:
        super().__init__()
        self.declare = declare
        self.get_searches: list[str] = []
        self.post_searches: list[httpx.URL] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path.endswith("/metadata"):
            response = await self.inner.handle_async_request(request)
            statement = orjson.loads(await response.aread())
            rest = statement["rest"][0]
            rest["interaction"] = [
                i for i in rest.get("interaction", []) if i["code"] not in ("batch", "transaction")
            ]
            if self.declare:
                for resource in rest["resource"]:
                    resource["extension"] = [
                        *resource.get("extension", []),
                        {"url": SEARCH_MODE, "valueCode": "POST"},
                    ]
            return httpx.Response(200, json=statement, request=request)
        segments = path.rstrip("/").split("/fhir/", 1)[-1].split("/")
        paging = "_offset" in request.url.query.decode()
        if request.method == "GET" and len(segments) == 1 and not paging:
            # each search (a type's codes may take more than one: the Observations')
            self.get_searches.append(f"{segments[0]}?{request.url.query.decode()}")
            return httpx.Response(405, json=_NOT_ALLOWED, request=request)
        if request.method == "POST" and segments[-1] == "_search":
            self.post_searches.append(request.url)
        return await self.inner.handle_async_request(request)


@pytest.mark.parametrize("declare", [False, True], ids=["learned", "declared"])
def test_a_server_that_searches_by_post_only_is_read_whole(fhir_base: str, declare: bool) -> None:
    load(fhir_base, responder(dvt_after_cycle=2))
    expected = run_with(fhir_base, Forwarding(), write=False)
    assert expected.status is RunStatus.DRY_RUN, expected.error
    CACHE.forget()
    transport = PostSearchOnly(declare)
    first = run_with(fhir_base, transport, write=True)
    assert first.status is RunStatus.WRITTEN, first.error
    assert first.result == expected.result  # the same facts, hence the same evaluation
    assert transport.post_searches
    assert all(not u.query for u in transport.post_searches)  # no patient id in any URL
    if declare:
        assert transport.get_searches == []
    else:  # each search refused once, then searched by POST
        assert len(transport.get_searches) == len(set(transport.get_searches))
    asked = len(transport.post_searches)
    again = run_with(fhir_base, transport, write=True)
    assert again.status is RunStatus.UNCHANGED, again.error
    assert not [a for _, _, a in again.planned if a is not Action.UNCHANGED]
    assert len(transport.post_searches) > asked
    assert len(transport.get_searches) == len(set(transport.get_searches))


class NoDeviceSearch(PostSearchOnly):
    """As :class:`PostSearchOnly`, and a Device search is refused by POST too (405)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/Device/_search"):
            return httpx.Response(405, json=_NOT_ALLOWED, request=request)
        return await super().handle_async_request(request)


def test_a_type_refused_by_get_and_by_post_is_reported_not_read(fhir_base: str) -> None:
    """Not by GET, not by POST: the server does not search that type at all (learned as such,
    the evaluation goes on without it and says so), never a crash or a silent gap."""
    load(fhir_base, responder(dvt_after_cycle=2))
    transport = NoDeviceSearch(declare=False)
    run = run_with(fhir_base, transport, write=False)
    assert run.status is RunStatus.DRY_RUN, run.error
    assert run.result is not None
    said = " ".join(i.diagnostics for i in run.result.issues)
    assert "Device" in said, said
    assert CACHE.get(fhir_base) is not None
    assert not CACHE.get(fhir_base).allows("Device", "search-type")  # type: ignore[union-attr]
