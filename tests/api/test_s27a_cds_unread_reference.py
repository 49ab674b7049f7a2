"""A draft order whose ``medicationReference`` is a local reference that resolves to nothing — a
contained reference ``#id`` with no such contained resource, or a ``urn:uuid:`` fullUrl that no
draftOrders entry carries — but whose ``display`` names an immune globulin is said (a warning
card: its rate is not checked), as an order naming ``Medication/id`` that cannot be read already
is (tests/api/test_s26sc_cds_unread_medication.py). Before, the service answered 200 with no card
at all: only ``Medication/id`` references were looked at.

Shapes: R4 Reference (http://hl7.org/fhir/R4/references.html): a contained resource is referred
to as ``#id`` (§2.3.0.4 "Contained Resources"), a Bundle entry by its ``fullUrl``, a
``urn:uuid:`` for an entry not yet saved (§2.3.0.3, Bundle.entry.fullUrl); ``display`` "Text
alternative for the resource". CDS Hooks 2.0 order-sign ``draftOrders`` is such a Bundle
(https://cds-hooks.org/hooks/order-sign/)."""

from __future__ import annotations

import pytest

from tests.api.test_cds_hooks import (
    SIGN,
    call,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.fhir.builders import qty

SHOWN = "IMMUNE GLOBULIN (HUMAN) 10 % INTRAVENOUS SOLUTION"


@pytest.mark.parametrize("reference", ["#med1", "urn:uuid:6a1f3f2e-1b2c-4d5e-8f90-1234567890ab"])
async def test_an_immune_globulin_order_with_a_dangling_local_reference_is_said(
    reference: str,
) -> None:
    med = {"medicationReference": {"reference": reference, "display": SHOWN}}
    order = ivig_order(rate=qty(300, "mL/h"), med=med)
    async with cds() as api:
        r = await api.post(SIGN, call([order], full_prefetch(patient_70kg())))
    said = [c for c in cards_of(r) if "not checked" in c["summary"]]
    assert len(said) == 1, r.text
    assert said[0]["indicator"] == "warning"
    assert reference in said[0]["detail"]
    assert "MedicationRequest/rx1" in said[0]["detail"]


async def test_another_dangling_local_reference_still_gets_no_card() -> None:
    med = {"medicationReference": {"reference": "#med1", "display": "ACETAMINOPHEN"}}
    order = ivig_order(rate=qty(300, "mL/h"), med=med)
    async with cds() as api:
        r = await api.post(SIGN, call([order], full_prefetch(patient_70kg())))
    assert cards_of(r) == []


async def test_without_the_data_a_dangling_immune_globulin_order_is_412() -> None:
    """As for ``Medication/id``: prefetch lacks a key and nothing can be read (CDS Hooks 2.0:
    412). Before: 200 with no card."""
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    med = {"medicationReference": {"reference": "#med1", "display": SHOWN}}
    order = ivig_order(rate=qty(300, "mL/h"), med=med)
    async with cds() as api:
        r = await api.post(SIGN, call([order], prefetch))
    assert r.status_code == 412, r.text
