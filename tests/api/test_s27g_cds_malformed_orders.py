"""Draft orders the service cannot read in full are answered, never with a 500.

A hook call's ``draftOrders`` come from the CDS client's order entry (CDS Hooks 2.0
order-sign / order-select 1.0: "a Bundle of FHIR request resources with a draft status",
https://cds-hooks.hl7.org/hooks/STU1/order-sign.html). Two shapes that FHIR R4 does not allow
made the service fail with 500 "internal error", so no card at all, for the whole call:

- ``MedicationRequest.status`` that is not a code (R4 MedicationRequest.status is ``code``
  1..1, http://hl7.org/fhir/R4/medicationrequest.html): an array or object here. The order is
  not one of the void statuses (entered-in-error, cancelled, revoked), so it is checked like
  any other.
- a contained Medication whose ``ingredient.itemCodeableConcept`` is not a CodeableConcept
  (R4 Medication.ingredient.item[x], http://hl7.org/fhir/R4/medication.html). Its own
  ``code`` (ATC J06BA02, immunoglobulins, normal human, for intravascular administration, as
  in tests/fhir/builders.py ``medication``) still says that the order is IVIG: the cards
  give the maximum rate, and say that the concentration (that ingredient's strength) cannot
  be read.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.test_cds_hooks import (
    DVT,
    SELECT,
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


@pytest.mark.parametrize("status", [[], {}, ["draft"], {"value": "draft"}])
@pytest.mark.parametrize("hook", ["order-sign", "order-select"])
async def test_an_order_whose_status_is_not_a_code_is_checked(status: Any, hook: str) -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    order["status"] = status
    selections = ["MedicationRequest/rx1"] if hook == "order-select" else None
    body = call([order], full_prefetch(patient_70kg(DVT)), hook=hook, selections=selections)
    async with cds() as api:
        cards = cards_of(await api.post(SELECT if hook == "order-select" else SIGN, body))
    assert card_with(cards, "Max IVIG rate")["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min = 138 mL/h for 70 kg of 100 mg/mL"
    )
    assert "exceeds the max 3.3 mg/kg/min (138 mL/h)" in card_with(cards, "exceeds")["summary"]


@pytest.mark.parametrize("item", ["immune globulin", [], 0, [{"text": "immune globulin"}]])
async def test_an_ingredient_that_is_not_a_codeable_concept_does_not_hide_the_order(
    item: Any,
) -> None:
    order = ivig_order(rate=qty(300, "mL/h"))
    order["contained"][0]["ingredient"][0]["itemCodeableConcept"] = item
    body = call([order], full_prefetch(patient_70kg(DVT)))
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
    assert "History of venous or arterial thrombosis" in card_with(cards, "TEE risk")["summary"]
    # IVIG by the Medication's code; its strength is that ingredient's, unread: never assumed
    limit = card_with(cards, "Max IVIG rate")
    assert limit["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min; mL/h cannot be computed: product concentration unknown"
    )
    assert "`MedicationRequest/rx1`" in limit["detail"]
    assert "strength cannot be read" in limit["detail"]
