"""CDS Hooks "latest n" prefetch (weights ``_sort=-date&_count=5``) from a server that ignored
``_sort`` (s30pf).

FHIR R4 search.html ("Handling Errors"): by default a server ignores a search parameter it does
not know or support, and the ``self`` link of a searchset holds the parameters that were actually
used. Epic's Observation search documentation lists its query parameters (``_id``,
``patient``, ``code``/``category``, a date) and no ``_sort`` (https://open.epic.com/Clinical/
Observation); Oracle Health lists none either, and documents its own default order, newest
first (docs.oracle.com, millennium-platform-apis/mfrap/op-observation-get.html). A server that
ignores ``_sort`` and does not order newest first returns as its first page of weights
the oldest (or any) five, not the latest: the dosing weight (the latest within 30 days before the
order, clinical spec) would be an old one, and the mL/h advice computed from it.

Here: 7 weights, the latest 70 kg 3 days ago, 6 older ones of 90 kg; pages of 5 in ascending
date order (the store order of a server that ignores ``_sort``). 200 mL/h of a 10 % product is
4.76 mg/kg/min at 70 kg (over the maximum 4: lower to 168 mL/h), but 3.70 at 90 kg (within).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import (
    ALLOWED,
    SIGN,
    _day,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
)
from tests.e2e.test_run import load
from tests.fhir.builders import LOINC, bundle, medication, obs, patient, qty

Json = dict[str, Any]

_SEARCH = f"{ALLOWED}/Observation?patient=p1&code=http://loinc.org|29463-7"
LATEST = obs("w-new", "29463-7", 70, "kg", _day(3), system=LOINC)
OLDER = [
    obs(f"w-{d}", "29463-7", 90, "kg", _day(d), system=LOINC)
    for d in (100, 150, 200, 250, 300, 350)
]
ASCENDING = sorted([LATEST, *OLDER], key=lambda o: o["effectiveDateTime"])
DESCENDING = ASCENDING[::-1]


def _page(
    resources: list[Json], self_url: str | None, next_url: str | None, total: int = 7
) -> Json:
    links = []
    if self_url is not None:
        links.append({"relation": "self", "url": self_url})
    if next_url is not None:
        links.append({"relation": "next", "url": next_url})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": [
            {
                "fullUrl": f"{ALLOWED}/Observation/{r['id']}",
                "resource": r,
                "search": {"mode": "match"},
            }
            for r in resources
        ],
    }


def _prefetch(weights: Json | None) -> Json:
    out = full_prefetch([patient()])
    out["weights"] = weights
    return out


ORDER = ivig_order(rate=qty(200, "mL/h"))
UNSORTED_SELF = f"{_SEARCH}&_count=5"  # the server left _sort out: it did not sort
NEXT = f"{_SEARCH}&_count=5&_offset=5"


@pytest.mark.parametrize(
    "first_page",
    [
        _page(ASCENDING[:5], UNSORTED_SELF, NEXT),  # self link without _sort
        _page(ASCENDING[:5], None, NEXT),  # no self link: dates not newest first
        _page(ASCENDING[:5], None, None),  # no link at all: 5 of the 7 its total says
        _page(ASCENDING[:5], f"{_SEARCH}&_sort=-date&_count=5", NEXT),  # said sorted, is not
        # one match: too few dates to show an order, and the self link says it is unsorted
        _page(ASCENDING[:1], UNSORTED_SELF, NEXT),
    ],
)
async def test_an_unsorted_latest_weights_page_without_a_server_is_412(first_page: Json) -> None:
    """Without fhirServer the rest cannot be read: 412 naming why (weights are data the
    evaluation needs: Observation is not among the types it can go without); never a rate from
    a weight that may not be the latest (before: 200 mL/h said within the maximum, from 90 kg)."""
    async with cds() as api:
        r = await api.post(SIGN, call([ORDER], _prefetch(first_page)))
    assert r.status_code == 412, [c["summary"] for c in r.json().get("cards", [])]
    body = r.json()
    assert body["error"] == "precondition-failed"
    assert "prefetch weights" in body["message"] and "latest" in body["message"], body


@pytest.mark.parametrize("key", ["height", "bmi"])
async def test_an_unsorted_latest_height_or_bmi_page_without_a_server_is_412(key: str) -> None:
    """Height and BMI (the obesity risk factor, the adjusted weight) are Observations too:
    handled as the weights are (a BMI of 30 or more on a later page would lower the maximum)."""
    bmis = [
        obs(f"b{d}", "39156-5", 24, "kg/m2", _day(d), system=LOINC) for d in (300, 200, 100, 50)
    ]
    prefetch = full_prefetch([patient(), LATEST])
    prefetch[key] = _page(bmis[:3], f"{_SEARCH}&_count=3", NEXT, total=4)
    async with cds() as api:
        r = await api.post(SIGN, call([ORDER], prefetch))
    assert r.status_code == 412, r.text
    assert f"prefetch {key}" in r.json()["message"]


@pytest.mark.parametrize(
    "first_page",
    [
        _page(DESCENDING[:5], f"{_SEARCH}&_sort=-date&_count=5", NEXT),  # _sort echoed
        _page(DESCENDING[:5], None, NEXT),  # no self link, newest first
        _page(DESCENDING, UNSORTED_SELF, None),  # every match on the page: nothing else
        # newest first without _sort in its self link: Oracle Health's own default order
        _page(DESCENDING[:5], UNSORTED_SELF, NEXT),
    ],
)
async def test_a_latest_first_page_is_still_complete(first_page: Json) -> None:
    """A page that is the latest (sorted as asked, or holding every match) is the whole answer,
    as before: nothing read, the rate checked against the 70 kg of 3 days ago."""
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, call([ORDER], _prefetch(first_page))))
        assert api.sent == []
    assert card_with(cards, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 168 mL/h"
    )


async def test_an_unsorted_prefetched_page_is_read_again_from_the_fhir_server(
    fhir_base: str,
) -> None:
    """With fhirServer, the weights are read from it: the latest 70 kg is found (before: no read,
    90 kg of 150 days ago, 200 mL/h said within the maximum)."""
    load(fhir_base, bundle(patient(), LATEST, *OLDER, medication()))
    first = _page(ASCENDING[:5], UNSORTED_SELF, NEXT)
    async with cds(fhir_base) as api:
        r = await api.post(SIGN, call([ORDER], _prefetch(first), server=fhir_base, token="t"))
        assert api.sent, "the weights were read from the FHIR server"
    assert card_with(cards_of(r), "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 168 mL/h"
    )


async def test_weights_read_from_a_server_that_ignores_sort_are_read_whole(
    httpx_mock: HTTPXMock,
) -> None:
    """The weights key not prefetched, read from fhirServer, whose first page (``_sort``
    ignored, left out of the self link) is the oldest five: the search is read whole, in pages of
    the configured size rather than 5 (before: the first page only, the rate checked against
    90 kg)."""
    first = _page(ASCENDING[:5], UNSORTED_SELF, NEXT)
    batch = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"resource": first, "response": {"status": "200 OK"}}],
    }
    # no CapabilityStatement (the service reads it first, for the FHIR version: s36): as before
    httpx_mock.add_response(url=f"{ALLOWED}/metadata", status_code=404, json={})
    httpx_mock.add_response(url=ALLOWED, method="POST", json=batch)
    whole = _page(ASCENDING, f"{_SEARCH}&_count=100", None)
    search = re.compile(re.escape(f"{ALLOWED}/Observation?") + ".*")
    httpx_mock.add_response(url=search, method="GET", json=whole)
    prefetch = full_prefetch([patient()])
    del prefetch["weights"]
    async with cds() as api:
        r = await api.post(SIGN, call([ORDER], prefetch, server=ALLOWED, token="t"))
    assert card_with(cards_of(r), "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 168 mL/h"
    )
    (get,) = [q for q in httpx_mock.get_requests() if q.method == "GET" and "?" in str(q.url)]
    assert get.url.params["_count"] == "100"
    assert "http://loinc.org|29463-7" in get.url.params["code"].split(",")
