"""A draft order whose ``medicationReference`` cannot be resolved (not contained, not in
draftOrders, not prefetched, and no FHIR server to read it, or the server answers 404) but whose
``display`` names an immune globulin is not passed over with no card: its rate is not checked,
and a warning card says so.

Shapes: R4 Reference.display ("Text alternative for the resource",
http://hl7.org/fhir/R4/references.html#Reference), as EHRs send ``medicationReference`` with a
``display`` (e.g. Epic's MedicationRequest.medicationReference); CDS Hooks 2.0 "a CDS Service
... unable to retrieve the necessary FHIR data" (https://cds-hooks.hl7.org/2.0/#http-response).
``fhirtis run`` already flags such an administration ("not counted ... it looks like an
immune globulin", fhirtis/fhir/extract/medications.py ``_looks_like_immune_globulin``).
"""

from __future__ import annotations

from typing import Any

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

Json = dict[str, Any]

IG_BY_REFERENCE = {
    "medicationReference": {
        "reference": "Medication/eXyz1",
        "display": "IMMUNE GLOBULIN (HUMAN) 10 % INTRAVENOUS SOLUTION",
    }
}


async def test_an_unreadable_immune_globulin_order_is_said() -> None:
    order = ivig_order(rate=qty(300, "mL/h"), med=IG_BY_REFERENCE)
    async with cds() as api:
        r = await api.post(SIGN, call([order], full_prefetch(patient_70kg())))
    cards = cards_of(r)
    said = [c for c in cards if "not checked" in c["summary"]]
    assert len(said) == 1, [c["summary"] for c in cards]
    assert said[0]["indicator"] == "warning"
    assert "Medication/eXyz1" in said[0]["detail"]
    assert "MedicationRequest/rx1" in said[0]["detail"]


async def test_another_unreadable_medication_still_gets_no_card() -> None:
    other = {"medicationReference": {"reference": "Medication/eA1", "display": "ACETAMINOPHEN"}}
    order = ivig_order(rate=qty(300, "mL/h"), med=other)
    async with cds() as api:
        r = await api.post(SIGN, call([order], full_prefetch(patient_70kg())))
    assert cards_of(r) == []


async def test_without_the_data_an_unreadable_immune_globulin_order_is_412() -> None:
    """Prefetch lacks a key and nothing can be read: the service cannot check the order
    (CDS Hooks 2.0: 412), rather than 200 with no card."""
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    order = ivig_order(rate=qty(300, "mL/h"), med=IG_BY_REFERENCE)
    async with cds() as api:
        r = await api.post(SIGN, call([order], prefetch))
    assert r.status_code == 412, r.text
