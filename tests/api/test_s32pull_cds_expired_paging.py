"""What prefetch lacked, read in one batch from a server that dropped a search's paging session
before its later page was read (fhirtis/api/cds_hooks/fetch.py).

HAPI FHIR answers a ``next`` link (``[base]?_getpages=<search id>&_getpagesoffset=…``) to results
it no longer holds 410 Gone, "Search ID[…] does not exist and may have expired" (its plain
server's ``FifoMemoryPagingProvider`` keeps a fixed number of searches; sources in
tests/io/test_s29e_expired_paging.py). ``fhirtis run`` sends such a search again, once, from its
first page (fhirtis/pipeline/pull.py ``_all_or_again``). The CDS service answered the whole call
502 "the FHIR server failed", though the search sent again is answered whole. Now the search
is sent again once (a GET, every page), as ``fhirtis run`` does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import ALLOWED, DVT, card_with, cards_of, full_prefetch, patient_70kg
from tests.api.test_s25_cond_fetch import _sign
from tests.io.test_s29e_expired_paging import GONE, _condition, _page

Json = dict[str, Any]

DERMATOMYOSITIS = _condition("dm", "396230008")
NEXT = f"{ALLOWED}?_getpages=3b5e7f1c&_getpagesoffset=1&_count=1&_bundletype=searchset"


class Hapi:
    """A HAPI-like server at ALLOWED (no statement, batch searches): the plain Condition search
    in two pages, its second (the DVT) answered 410 the first ``drops`` times."""

    def __init__(self, drops: int) -> None:
        self.drops = drops
        self.seen: list[str] = []

    def answer(self, url: str) -> Json:
        if url.startswith("Condition?") and "clinical-status" not in url:
            return _page([DERMATOMYOSITIS], NEXT)
        return _page([])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = str(request.url)[len(ALLOWED) :].lstrip("/")
        self.seen.append(f"{request.method} {path.split('&', 1)[0]}")
        if path == "metadata":
            return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": []})
        if "_getpages" in request.url.params:
            if self.drops > 0:
                self.drops -= 1
                return httpx.Response(410, json=GONE)
            return httpx.Response(200, json=_page([DVT]))
        if request.method == "POST" and path == "":
            entries = [
                {"resource": self.answer(e["request"]["url"]), "response": {"status": "200 OK"}}
                for e in json.loads(request.content)["entry"]
            ]
            answer = {"resourceType": "Bundle", "type": "batch-response", "entry": entries}
            return httpx.Response(200, json=answer)
        return httpx.Response(
            200, json=self.answer(request.url.raw_path.decode().split("/fhir/")[1])
        )


async def test_a_search_whose_later_page_is_gone_is_sent_again(httpx_mock: HTTPXMock) -> None:
    server = Hapi(drops=1)
    httpx_mock.add_callback(server, is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    risk = card_with(cards_of(await _sign(prefetch, 300)), "TEE risk")  # 200, not 502
    assert any(s.startswith("GET Condition?") for s in server.seen), server.seen  # sent again
    assert "History of venous or arterial thrombosis" in risk["summary"], risk
    assert "`Condition/dvt`" in risk["detail"]


async def test_a_later_page_gone_twice_is_the_servers_failure(httpx_mock: HTTPXMock) -> None:
    """Sent again once only: a second 410 is the server's failure (502), as in ``fhirtis run``."""
    httpx_mock.add_callback(Hapi(drops=2), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    r = await _sign(prefetch, 300)
    assert r.status_code == 502, r.text
