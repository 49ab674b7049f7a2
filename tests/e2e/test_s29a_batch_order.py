"""A batch that withdraws an old AdverseEvent and creates its successor, on a server that runs a
batch's writes one after another in entry order.

HAPI FHIR's ``BaseTransactionProcessor.batch`` (hapifhir/hapi-fhir,
hapi-fhir-storage/src/main/java/ca/uhn/fhir/jpa/dao/BaseTransactionProcessor.java: "run all
non-gets sequentially", each entry in the order given) does not reorder a batch as R4
http.html#trules orders a transaction (DELETE before POST). fhirtis's AdverseEvent is created on
subject, category, onset and coding (R4 AdverseEvent has no ``identifier`` search), so the
successor's condition matches the old AdverseEvent: with the create first it is answered 200
"exists" (R4 http.html#ccreate) and the delete after it removes the only copy. The delete must
come first in the batch (R4 batch rules: servers are "considered" to run a batch in the
transaction order) so one run leaves the new AdverseEvent stored.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.fhir.codes import IDENTIFIER_SYSTEM
from fhirtis.fhir.derive import Derived
from fhirtis.fhir.plan import Action, PlannedWrite, withdrawal
from fhirtis.io import FhirClient, FhirClientConfig, WritePlanShape
from fhirtis.pipeline.write import Naming, write_batch
from tests.io._s25_srv_fake import resource_entry

Json = dict[str, Any]
BASE = "https://hapi.example.org/fhir"
FHIRTIS = "http://fhirtis.org/fhir/CodeSystem/fhirtis"
CATEGORY = f"{FHIRTIS}|tee-temporally-associated"
DATE = "2024-02-13T10:00:00+00:00"
SCT = "http://snomed.info/sct"


def _event(ident: str, source: str) -> Json:
    return {
        "resourceType": "AdverseEvent",
        "identifier": {"system": IDENTIFIER_SYSTEM, "value": ident},
        "actuality": "actual",
        "category": [{"coding": [{"system": FHIRTIS, "code": "tee-temporally-associated"}]}],
        "event": {"coding": [{"system": SCT, "code": "128053003"}]},
        "subject": {"reference": "Patient/p1"},
        "date": DATE,
        "suspectEntity": [{"instance": {"reference": source}}],
    }


def _match() -> str:
    """As fhirtis.fhir.derive writes an AdverseEvent's condition (URL-quoted: ``+`` of the
    offset as ``%2B``)."""
    match = f"subject=Patient/p1&category={CATEGORY}&date={DATE}&event={SCT}|128053003"
    return quote(match, safe="=&|:/")


class _SequentialBatch:
    """A HAPI-like server: a batch's writes run in entry order; a conditional create whose
    condition (subject, date, event code) matches one stored AdverseEvent is answered 200."""

    def __init__(self, stored: list[Json]) -> None:
        self.stored = stored
        self.created = 0

    def _matches(self, condition: str) -> list[Json]:
        want = dict(parse_qsl(condition))
        return [
            r
            for r in self.stored
            if r["subject"]["reference"] == want["subject"]
            and r["date"] == want["date"]
            and want["event"].endswith("|" + r["event"]["coding"][0]["code"])
        ]

    def _searchset(self, query: str) -> Json:
        found = self._matches(query)
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in found],
        }

    def _entry(self, entry: Json) -> Json:
        request = entry["request"]
        if request["method"] == "GET":
            query = request["url"].partition("?")[2]
            return {"response": {"status": "200 OK"}, "resource": self._searchset(query)}
        if request["method"] == "DELETE":
            rid = request["url"].split("/")[1]
            self.stored[:] = [r for r in self.stored if r["id"] != rid]
            return {"response": {"status": "204 No Content"}}
        assert request["method"] == "POST", request
        found = self._matches(request["ifNoneExist"])
        if found:
            return {"response": {"status": "200 OK", "location": f"AdverseEvent/{found[0]['id']}"}}
        self.created += 1
        made = {**entry["resource"], "id": f"new-{self.created}", "meta": {"versionId": "1"}}
        self.stored.append(made)
        return {"response": {"status": "201 Created", "location": f"AdverseEvent/{made['id']}"}}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/fhir").strip("/")
        if request.method == "GET" and path == "metadata":
            event = resource_entry(
                "AdverseEvent",
                ("subject", "category", "date", "event"),
                interactions=("read", "search-type", "create", "delete"),
            )
            event["conditionalCreate"] = True
            return httpx.Response(
                200,
                json={
                    "resourceType": "CapabilityStatement",
                    "status": "active",
                    "kind": "instance",
                    "fhirVersion": "4.0.1",
                    "format": ["json"],
                    "rest": [
                        {"mode": "server", "interaction": [{"code": "batch"}], "resource": [event]}
                    ],
                },
            )
        if request.method == "GET" and path == "AdverseEvent":
            return httpx.Response(200, json=self._searchset(str(request.url.query, "ascii")))
        assert request.method == "POST" and path == "", request
        bundle = json.loads(request.content)
        answers = [self._entry(e) for e in bundle["entry"]]
        response = {"resourceType": "Bundle", "type": "batch-response", "entry": answers}
        return httpx.Response(200, json=response)


def replaced_event_writes(
    httpx_mock: HTTPXMock,
) -> tuple[_SequentialBatch, list[PlannedWrite], WritePlanShape]:
    """An old AdverseEvent stored on a server that runs batches in order, and the writes of a
    re-recorded event: its successor's create (whose condition matches the old one) planned
    before the old one's withdrawal, in batches."""
    old = {**_event("tee-old", "AdverseEvent/ehr-ae-1"), "id": "old", "meta": {"versionId": "1"}}
    server = _SequentialBatch([old])
    httpx_mock.add_callback(server, is_reusable=True)
    successor = Derived(_event("tee-new", "AdverseEvent/ehr-ae-2"), "tee-new", _match())
    writes = [PlannedWrite(successor, Action.CREATE), withdrawal(old, "tee-old")]
    return server, writes, WritePlanShape("batch", {"AdverseEvent": True}, {}, provenance=False)


async def test_a_batch_deletes_what_a_successor_create_would_match_first(
    httpx_mock: HTTPXMock,
) -> None:
    server, writes, shape = replaced_event_writes(httpx_mock)
    naming = Naming()
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        await write_batch(client, writes, None, shape, {}, [], naming)
    assert [r["identifier"]["value"] for r in server.stored] == ["tee-new"]
    assert {(w.identifier, w.action) for w in naming.written} == {
        ("tee-old", Action.WITHDRAW),
        ("tee-new", Action.CREATE),
    }
