"""CDS Hooks: prefetched values that do not hold their template's whole answer.

CDS Hooks 2.0, "Prefetch Template" (cds-hooks/docs, docs/specification/current.md): "the
prefetched data given to the CDS Service MUST be equivalent to the data the CDS Service would
receive if it were making its own call to the CDS Client's FHIR server using the parameterized
prefetch template", and "It is the CDS Service's responsibility to check prefetched data against
its template to determine what requests were satisfied (if any) and to programmatically retrieve
any additional necessary data ... [else] the service SHALL respond with an HTTP 412". A search
template's answer is a ``searchset`` Bundle (FHIR R4 http.html#search); its ``Bundle.total`` is
"the total number of entries of type 'match' across all pages in the search" (R4 bundle.html).

Two shapes a CDS client can send that the service read as "the patient has no such data":

- the ``batch-response`` of a batch the client ran to satisfy the templates (the spec lets a
  client "compute an efficient set of prefetch templates ... reducing the number of calls"),
  whose entries hold the searchsets: the nested Bundle's resources were never read, so a DVT
  recorded there gave "no thrombosis risk factor found" and 4 instead of 3.3 mg/kg/min;
- a searchset holding fewer matches than its own ``total`` says, with no ``next`` link (a
  count-only answer, ``{"type": "searchset", "total": 1}``, or entries cut off): the rest was
  read as absent.

Either is now a template not satisfied: read from ``fhirServer`` when the call allows it, else
412 naming the key and why (s30: for a key the evaluation needs; a risk-factor key gives the
cards, the risk card saying its prefetch was only part of the data).
"""

from __future__ import annotations

from typing import Any

import pytest

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
    searchset,
)
from tests.e2e.test_run import load
from tests.fhir.builders import LOINC, administration, bundle, medication, obs, qty

Json = dict[str, Any]


def _batch_response(*searchsets: Json) -> Json:
    """A batch-response Bundle whose entries are the searches' answers (R4 http.html#transaction
    "batch-response": each entry a ``response`` and the ``resource`` returned)."""
    return {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [{"resource": s, "response": {"status": "200 OK"}} for s in searchsets],
    }


def _prefetch_with(key: str, value: Json | None) -> Json:
    prefetch = full_prefetch(patient_70kg())
    prefetch[key] = value
    return prefetch


NOT_THE_WHOLE_ANSWER: list[tuple[str, Json]] = [
    (
        "batch-response",
        _batch_response(searchset([DVT]) or {}),
    ),
    (
        "holds Bundles",  # the searchset nested in a collection
        {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": searchset([DVT])}]},
    ),
    (
        "total",  # a count-only answer: the one match is not there
        {"resourceType": "Bundle", "type": "searchset", "total": 1},
    ),
    (
        "total",  # 1 of 2 matches, no next link
        {**(searchset([DVT]) or {}), "total": 2},
    ),
]


@pytest.mark.parametrize(("why", "value"), NOT_THE_WHOLE_ANSWER)
async def test_a_needed_prefetch_that_lacks_part_of_its_answer_is_412_without_a_server(
    why: str, value: Json
) -> None:
    """Never an answer from a value that lacks the matches of a key the evaluation needs (the
    MedicationAdministrations; a risk-factor key such as conditions gives the cards, the risk
    card saying its prefetch was only part of the data: test_s30pe_cds_partial_prefetch.py)."""
    order = ivig_order(rate=qty(150, "mL/h"))
    async with cds() as api:
        r = await api.post(SIGN, call([order], _prefetch_with("administrations", value)))
        assert api.sent == []
    assert r.status_code == 412, r.text
    message = r.json()["message"]
    assert "administrations" in message and why in message


@pytest.mark.parametrize(("why", "conditions"), NOT_THE_WHOLE_ANSWER)
async def test_a_prefetch_that_lacks_part_of_its_answer_is_read_from_the_server(
    fhir_base: str, why: str, conditions: Json
) -> None:
    """With fhirServer and fhirAuthorization the search is read: the DVT is found (3.3
    mg/kg/min = 138 mL/h for 70 kg of 10 %), as from a full prefetch."""
    load(fhir_base, bundle(*patient_70kg(DVT), medication()))
    order = ivig_order(rate=qty(150, "mL/h"))
    body = call([order], _prefetch_with("conditions", conditions), server=fhir_base, token="t")
    async with cds(fhir_base) as api:
        cards = cards_of(await api.post(SIGN, body))
        assert api.sent, "the conditions were read from the FHIR server"
    assert "History of venous" in card_with(cards, "TEE risk")["summary"]
    assert card_with(cards, "exceeds")["suggestions"][0]["label"] == (
        "Lower the infusion rate to 138 mL/h"
    )


async def test_a_prefetch_holding_all_its_matches_is_used_as_given() -> None:
    """Included resources (``search.mode = include``) are not matches, and a "latest n"
    template holds at most n of its ``total``: neither is read again."""
    med = medication()
    given = administration("a1", "2024-01-10T09:00:00Z")
    administrations = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": 1,
        "entry": [
            {"resource": given, "search": {"mode": "match"}},
            {"resource": med, "search": {"mode": "include"}},
        ],
    }
    weights = [
        obs(f"w{i}", "29463-7", 70, "kg", f"2024-0{i + 1}-01", system=LOINC) for i in range(5)
    ]
    prefetch = full_prefetch(patient_70kg())
    prefetch["administrations"] = administrations
    # newest first, as _sort=-date asks (a page that is not may not hold the latest: s30pf)
    latest = sorted(patient_70kg()[1:2] + weights[:4], key=lambda o: o["effectiveDateTime"])[::-1]
    prefetch["weights"] = {**(searchset(latest) or {}), "total": 9}
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch)))
        assert api.sent == []
    assert card_with(cards, "exceeds")

    # the same administrations Bundle saying 2 matches holds only one of them
    prefetch["administrations"] = {**administrations, "total": 2}
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch))
    assert r.status_code == 412 and "administrations" in r.json()["message"]
