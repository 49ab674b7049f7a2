"""CDS Hooks: a search the service makes of the caller's FHIR server answered 200 with a Bundle
that is not a searchset. R4 http.html (search): the answer is a Bundle of type ``searchset``
(FHIR's search-set-bundle profile: ``Bundle.type`` pattern ``searchset``); a ``collection`` or
``batch-response`` is no search result. ``fhirtis run`` (fhirtis/pipeline/pull.py) and every later
page (fhirtis/io/_paging.py ``parse_page``) refuse it; the CDS service read the first page of a
search inside its batch as the patient's matches and gave cards from it.

The CDS service and ``fhirtis run`` now judge an answer by one rule (fhirtis.io
``answer_problem``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import DVT, SIGN, call, cds, full_prefetch, ivig_order, patient_70kg
from tests.fhir.builders import qty
from tests.io._s25_srv_fake import FakeServer, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]


@pytest.mark.parametrize("batch", [False, True], ids=["searches", "batch"])
async def test_a_search_answered_with_a_collection_bundle_is_502(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    def collection(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith("/Condition"):
            return httpx.Response(
                200,
                json={"resourceType": "Bundle", "type": "collection", "entry": [{"resource": DVT}]},
            )
        return None

    server = FakeServer(statement(batch=batch), [patient()], [], [collection], batch=batch)
    httpx_mock.add_callback(server, is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]  # searched on the server
    body = call([ivig_order(rate=qty(300, "mL/h"))], prefetch, server=BASE, token="t")
    async with cds(BASE) as api:
        r = await api.post(SIGN, body)
    assert r.status_code == 502, r.text
