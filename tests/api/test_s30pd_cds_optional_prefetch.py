"""A CDS client that sends no prefetch for a risk-factor key and no ``fhirServer``
(fhirtis/api/cds_hooks/service.py).

CDS Hooks 2.0 (cds-hooks/docs docs/specification/current.md, "Prefetch Template"): "A CDS
Client MAY choose to honor some or all of the desired prefetch templates"; a template it does
not satisfy is left out of ``prefetch``, and ``fhirServer`` is optional. "HTTP Status Codes":
"412 Precondition Failed — The CDS Service is unable to retrieve the necessary FHIR data to
execute its decision support, either through a prefetch request or directly calling the FHIR
server". A risk-factor source (``fhirtis.fhir.needs.CAN_GO_WITHOUT``) is not necessary: the
same type refused 403 already gives the cards, the risk card naming it as not read (s29b).
A key left out with nothing to read it from is answered the same way; the Patient, the
Observations (the dosing weight) and the MedicationAdministrations stay necessary: 412.

Shapes: the prefetch is tests/api/test_cds_hooks.py's ``full_prefetch`` (a searchset Bundle
per template key, CDS Hooks 2.0 "Prefetch Result"), keys removed as a client that does not
honour those templates sends it.
"""

from __future__ import annotations

import httpx
import pytest

from tests.api.test_cds_hooks import card_with, cards_of
from tests.api.test_s29b_cds_forbidden_types import _prefetch_without
from tests.api.test_s30pe_cds_partial_prefetch import sign_without_server


async def _sign_without_server(*left_out: str) -> httpx.Response:
    return await sign_without_server(_prefetch_without(*left_out))


@pytest.mark.parametrize(
    ("keys", "types"),
    [
        (("deviceUseStatements", "procedures"), "DeviceUseStatement, Procedure"),
        (("conditions", "conditionsNotActive"), "Condition"),
        (("adverseEvents",), "AdverseEvent"),
    ],
)
async def test_a_risk_factor_key_left_out_gives_the_cards_naming_the_type(
    keys: tuple[str, ...], types: str
) -> None:
    r = await _sign_without_server(*keys)
    cards = cards_of(r)  # 200, not 412
    assert card_with(cards, "Max IVIG rate")  # 150 mL/h at 70 kg: within the limit
    risk = card_with(cards, "TEE risk")
    assert types in risk["detail"], risk["detail"]
    assert "Not read" in risk["detail"], risk["detail"]
    assert risk["indicator"] == "warning", risk
    assert "data may be incomplete" in risk["summary"], risk["summary"]


@pytest.mark.parametrize(
    ("key", "also"),
    [("weights", "procedures"), ("administrations", "conditions"), ("patient", "devices")],
)
async def test_a_needed_key_left_out_is_still_412_naming_it(key: str, also: str) -> None:
    r = await _sign_without_server(key, also)
    assert r.status_code == 412, r.text
    body = r.json()
    assert body["error"] == "precondition-failed"
    assert key in body["message"], body
    assert also not in body["message"], body  # only what stops the evaluation
