"""Hostile JSON that parses: a lone surrogate escape (``"\\ud800"``, valid JSON, no Unicode
character) echoed in an error, and nesting deep enough to exhaust Python's recursion further on.
Each is a clear client error (an OperationOutcome, or a CDS Hooks error), never a 500."""

from __future__ import annotations

import json

import httpx

from tests.api.test_cds_hooks import SIGN, call, cds, full_prefetch, ivig_order, patient_70kg
from tests.api.test_evaluate_api import AUTH, OP, service

UNREACHABLE = "http://127.0.0.1:9/fhir"  # nothing is read: the parameters are refused first


async def test_a_lone_surrogate_in_a_parameter_name_is_400() -> None:
    body = b'{"resourceType":"Parameters","parameter":[{"name":"x\\ud800","valueBoolean":true}]}'
    async with service(UNREACHABLE) as api:
        r = await api.post(
            OP, content=body, headers={**AUTH, "Content-Type": "application/fhir+json"}
        )
    assert r.status_code == 400
    out = r.json()
    assert out["resourceType"] == "OperationOutcome"
    assert "unknown parameter" in out["issue"][0]["diagnostics"]


def _deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


async def test_a_deeply_nested_draft_order_is_400_not_500() -> None:
    # an order above the maximum rate (a suggestion copies the order) with a deeply nested
    # element that JSON parses and Python cannot copy
    rate = {"value": 300, "unit": "mL/h", "system": "http://unitsofmeasure.org", "code": "mL/h"}
    body = json.dumps(call([ivig_order(rate=rate)], full_prefetch(patient_70kg())))
    body = body.replace('"unit": "mL/h"', '"unit": ' + _deep(900), 1)
    async with cds(base=UNREACHABLE) as api:
        r = await api.client.post(
            SIGN, content=body.encode(), headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid-request"


async def test_a_deeply_nested_parameters_body_is_400() -> None:
    body = '{"resourceType":"Parameters","parameter":[{"name":"write","valueBoolean":' + (
        _deep(900) + "}]}"
    )
    async with service(UNREACHABLE) as api:
        r = await api.post(
            OP, content=body.encode(), headers={**AUTH, "Content-Type": "application/fhir+json"}
        )
    assert r.status_code == 400
    assert r.json()["resourceType"] == "OperationOutcome"


async def test_usual_orders_are_still_answered() -> None:
    rate = {"value": 300, "unit": "mL/h", "system": "http://unitsofmeasure.org", "code": "mL/h"}
    async with cds(base=UNREACHABLE) as api:
        r = await api.post(SIGN, call([ivig_order(rate=rate)], full_prefetch(patient_70kg())))
    assert r.status_code == 200, r.text
    assert isinstance(r.json()["cards"], list)


async def test_an_httpx_client_sees_valid_json() -> None:
    # the 400 for a surrogate is JSON any client can read back
    body = b'{"resourceType":"Parameters","parameter":[{"name":"\\ud800","valueBoolean":true}]}'
    async with service(UNREACHABLE) as api:
        r = await api.post(
            OP, content=body, headers={**AUTH, "Content-Type": "application/fhir+json"}
        )
    assert isinstance(r, httpx.Response)
    json.loads(r.content.decode("utf-8"))


async def test_a_lone_surrogate_in_a_draft_order_is_answered() -> None:
    # the unreadable dose unit is named in a card: written back as the same JSON escape
    rate = {"value": 300, "unit": "mL/h", "system": "http://unitsofmeasure.org", "code": "mL/h"}
    order = ivig_order(rate=rate)
    order["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"] = "SURROGATE"
    body = json.dumps(call([order], full_prefetch(patient_70kg())))
    body = body.replace('"SURROGATE"', '"g\\ud800"', 1)
    async with cds(base=UNREACHABLE) as api:
        r = await api.client.post(
            SIGN, content=body.encode(), headers={"Content-Type": "application/json"}
        )
    assert r.status_code in (200, 400), r.text
    json.loads(r.content.decode("utf-8"))
