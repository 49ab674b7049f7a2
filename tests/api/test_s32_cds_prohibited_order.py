"""A draft order that prohibits IVIG is not an IVIG order to check (fhirtis/fhir/orders.py
``draft_medication_requests``).

R4 MedicationRequest.doNotPerform is a modifier element, "True if request is prohibiting
action" (http://hl7.org/fhir/R4/medicationrequest-definitions.html#MedicationRequest.doNotPerform;
QI-Core ``qicore-medicationprohibited``): a draft "do not give IVIG" order has no infusion whose
rate could exceed a maximum. Before, its rate was checked like an order to give it: the
order-sign cards warned that a prohibited infusion "exceeds the max". The same order without
``doNotPerform`` (or with it false) is still checked.
"""

from __future__ import annotations

import pytest

from tests.api.test_cds_hooks import (
    DVT,
    SIGN,
    call,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.fhir.builders import qty


async def test_a_prohibiting_draft_order_is_not_rate_checked() -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    order["doNotPerform"] = True
    body = call([order], full_prefetch(patient_70kg(DVT)))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    summaries = [c["summary"] for c in cards]
    assert not any("exceeds" in s for s in summaries), summaries
    # answered as an order-sign call whose only order is cancelled (nothing to check) is
    cancelled = ivig_order(rate=qty(300, "mL/h"))
    cancelled["status"] = "cancelled"
    async with cds() as api:
        void = cards_of(await api.post(SIGN, call([cancelled], full_prefetch(patient_70kg(DVT)))))
    assert cards == void


@pytest.mark.parametrize("flag", [False, None])
async def test_an_order_that_does_not_prohibit_is_checked(flag: bool | None) -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    if flag is not None:
        order["doNotPerform"] = flag
    body = call([order], full_prefetch(patient_70kg(DVT)))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    assert any("exceeds the max 3.3 mg/kg/min" in c["summary"] for c in cards)
