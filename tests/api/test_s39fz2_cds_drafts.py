"""CDS Hooks calls whose draft orders or prefetch hold entries fhirtis cannot read as given
(s39 fuzz).

- The same draft order twice in ``draftOrders`` (one MedicationRequest id, the same copy) gave
  two sets of order cards: one set per distinct order. Two copies of one id that differ are two
  contradictory orders: which one the clinician signs is not known, so the call is refused
  (400) as other unreadable draft orders are.
- An entry whose ``resourceType`` is no FHIR resource type (``OBSERVATION``) in a prefetched
  Bundle or in ``draftOrders`` was passed over in silence (a weight or a thrombosis history not
  read; a ``MEDICATIONREQUEST`` IVIG order without any card): refused (400), as an entry
  without a resource is (R4 ``Resource.resourceType``).
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import (
    DVT,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.fhir.builders import qty
from tests.io._s25_srv_fake import FakeServer, patient, statement
from tests.io._support import BASE

Json = dict[str, Any]


def _summaries(cards: list[Json]) -> list[str]:
    return [c["summary"] for c in cards]


async def test_one_order_listed_twice_gives_one_set_of_cards() -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    async with cds() as api:
        once = cards_of(await api.post(SIGN, call([order], full_prefetch(patient_70kg(DVT)))))
        body = call([order, copy.deepcopy(order)], full_prefetch(patient_70kg(DVT)))
        twice = cards_of(await api.post(SIGN, body))
    assert len(once) == 3  # the risk card, the maximum rate, the rate above it
    assert _summaries(twice) == _summaries(once)


async def test_two_orders_give_a_set_each() -> None:
    async with cds() as api:
        body = call(
            [ivig_order("rx1", rate=qty(300, "mL/h")), ivig_order("rx2", rate=qty(300, "mL/h"))],
            full_prefetch(patient_70kg(DVT)),
        )
        cards = cards_of(await api.post(SIGN, body))
    assert len(cards) == 5  # one risk card, two per order


async def test_two_differing_copies_of_one_order_are_refused() -> None:
    async with cds() as api:
        body = call(
            [ivig_order("rx1", rate=qty(300, "mL/h")), ivig_order("rx1", rate=qty(100, "mL/h"))],
            full_prefetch(patient_70kg(DVT)),
        )
        r = await api.post(SIGN, body)
    assert r.status_code == 400, r.text
    assert "context.draftOrders.entry[1]" in r.text
    assert "MedicationRequest/rx1" in r.text


async def test_a_prefetched_entry_of_no_resource_type_is_refused() -> None:
    prefetch = copy.deepcopy(full_prefetch(patient_70kg(DVT)))  # DVT is shared
    prefetch["conditions"]["entry"][0]["resource"]["resourceType"] = "CONDITION"
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch))
    assert r.status_code == 400, r.text
    assert "prefetch.conditions.entry[0].resource.resourceType" in r.text
    assert "CONDITION" not in r.text


async def test_a_draft_order_of_no_resource_type_is_refused() -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    order["resourceType"] = "medicationrequest"
    async with cds() as api:
        r = await api.post(SIGN, call([order], full_prefetch(patient_70kg(DVT))))
    assert r.status_code == 400, r.text
    assert "context.draftOrders.entry[0].resource.resourceType" in r.text


@pytest.mark.parametrize("batch", [False, True], ids=["searches", "batch"])
async def test_a_fetched_match_of_no_resource_type_makes_the_type_partial(
    httpx_mock: HTTPXMock, batch: bool
) -> None:
    """Read from ``fhirServer`` (what prefetch lacked): a Condition search whose only match is
    written ``CONDITION`` is the server's data, not "no Condition": the risk card says the
    Condition search came back in part (a warning), never "no thrombosis risk factor found"."""
    odd = {**copy.deepcopy(DVT), "resourceType": "CONDITION"}

    def conditions(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path.endswith("/Condition"):
            entry = {"fullUrl": f"{BASE}/Condition/dvt", "resource": odd}
            bundle = {"resourceType": "Bundle", "type": "searchset", "entry": [entry]}
            return httpx.Response(200, json=bundle)
        return None

    server = FakeServer(statement(batch=batch), [patient()], [], [conditions], batch=batch)
    httpx_mock.add_callback(server, is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]  # searched on the server
    body = call([ivig_order(rate=qty(300, "mL/h"))], prefetch, server=BASE, token="t")
    async with cds(BASE) as api:
        risk = card_with(cards_of(await api.post(SIGN, body)), "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert "incomplete" in risk["summary"]
    assert "Condition" in risk["detail"] and "only part" in risk["detail"], risk["detail"]
