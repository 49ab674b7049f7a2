"""Group members named by a logical reference (an identifier only, no literal reference).

R4 Group.member.entity is a Reference(Patient | ...), and R4 references.html §2.3.0.2 lets a
reference carry only ``identifier`` ("logical reference") when the sender cannot give a
literal one (a Group built from a registry's MRN list). fhirtis read only literal references:
such a member was silently left out of an incremental run (neither evaluated nor reported,
and dropped from the members recorded for the next run). It is now looked up on the server by
its identifier (``Patient?identifier=system|value``); one that matches no Patient, or several,
makes the Group's member list unknown, and the run falls back to the members the ledger
recorded (as for a Group read that lists none), saying so."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.registry.group_export import current_members
from tests.io._support import BASE

MRN = "urn:oid:1.2.36.146.595.217.0.1"
NOW = datetime(2024, 6, 1, tzinfo=UTC)


def _group(*members: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Group",
        "id": "g1",
        "type": "person",
        "actual": True,
        "member": [{"entity": e} for e in members],
    }


def _patients(*ids: str) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": i}, "search": {"mode": "match"}}
            for i in ids
        ],
    }


def _serve(httpx_mock: HTTPXMock, group: dict[str, Any], found: dict[str, tuple[str, ...]]) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Group/g1"):
            return httpx.Response(200, json=group)
        if request.url.path.endswith("/Patient"):
            wanted = request.url.params.get("identifier", "")
            return httpx.Response(200, json=_patients(*found.get(wanted, ())))
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})

    httpx_mock.add_callback(answer, is_reusable=True)


async def test_a_member_named_by_identifier_is_looked_up(httpx_mock: HTTPXMock) -> None:
    group = _group(
        {"reference": "Patient/p1"},
        {"type": "Patient", "identifier": {"system": MRN, "value": "12345"}},
    )
    _serve(httpx_mock, group, {f"{MRN}|12345": ("p2",)})
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        assert await current_members(client, "g1", NOW) == ["p1", "p2"]
    searched = [r for r in httpx_mock.get_requests() if r.url.path.endswith("/Patient")]
    assert [r.url.params["identifier"] for r in searched] == [f"{MRN}|12345"]


async def test_an_identifier_that_matches_no_one_or_several_makes_the_members_unknown(
    httpx_mock: HTTPXMock,
) -> None:
    group = _group(
        {"reference": "Patient/p1"},
        {"identifier": {"system": MRN, "value": "gone"}},
        {"identifier": {"system": MRN, "value": "twice"}},
    )
    _serve(httpx_mock, group, {f"{MRN}|twice": ("p2", "p3")})
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        assert await current_members(client, "g1", NOW) is None


async def test_a_refused_identifier_search_makes_the_members_unknown(
    httpx_mock: HTTPXMock,
) -> None:
    group = _group({"reference": "Patient/p1"}, {"identifier": {"system": MRN, "value": "1"}})

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/Group/g1"):
            return httpx.Response(200, json=group)
        return httpx.Response(403, json={"resourceType": "OperationOutcome", "issue": []})

    httpx_mock.add_callback(answer, is_reusable=True)
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        assert await current_members(client, "g1", NOW) is None
