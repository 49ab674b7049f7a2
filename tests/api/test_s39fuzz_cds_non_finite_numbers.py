"""CDS Hooks: a request body with a number JSON does not have (``NaN``, ``Infinity``,
``-Infinity``: RFC 8259 §6, "Numeric values that cannot be represented in the grammar below (such
as Infinity and NaN) are not permitted"), or one past what a double holds (``1e400``), is a
malformed request: 400 ``invalid-request``, as ``fhirtis evaluate`` refuses such a Bundle as not
JSON.

Python's ``json`` reads all four (as ``nan`` and ``inf``): an IVIG draft order above the maximum
rate whose ``doseQuantity.value`` was one of them reached the card that suggests a lower rate (it
copies the order), which cannot be written as JSON: the service answered 500 (found by mutation
fuzzing of the hook calls, audit s39fuzz)."""

from __future__ import annotations

import json

import pytest

from tests.api.test_cds_hooks import SIGN, call, cds, full_prefetch, ivig_order, patient_70kg
from tests.fhir.builders import qty

UNREACHABLE = "http://127.0.0.1:9/fhir"  # everything is prefetched: nothing is read


def _body_with_dose(literal: str) -> bytes:
    # 300 mL/h of 10 % for 70 kg = 7.14 mg/kg/min, above 4: the card suggests a lower rate
    order = ivig_order(rate=qty(300, "mL/h"))
    text = json.dumps(call([order], full_prefetch(patient_70kg())))
    dose = '"value": 70, "unit": "g"'
    assert dose in text
    return text.replace(dose, f'"value": {literal}, "unit": "g"', 1).encode()


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400", "-1e400"])
async def test_a_number_json_lacks_is_400_not_500(literal: str) -> None:
    async with cds(base=UNREACHABLE) as api:
        r = await api.client.post(
            SIGN, content=_body_with_dose(literal), headers={"Content-Type": "application/json"}
        )
        assert api.sent == []
    assert r.status_code == 400, r.text
    answer = r.json()
    assert answer["error"] == "invalid-request"
    assert "not JSON" in answer["message"]


async def test_the_same_order_with_a_real_dose_is_answered() -> None:
    async with cds(base=UNREACHABLE) as api:
        r = await api.client.post(
            SIGN, content=_body_with_dose("70"), headers={"Content-Type": "application/json"}
        )
    assert r.status_code == 200, r.text
    summaries = [c["summary"] for c in r.json()["cards"]]
    assert any("exceeds the max 4 mg/kg/min (168 mL/h)" in s for s in summaries), summaries
