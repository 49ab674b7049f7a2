"""A prefetched or read searchset that says, in its own OperationOutcome (``search.mode =
outcome``), that the server returned only part of the matches is not "no data": the risk card
says the data may be incomplete (a warning), never "no thrombosis risk factor found" as info.

Shapes: FHIR R4 Bundle.entry.search.mode ``outcome`` (http://hl7.org/fhir/R4/search.html
"Other resources may be included in the results ... an OperationOutcome ... search.mode =
outcome"); CDS Hooks 2.0 prefetch values are the FHIR server's search answers
(https://cds-hooks.hl7.org/2.0/#prefetch-template); ``fhirtis run`` already reads such an
outcome as "the results may be incomplete" (fhirtis/pipeline/pull.py ``_partial_results``).
"""

from __future__ import annotations

from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import (
    ALLOWED,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.api.test_s25_cond_fetch import _empty, _server, _sign
from tests.fhir.builders import qty

Json = dict[str, Any]


def outcome_of(severity: str, code: str) -> Json:
    return {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": severity, "code": code, "diagnostics": "x"}],
    }


def empty_searchset(outcome: Json | None = None) -> Json:
    """A searchset page with no matches; with ``outcome``, the server's own OperationOutcome
    entry (``search.mode = outcome``) reporting how the search went."""
    page: Json = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
    if outcome is not None:
        page["entry"].append(
            {
                "fullUrl": "urn:uuid:2f3c0a1e-8d0b-4a57-9b5e-5f4e1c2a7d11",
                "resource": outcome,
                "search": {"mode": "outcome"},
            }
        )
    return page


def _with_outcome(severity: str, code: str) -> Json:
    return empty_searchset(outcome_of(severity, code))


@pytest.mark.parametrize(("severity", "code"), [("error", "processing"), ("warning", "too-costly")])
async def test_a_prefetched_search_answered_in_part_is_said(severity: str, code: str) -> None:
    prefetch = {**full_prefetch(patient_70kg()), "conditions": _with_outcome(severity, code)}
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(150, "mL/h"))], prefetch))
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "warning"
    assert "incomplete" in risk["summary"]
    assert "search for conditions reported that only part" in risk["detail"]


async def test_an_informational_search_outcome_changes_nothing() -> None:
    """Epic answers an empty search with a warning "no results" outcome (code processing):
    that is all the data, as an empty searchset is."""
    prefetch = {
        **full_prefetch(patient_70kg()),
        "conditions": _with_outcome("warning", "processing"),
    }
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(150, "mL/h"))], prefetch))
    risk = card_with(cards_of(r), "TEE risk")
    assert risk["indicator"] == "info"
    assert "only part" not in risk["detail"]
    assert ALLOWED  # the default allowed server was never needed


async def test_a_search_read_in_part_from_the_fhir_server_is_said(httpx_mock: HTTPXMock) -> None:
    """What prefetch lacked, read in one batch: the Condition search's own outcome says
    ``too-costly`` (only part returned); the risk card says so."""

    def answer(url: str) -> tuple[int, Json]:
        if url.startswith("Condition?patient="):
            return 200, _with_outcome("error", "too-costly")
        return 200, _empty()

    httpx_mock.add_callback(_server(answer), is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    risk = card_with(cards_of(await _sign(prefetch, 150)), "TEE risk")
    assert risk["indicator"] == "warning"
    assert "search for Condition reported that only part" in risk["detail"], risk["detail"]
