"""A draft order whose ``medicationReference`` cannot be resolved but whose ``display`` names an
immune globulin is not passed over with no card: its rate is not checked, and a warning card
says so. Unresolved: a ``Medication/id`` not contained, not in draftOrders, not prefetched, and
no FHIR server to read it (or the server answers 404); a contained reference ``#id`` with no
such contained resource; a ``urn:uuid:`` fullUrl that no draftOrders entry carries (both gave
no card before s27: only ``Medication/id`` references were looked at).

Shapes: R4 Reference (http://hl7.org/fhir/R4/references.html): ``display`` "Text alternative
for the resource", as EHRs send ``medicationReference`` with a ``display`` (e.g. Epic's
MedicationRequest.medicationReference); a contained resource is referred to as ``#id``
(§2.3.0.4), a Bundle entry by its ``fullUrl``, a ``urn:uuid:`` for an entry not yet saved
(§2.3.0.3); CDS Hooks 2.0 order-sign ``draftOrders`` is such a Bundle
(https://cds-hooks.org/hooks/order-sign/), and "a CDS Service ... unable to retrieve the
necessary FHIR data" answers 412 (https://cds-hooks.hl7.org/2.0/#http-response). ``fhirtis
run`` already flags such an administration ("not counted ... it looks like an immune
globulin", fhirtis/fhir/extract/medications.py ``_looks_like_immune_globulin``).
"""

from __future__ import annotations

from typing import Any

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

Json = dict[str, Any]

SHOWN = "IMMUNE GLOBULIN (HUMAN) 10 % INTRAVENOUS SOLUTION"
UNRESOLVED = pytest.mark.parametrize(
    "reference",
    ["Medication/eXyz1", "#med1", "urn:uuid:6a1f3f2e-1b2c-4d5e-8f90-1234567890ab"],
    ids=["unreadable", "dangling-contained", "dangling-urn-uuid"],
)


def _order(reference: str, display: str = SHOWN) -> Json:
    med = {"medicationReference": {"reference": reference, "display": display}}
    return ivig_order(rate=qty(300, "mL/h"), med=med)


@UNRESOLVED
async def test_an_unresolved_immune_globulin_order_is_said(reference: str) -> None:
    async with cds() as api:
        r = await api.post(SIGN, call([_order(reference)], full_prefetch(patient_70kg())))
    cards = cards_of(r)
    said = [c for c in cards if "not checked" in c["summary"]]
    assert len(said) == 1, [c["summary"] for c in cards]
    assert said[0]["indicator"] == "warning"
    assert reference in said[0]["detail"]
    assert "MedicationRequest/rx1" in said[0]["detail"]


@pytest.mark.parametrize("reference", ["Medication/eA1", "#med1"])
async def test_another_unresolved_medication_still_gets_no_card(reference: str) -> None:
    order = _order(reference, "ACETAMINOPHEN")
    async with cds() as api:
        r = await api.post(SIGN, call([order], full_prefetch(patient_70kg())))
    assert cards_of(r) == []


@UNRESOLVED
async def test_without_the_data_an_unresolved_immune_globulin_order_is_412(
    reference: str,
) -> None:
    """Prefetch lacks a key the evaluation cannot do without (the weights) and nothing can be
    read: the service cannot check the order (CDS Hooks 2.0: 412), rather than 200 with no
    card."""
    prefetch = full_prefetch(patient_70kg())
    del prefetch["weights"]
    async with cds() as api:
        r = await api.post(SIGN, call([_order(reference)], prefetch))
    assert r.status_code == 412, r.text


@UNRESOLVED
async def test_without_risk_factor_data_an_unresolved_immune_globulin_order_is_not_checked(
    reference: str,
) -> None:
    """Prefetch lacks only a risk-factor key (Conditions) and nothing can be read (s30: the
    cards come, the risk card naming the type): the order still gets its warning card that
    its rate was not checked, never 200 with no card."""
    prefetch = full_prefetch(patient_70kg())
    del prefetch["conditions"]
    async with cds() as api:
        r = await api.post(SIGN, call([_order(reference)], prefetch))
    assert r.status_code == 200, r.text
    summaries = [c["summary"] for c in cards_of(r)]
    assert any(s.startswith("IVIG rate not checked") for s in summaries), summaries
    risk = next(c for c in cards_of(r) if c["summary"].startswith("TEE risk"))
    assert risk["indicator"] == "warning"
    assert "no usable prefetch of Condition" in risk["detail"]
