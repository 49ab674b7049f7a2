"""The HTTP service and a merged (combined) patient record.

A Patient whose ``link`` has type ``replaced-by`` "must no longer be used. The link points
forward to another patient resource that must be used in lieu of the patient resource that
contains this link" (FHIR R4 patient.html, Patient.link.type). Oracle Health Millennium answers
the read of a combined patient so, an inactive Patient linking the surviving record, the data
moved there (cerner/fhir.cerner.com, content/millennium/r4/base/individuals/patient.md,
"Patient Combine Example"; ``R4_COMBINED_PATIENT_ENTRY`` in
lib/resources/example_json/r4_examples_patient.rb, copied in
tests/io/test_s29e_merged_patient.py); HAPI's ``Patient/$merge`` leaves its source so.

``fhirtis run`` already fails such a patient (commit 9c330fb). The CDS service read the same
Patient (prefetch ``patient`` or from ``fhirServer``) and answered cards computed from the
retired record's empty data: "no thrombosis risk factor found" and a maximum of 4 mg/kg/min,
where the surviving record's DVT history gives 3.3. It now answers one ``warning`` card naming
the record that replaced it and gives no rate advice: CDS Hooks 2.0 ("CDS Service Response":
"Cards are intended for display to an end user", "Cards can provide ... information (for
reading)"; cds-hooks/docs, docs/specification/current.md). Not 412, which is for data the
service "is unable to retrieve" (ibid., "HTTP Status Codes"): the record was read, and an error
status leaves the clinician no card to read. HL7's ``Patient/$merge`` (build.fhir.org
patient-operation-merge.html): the source Patient gets a ``replaced-by`` link and is made
inactive, "The data from the source patient will be merged with the data of the target".

``$myositis-evaluate`` (the SMART page's evaluation) answered 502 "the FHIR server failed" for
such a patient: the server did not fail. It is now 422 with an OperationOutcome ``business-rule``
issue naming the surviving record (R4 http.html: 422 "Unprocessable Entity ... business rules").
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pytest_httpx import HTTPXMock

from tests.api.test_cds_hooks import (
    DVT,
    SIGN,
    call,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    other_order,
    patient_70kg,
)
from tests.api.test_evaluate_api import AUTH, OP, service
from tests.fhir.builders import qty
from tests.io._s25_srv_fake import FakeServer, statement
from tests.io._support import BASE
from tests.io.test_s29e_merged_patient import COMBINED

Json = dict[str, Any]
SUCCESSOR = "Patient/12724067"


def combined(pid: str = "p1", ref: str = SUCCESSOR) -> Json:
    """Oracle Health's combined-patient answer, under the id the call names."""
    out = copy.deepcopy(COMBINED)
    out["id"] = pid
    out["link"] = [{"other": {"reference": ref}, "type": "replaced-by"}]
    return out


def _merged_prefetch() -> Json:
    prefetch = full_prefetch(patient_70kg())
    prefetch["patient"] = combined()
    return prefetch


def _assert_merged_card(cards: list[Json], successor: str = SUCCESSOR) -> None:
    assert len(cards) == 1, [c["summary"] for c in cards]
    card = cards[0]
    assert card["indicator"] == "warning"
    assert successor in card["summary"] and "merged" in card["summary"], card["summary"]
    assert "replaced-by" in card["detail"] and "Patient/p1" in card["detail"]
    assert "mg/kg/min" not in card["summary"] + card["detail"]  # no rate advice at all
    assert "suggestions" not in card


@pytest.mark.parametrize(
    ("ref", "named"),
    [
        (SUCCESSOR, SUCCESSOR),
        (f"https://fhir.example.org/r4/{SUCCESSOR}/_history/2", SUCCESSOR),
        ("urn:uuid:2d1f0b9e-6a41-4d2a-9a4e-0f2c2c8b5a11", "another record"),
    ],
)
async def test_a_prefetched_combined_patient_gets_one_warning_card(ref: str, named: str) -> None:
    prefetch = _merged_prefetch()
    prefetch["patient"] = combined(ref=ref)
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch))
        assert api.sent == []
    _assert_merged_card(cards_of(r), named)


async def test_a_combined_patient_is_said_even_where_other_data_is_missing() -> None:
    """Not 412 for the missing searches: the record is retired whatever they hold."""
    prefetch = {"patient": combined()}
    async with cds() as api:
        r = await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch))
        assert api.sent == []
    _assert_merged_card(cards_of(r))


async def test_a_combined_patient_read_from_the_fhir_server_gets_the_card(
    httpx_mock: HTTPXMock,
) -> None:
    server = FakeServer(statement(), [combined()])
    httpx_mock.add_callback(server, is_reusable=True)
    prefetch = full_prefetch(patient_70kg())
    del prefetch["patient"]
    body = call([ivig_order(rate=qty(300, "mL/h"))], prefetch, server=BASE, token="tok")
    async with cds(BASE) as api:
        r = await api.post(SIGN, body)
    assert any(p.startswith("GET Patient/p1") for p in server.paths()), server.paths()
    _assert_merged_card(cards_of(r))


async def test_no_card_for_a_combined_patient_without_an_ivig_order() -> None:
    async with cds() as api:
        r = await api.post(SIGN, call([other_order()], _merged_prefetch()))
    assert cards_of(r) == []


@pytest.mark.parametrize("kind", ["replaces", "seealso", "refer"])
async def test_other_links_leave_the_record_in_use(kind: str) -> None:
    """``replaces`` (the survivor), ``refer``, ``seealso``: the cards as without a link."""
    prefetch = full_prefetch(patient_70kg(DVT))
    prefetch["patient"] = {
        **prefetch["patient"],
        "link": [{"other": {"reference": "Patient/old"}, "type": kind}],
    }
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, call([ivig_order(rate=qty(300, "mL/h"))], prefetch)))
    assert any("Max IVIG rate 3.3 mg/kg/min" in c["summary"] for c in cards), [
        c["summary"] for c in cards
    ]


async def test_evaluate_operation_on_a_combined_patient_is_422_naming_the_successor(
    httpx_mock: HTTPXMock,
) -> None:
    server = FakeServer(statement(), [combined()])
    httpx_mock.add_callback(server, is_reusable=True)
    async with service(BASE) as api:
        r = await api.post(OP, headers=AUTH)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    issue = body["issue"][0]
    assert issue["severity"] == "error" and issue["code"] == "business-rule", issue
    assert SUCCESSOR in issue["diagnostics"] and "replaced-by" in issue["diagnostics"]
