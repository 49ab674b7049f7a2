"""A risk-factor prefetch key sent without its template's whole answer, and no ``fhirServer``
to read the rest (fhirtis/api/cds_hooks/request.py, service.py, cards.py).

CDS Hooks 2.0 (cds-hooks/docs docs/specification/current.md), "Prefetch Template": a client
"MAY choose to honor some or all of the desired prefetch templates", and the service checks
the prefetched data against its template and retrieves what is not satisfied; "HTTP Status
Codes": "412 Precondition Failed — The CDS Service is unable to retrieve the necessary FHIR data
to execute its decision support". A risk-factor source (``fhirtis.fhir.needs.CAN_GO_WITHOUT``)
is not necessary: left out (s30pd) or refused 403 (s29b), the cards come and the risk card says
the data may be incomplete. Sent as one page of several (a ``next`` link), with fewer matches
than its own ``total`` (R4 bundle.html: "the total number of entries of type 'match' across all
pages"), or as a Bundle of another type, it is answered the same way, using the matches that
were sent (real data), the risk card naming the type as only part of the data. The Patient, the
Observations (the dosing weight) and the MedicationAdministrations stay necessary: 412.

Shapes: tests/api/test_s28f_cds_prefetch_shapes.py's ``NOT_THE_WHOLE_ANSWER`` (a batch-response,
a collection holding the searchset, count-only and cut-off searchsets) and
tests/api/test_cds_hooks.py's ``_first_page_of`` (a searchset with a ``next`` link, R4
http.html#paging); the rest of the prefetch is ``full_prefetch`` (a searchset per key).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.test_cds_hooks import (
    ALLOWED,
    DVT,
    SIGN,
    _first_page_of,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
    searchset,
)
from tests.api.test_s28f_cds_prefetch_shapes import NOT_THE_WHOLE_ANSWER, _prefetch_with
from tests.fhir.builders import qty
from tests.fhir.patients import responder

Json = dict[str, Any]

PART_OF_THE_DATA = "prefetch of Condition was only part of the data"


async def sign_without_server(prefetch: Json) -> httpx.Response:
    """The order-sign call with ``prefetch`` and no fhirServer (nothing is read)."""
    body = call([ivig_order(rate=qty(150, "mL/h"))], prefetch)
    assert "fhirServer" not in body
    async with cds() as api:
        answer = await api.post(SIGN, body)
        assert api.sent == []  # nothing to read from
    return answer


@pytest.mark.parametrize(
    "conditions",
    [c for _, c in NOT_THE_WHOLE_ANSWER] + [_first_page_of(ALLOWED, [])],
    ids=[w for w, _ in NOT_THE_WHOLE_ANSWER] + ["next link"],
)
async def test_a_risk_factor_key_not_all_the_data_gives_the_cards_saying_so(
    conditions: Json,
) -> None:
    r = await sign_without_server(_prefetch_with("conditions", conditions))
    cards = cards_of(r)  # 200, not 412
    assert card_with(cards, "Max IVIG rate")
    risk = card_with(cards, "TEE risk")
    assert risk["indicator"] == "warning", risk
    assert PART_OF_THE_DATA in risk["detail"], risk["detail"]
    if "risk factor(s)" not in risk["summary"]:
        assert "data may be incomplete" in risk["summary"], risk["summary"]


@pytest.mark.parametrize(
    "conditions",
    [{**(searchset([DVT]) or {}), "total": 2}, _first_page_of(ALLOWED, [DVT])],
    ids=["1 of 2 matches", "first page"],
)
async def test_the_matches_that_were_prefetched_are_used(conditions: Json) -> None:
    """The DVT on the page sent is a risk factor: 3.3 mg/kg/min = 138 mL/h for 70 kg of 10 %."""
    cards = cards_of(await sign_without_server(_prefetch_with("conditions", conditions)))
    risk = card_with(cards, "TEE risk")
    assert "History of venous" in risk["summary"], risk
    assert PART_OF_THE_DATA in risk["detail"], risk["detail"]
    assert card_with(cards, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 138 mL/h"
    )


def _paged(key: str) -> Json:
    prefetch = full_prefetch(patient_70kg())
    prefetch[key] = {
        **(prefetch[key] or {"resourceType": "Bundle", "type": "searchset", "entry": []}),
        "link": [{"relation": "next", "url": f"{ALLOWED}/x?_page=2"}],
    }
    return prefetch


@pytest.mark.parametrize(
    ("key", "prefetch", "why"),
    [
        ("administrations", _paged("administrations"), "next"),
        (
            "weights",
            {
                **full_prefetch(patient_70kg()),
                "weights": {**(searchset(patient_70kg()[1:2]) or {}), "total": 2},
            },
            "total",
        ),
    ],
)
async def test_a_needed_key_not_all_the_data_is_still_412(
    key: str, prefetch: Json, why: str
) -> None:
    r = await sign_without_server(prefetch)
    assert r.status_code == 412, r.text
    message = r.json()["message"]
    assert key in message and why in message, message


@pytest.mark.parametrize(
    "conditions",
    [_first_page_of(ALLOWED, []), {"resourceType": "OperationOutcome", "issue": []}, None],
    ids=["one page of several", "a failed prefetch", "left out"],
)
async def test_the_tis_card_says_the_conditions_were_not_all_read(conditions: Json | None) -> None:
    """The Conditions say whether the juvenile criteria apply (clinical spec §2.3): the TIS
    card says so when their prefetch was only part of them, failed or was left out, with no
    fhirServer to read the rest (as when they were refused, tests/api/test_s29b_*)."""
    prefetch = full_prefetch([e["resource"] for e in responder()["entry"]])
    del prefetch["conditions"], prefetch["conditionsNotActive"]
    if conditions is not None:
        prefetch["conditions"] = conditions
    r = await sign_without_server(prefetch)
    tis = card_with(cards_of(r), "TIS")
    assert "Conditions could not all be read" in tis["detail"], tis["detail"]
