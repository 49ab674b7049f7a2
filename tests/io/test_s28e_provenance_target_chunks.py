"""The check for stored output that no Provenance names (``Provenance?target=…``) is sent in
searches of at most ``MAX_QUERY_VALUES`` targets, as every other list fhirtis searches by.

It sent every stored derived resource of the patient in one ``target`` list: a patient with
years of monthly cycles has a hundred or more, each ``Observation/<uuid>`` (about 53 URL
characters encoded), and servers and their gateways refuse such URLs: a HAPI FHIR deployment
answered 400 to a GET listing about 35 UUIDs (opensrp/fhircore#2529); URL limits of 4 KB are
usual (JohannesOehm/FhirExtinguisher#12, "roughly about 4KB"). The refusal was swallowed as
"not checked", so output an interrupted run left unnamed stayed unnamed on every later run.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
from pytest_httpx import HTTPXMock

from fhirtis.fhir.derive import Derived
from fhirtis.fhir.plan import Action, PlannedWrite, WritePlan
from fhirtis.fhir.queries import MAX_QUERY_VALUES
from fhirtis.io import FhirClient, FhirClientConfig
from fhirtis.pipeline.settle import _name_unnamed
from fhirtis.pipeline.write import Naming
from tests.io._s25_srv_fake import resource_entry, statement
from tests.io._support import BASE

Json = dict[str, Any]
URL_LIMIT = 4096  # bytes of request URL the fake server (its gateway) accepts


def _stored(n: int) -> list[PlannedWrite]:
    return [
        PlannedWrite(
            Derived({"resourceType": "Observation"}, f"tis-{i:024x}"),
            Action.UNCHANGED,
            f"{i:08x}-0000-4000-8000-000000000000",
        )
        for i in range(n)
    ]


async def test_the_provenance_check_of_many_stored_resources_fits_a_url_limit(
    httpx_mock: HTTPXMock,
) -> None:
    caps = statement(
        {"Provenance": resource_entry("Provenance", ("target",), None, ("create", "search-type"))}
    )
    writes = _stored(120)
    named = {f"Observation/{writes[0].existing_id}"}  # an earlier run's Provenance names one
    searched: list[int] = []

    def server(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/metadata"):
            return httpx.Response(200, json=caps)
        assert request.url.path.endswith("/Provenance")
        if len(str(request.url)) > URL_LIMIT:
            return httpx.Response(414, text="Request-URI Too Long")
        targets = parse_qs(request.url.query.decode())["target"][0].split(",")
        searched.append(len(targets))
        found = [
            {"resource": {"resourceType": "Provenance", "target": [{"reference": t}]}}
            for t in targets
            if t in named
        ]
        return httpx.Response(
            200, json={"resourceType": "Bundle", "type": "searchset", "entry": found}
        )

    httpx_mock.add_callback(server, is_reusable=True)
    naming = Naming()
    async with FhirClient(FhirClientConfig(base_url=BASE)) as client:
        await _name_unnamed(
            client, WritePlan(writes, None), await client.capabilities(), {}, naming
        )
    assert searched and max(searched) <= MAX_QUERY_VALUES
    assert sum(searched) == len(writes)
    assert naming.targets == [f"Observation/{w.existing_id}" for w in writes[1:]]
