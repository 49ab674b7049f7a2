"""A draft order that names its Medication by the absolute URL of the caller's FHIR server.

FHIR R4 Reference.reference is "a relative reference, in which case it is relative to the
service base URL, or an absolute URL" (http://hl7.org/fhir/R4/references.html#Reference);
``[fhirServer]/Medication/123`` names the same resource as ``Medication/123`` read from the
server at ``fhirServer`` (CDS Hooks 2.0: "fhirServer: the base URL of the CDS Client's FHIR
server", https://cds-hooks.hl7.org/2.0/#calling-a-cds-service). Such an order used to be
passed over: the Medication was never read from fhirServer (the service reads only
``Medication/id``), nor found among prefetched entries that carry no ``fullUrl``, so an IVIG
order got no card at all.
"""

from __future__ import annotations

from typing import Any

from tests.api.test_cds_hooks import (
    ALLOWED,
    DVT,
    SIGN,
    call,
    card_with,
    cards_of,
    cds,
    full_prefetch,
    ivig_order,
    patient_70kg,
)
from tests.e2e.test_run import load
from tests.fhir.builders import bundle, medication, qty
from tests.fhir_test_server import FhirTestServer


def _absolute_order(base: str) -> dict[str, Any]:
    return ivig_order(
        rate=qty(300, "mL/h"),
        med={"medicationReference": {"reference": f"{base}/Medication/octa"}},
    )


async def test_a_medication_named_by_absolute_url_is_read_from_fhir_server(
    fhir_base: str, fhir_server: FhirTestServer
) -> None:
    load(fhir_base, bundle(medication()))  # Octagam 10% (100 mg/mL), ATC J06BA02
    prefetch = full_prefetch(patient_70kg(DVT))  # everything but the order's Medication
    for server in (fhir_base, fhir_base + "/"):
        body = call([_absolute_order(fhir_base)], prefetch, server=server, token="cds-token")
        async with cds(fhir_base) as api:
            cards = cards_of(await api.post(SIGN, body))
            sent = [str(r.url) for r in api.sent]
        assert card_with(cards, "Max IVIG rate")["summary"] == (
            "Max IVIG rate 3.3 mg/kg/min = 138 mL/h for 70 kg of 100 mg/mL"
        )
        assert "exceeds" in card_with(cards, "exceeds")["summary"]
        assert sent and all(url.startswith(fhir_base) for url in sent)


async def test_a_prefetched_medication_without_full_url_resolves_an_absolute_reference() -> None:
    prefetch = full_prefetch(patient_70kg(DVT, medication()))
    for entry in prefetch["administrations"]["entry"]:
        del entry["fullUrl"]  # Bundle.entry.fullUrl is 0..1 in R4
    body = call([_absolute_order(ALLOWED)], prefetch, server=ALLOWED)
    async with cds() as api:
        cards = cards_of(await api.post(SIGN, body))
        assert api.sent == []  # prefetch had it: nothing read
    assert card_with(cards, "Max IVIG rate")["summary"] == (
        "Max IVIG rate 3.3 mg/kg/min = 138 mL/h for 70 kg of 100 mg/mL"
    )


async def test_an_absolute_url_on_another_server_is_not_read(fhir_base: str) -> None:
    """Only the caller's fhirServer is read: a Medication elsewhere stays unidentified."""
    load(fhir_base, bundle(medication()))
    prefetch = full_prefetch(patient_70kg(DVT))
    body = call(
        [_absolute_order("https://elsewhere.example/fhir")],
        prefetch,
        server=fhir_base,
        token="cds-token",
    )
    async with cds(fhir_base) as api:
        cards = cards_of(await api.post(SIGN, body))
        assert api.sent == []
    assert cards == []
